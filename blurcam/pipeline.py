"""source -> detect -> track -> redact -> sink, with stages overlapped in threads.

    reader thread     demux + decode (PyAV, frame threads), 4:2:0 planes and the
                      detector's RGB view                    -> frames queue (bounded)
                      audio packets                          -> audio queue
    detector thread   detector.detect(view)                  -> detected queue (bounded)
    caller's thread   persistence + look-back, redaction, encode + mux

Bounded queues give back-pressure, so memory is bounded by their sizes plus the
look-back buffer. A worker's exception stops every stage and is re-raised in the
caller. If the detector raises on a frame, that frame is obscured whole: nothing
unredacted ever reaches the sink.
"""
from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .detect import DEFAULT_FILE_PRESET, PRESETS, Detector, make_detector, view_side
from .detect.centerface import default_threads, usable_cpus
from .io.sink import VIDEO_FORMATS, EncoderConfig, FileSink, refuse_same_file
from .io.convert import planes_to_view, view_size
from .io.source import MediaSource
from .redact import RedactConfig, obscure_whole, redact_faces
from .track import Persistence, TrackConfig, backfill_box, bridge_boxes
from .stages import END, Stages, drain
from .types import Faces, Frame

log = logging.getLogger(__name__)



@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything one run needs besides input and output.

    detector: a quality preset (live, fast, balanced, thorough) or one backend name,
        see :func:`blurcam.detect.make_detector`.
    threshold: None keeps the preset's thresholds.
    centerface_every: run CenterFace on every k-th frame (None: the preset's choice).
    queue_frames: capacity of each inter-stage queue, in frames (>= 1).
    salvage: read a damaged input past its errors (RunStats.damaged says if any were met).
    """

    detector: str = DEFAULT_FILE_PRESET
    threshold: float | None = None
    centerface_every: int | None = None
    redact: RedactConfig = field(default_factory=RedactConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    audio: bool = True
    queue_frames: int = 4
    salvage: bool = False

    def __post_init__(self) -> None:
        if self.centerface_every is not None and self.centerface_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.centerface_every}")
        if self.queue_frames < 1:
            raise ValueError(f"queue_frames must be >= 1, got {self.queue_frames}")


@dataclass
class FrameRecord:
    """What was done to one frame: the faces (detected and carried), the pixel
    regions destroyed for them (N, 4) int32, and whether the frame was obscured whole."""

    index: int
    time_s: float | None
    faces: Faces
    regions: np.ndarray
    obscured_whole: bool


@dataclass
class RunStats:
    frames: int = 0
    faces_detected: int = 0
    faces_carried: int = 0
    frames_obscured_whole: int = 0
    seconds: float = 0.0
    damaged: bool = False  # salvage: part of the input could not be read
    frames_expected: int | None = None  # what the container's header promised

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def quarter_turns(rotation_deg: int) -> int:
    """Counter-clockwise quarter turns (0-3) that show a stored frame as displayed."""
    return round(rotation_deg / 90) % 4


def make_view(frame: Frame, long_side: int | None) -> np.ndarray:
    """The detector's input for ``frame``: (h, w, 3) uint8 RGB as displayed (detectors
    expect upright faces), its long side at most ``long_side`` (None: full size)."""
    view = planes_to_view(frame.planes, view_size(frame.width, frame.height, long_side))
    k = quarter_turns(frame.rotation_deg)
    return np.ascontiguousarray(np.rot90(view, k)) if k else view


def boxes_to_stored(xyxy: np.ndarray, k: int, stored_wh: tuple[int, int]) -> np.ndarray:
    """Map (N, 4) boxes found on ``np.rot90(image, k)`` back to the stored image,
    whose (width, height) is ``stored_wh``."""
    if k == 0 or len(xyxy) == 0:
        return xyxy
    w, h = stored_wh
    x1, y1, x2, y2 = xyxy.T
    if k == 1:  # display (xd, yd) <- stored (w - yd, xd)
        out = np.stack([w - y2, x1, w - y1, x2], axis=1)
    elif k == 2:
        out = np.stack([w - x2, h - y2, w - x1, h - y1], axis=1)
    else:  # k == 3: display (xd, yd) <- stored (yd, h - xd)
        out = np.stack([y1, h - x2, y2, h - x1], axis=1)
    return out.astype(np.float32)


def view_to_frame(faces: Faces, view_shape: tuple[int, ...], k: int, frame_wh: tuple[int, int]) -> Faces:
    """Boxes found on a view (display orientation, ``k`` quarter turns, scaled) -> frame pixels."""
    if len(faces) == 0:
        return faces
    vh, vw = view_shape[:2]
    stored_view_wh = (vw, vh) if k % 2 == 0 else (vh, vw)
    xyxy = boxes_to_stored(faces.xyxy, k, stored_view_wh)
    scale = np.array([frame_wh[0] / stored_view_wh[0], frame_wh[1] / stored_view_wh[1]] * 2, np.float32)
    return Faces((xyxy * scale).astype(np.float32), faces.score, faces.track_id, faces.carried)


def detect_frame(detector: Detector, frame: Frame) -> Faces:
    """Run ``detector`` on the frame's view (made now if the reader did not); boxes come
    back in frame pixels. The view is released: only the planes stay buffered."""
    view = frame.view if frame.view is not None else make_view(frame, view_side(detector))
    frame.view = None
    faces = detector.detect(view, frame.time_ms)
    return view_to_frame(faces, view.shape, quarter_turns(frame.rotation_deg), (frame.width, frame.height))


def detect_image(detector: Detector, rgb: np.ndarray, time_ms: int) -> Faces:
    """Run ``detector`` on a still (H, W, 3) uint8 RGB image through the same kind of view
    as video frames get (area-averaged to its ``max_side``); boxes in image pixels."""
    import cv2

    height, width = rgb.shape[:2]
    view_wh = view_size(width, height, view_side(detector), even=False)
    view = rgb if view_wh == (width, height) else cv2.resize(rgb, view_wh, interpolation=cv2.INTER_AREA)
    return view_to_frame(detector.detect(np.ascontiguousarray(view), time_ms), view.shape, 0, (width, height))


class _Pending:
    """A detected frame waiting in the look-back buffer for back-filled boxes."""

    __slots__ = ("frame", "faces", "extra", "obscure")

    def __init__(self, frame: Frame, faces: Faces, obscure: bool) -> None:
        self.frame, self.faces, self.obscure = frame, faces, obscure
        self.extra: list[Faces] = []


def run(source: MediaSource, sink, detector: Detector, config: PipelineConfig, *,
        on_frame: Callable[[FrameRecord], None] | None = None) -> RunStats:
    """Redact every frame of ``source`` into ``sink``; returns counts.

    The sink gets frames in order, each exactly once, each already redacted; the
    caller commits or aborts the sink. ``on_frame`` is called in the caller's
    thread after each frame is written (progress, reports).
    """
    stages = Stages()
    frames_q: queue.Queue = queue.Queue(maxsize=config.queue_frames)
    detected_q: queue.Queue = queue.Queue(maxsize=config.queue_frames)
    audio_q: queue.Queue = queue.Queue()  # unbounded, but the reader is held back by frames_q
    stats = RunStats()
    rng = np.random.default_rng()
    tracker = Persistence(config.track)
    lookback = config.track.lookback_frames if not source.info.is_live else 0
    buffer: deque[_Pending] = deque()
    started = time.perf_counter()

    side = view_side(detector)

    def read() -> None:
        try:
            for item in source.items():
                if isinstance(item, Frame):
                    item.view = make_view(item, side)  # here, off the detector's thread
                    stages.put(frames_q, item)
                else:
                    audio_q.put(item)
        finally:
            if not stages.stop.is_set():
                stages.put(frames_q, END)

    def detect() -> None:
        while (frame := stages.get(frames_q)) is not END:
            try:
                faces = detect_frame(detector, frame)
            except Exception as exc:  # fail closed: this frame will be obscured whole
                log.warning("detector failed on frame %d (%s); obscuring the whole frame", frame.index, exc)
                faces = None
            stages.put(detected_q, (frame, faces))
        stages.put(detected_q, END)

    def emit(item: _Pending) -> None:
        frame = item.frame
        faces = Faces.concat([item.faces, *item.extra])
        if item.obscure:
            obscure_whole(frame.planes, config.redact, rng)
            regions = np.array([[0, 0, frame.width, frame.height]], np.int32)
            stats.frames_obscured_whole += 1
        else:
            regions = redact_faces(frame.planes, faces.xyxy, config.redact, rng)
        sink.write_frame(frame)
        for packet in drain(audio_q):
            sink.write_audio(packet)
        stats.frames += 1
        stats.faces_detected += int((~faces.carried).sum())
        stats.faces_carried += int(faces.carried.sum())
        if on_frame is not None:
            time_s = float(frame.pts * frame.time_base) if frame.pts is not None else None
            on_frame(FrameRecord(frame.index, time_s, faces, regions, item.obscure))

    stages.start("reader", read)
    stages.start("detector", detect)
    try:
        while (got := stages.get(detected_q)) is not END:
            frame, detections = got
            faces = tracker.update(detections)
            births = tracker.births
            if len(births) and lookback:
                # A new face, now seen twice, was probably there undetected before: cover
                # the frames since its birth with the box spanning first and latest sight,
                # and the frames before it with its first box, grown with distance.
                ends = faces[np.isin(faces.track_id, births.track_id)]
                for back, pending in enumerate(reversed(buffer), start=1):
                    boxes = []
                    for i, age in enumerate(tracker.births_age.tolist()):
                        first = births.xyxy[i:i + 1]
                        if back < age:
                            latest = ends.xyxy[ends.track_id == births.track_id[i]]
                            both = np.concatenate([first, latest])
                            boxes.append(np.concatenate([both[:, :2].min(0), both[:, 2:].max(0)])[None])
                        else:
                            boxes.append(backfill_box(first, back - age + 1, config.track.growth_per_frame))
                    pending.extra.append(Faces(np.concatenate(boxes).astype(np.float32), births.score,
                                               births.track_id, np.ones(len(births), bool)))
            if len(tracker.gaps) and lookback:
                # Faces found again after frames without a detection (CenterFace runs on
                # every k-th frame; detectors blink): the frames in between are still
                # buffered, so they also get the straight path between both sightings.
                for back, pending in enumerate(reversed(buffer), start=1):
                    if back >= tracker.gaps.max():
                        break
                    inside = tracker.gaps > back
                    boxes = bridge_boxes(tracker.gap_from, tracker.gap_to, tracker.gaps, back,
                                         config.track.growth_per_frame)
                    pending.extra.append(Faces(boxes, np.ones(len(boxes), np.float32), tracker.gap_ids[inside],
                                               np.ones(len(boxes), bool)))
            buffer.append(_Pending(frame, faces, obscure=detections is None))
            if len(buffer) > lookback:
                emit(buffer.popleft())
        while buffer:
            emit(buffer.popleft())
        for thread in stages.threads:
            thread.join()
        stages.check()
        for packet in drain(audio_q):
            sink.write_audio(packet)
    finally:
        stages.shutdown([frames_q, detected_q])
    stats.seconds = time.perf_counter() - started
    return stats


def encoder_threads_beside_detector() -> int:
    """Encoder threads for a detector-bound preset: the cores onnxruntime does not use
    (at least one). On 2 cores, one encoder thread gave +7 % fps and -60 MB at 1080p."""
    return max(1, usable_cpus() - default_threads())


def default_output_path(input_path: str | Path) -> Path:
    """INPUT's name + ``.blurred`` + its extension: clip.mp4 -> clip.blurred.mp4. A video
    in a container blurcam does not write (an animated GIF, a .3gp) becomes an .mp4."""
    p = Path(input_path)
    suffix = p.suffix if is_image_path(p) or p.suffix.lower() in VIDEO_FORMATS else ".mp4"
    return p.with_name(f"{p.stem}.blurred{suffix}")


def redact_file(input_path: str | Path, output_path: str | Path | None = None,
                config: PipelineConfig | None = None, *, overwrite: bool = False,
                detector: Detector | None = None,
                on_frame: Callable[[FrameRecord], None] | None = None) -> RunStats:
    """Redact a video file into ``output_path`` (atomically: complete or absent).

    ``detector`` overrides ``config.detector`` (tests inject failing detectors).
    Raises a BlurcamError subclass for every user-facing failure.
    """
    config = config or PipelineConfig()
    output_path = Path(output_path) if output_path else default_output_path(input_path)
    refuse_same_file(input_path, output_path)
    source = MediaSource(input_path, audio=config.audio, salvage=config.salvage)
    sink = None
    own_detector = detector is None
    try:
        encoder = config.encoder
        if own_detector and encoder.threads is None and PRESETS.get(config.detector, {}).get("encode_threads"):
            encoder = replace(encoder, threads=encoder_threads_beside_detector())
        sink = FileSink(output_path, source.info, audio_streams=source.audio_streams,
                        encoder=encoder, overwrite=overwrite)
        if own_detector:
            detector = make_detector(config.detector, threshold=config.threshold,
                                     centerface_every=config.centerface_every)
        stats = run(source, sink, detector, config, on_frame=on_frame)
        sink.commit()
        stats.damaged, stats.frames_expected = source.damaged, source.frames_expected
        return stats
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        source.close()
        if own_detector and detector is not None:
            detector.close()


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def redact_image(input_path: str | Path, output_path: str | Path | None = None,
                 config: PipelineConfig | None = None, *, overwrite: bool = False,
                 detector: Detector | None = None,
                 on_frame: Callable[[FrameRecord], None] | None = None) -> RunStats:
    """Redact a still image. EXIF orientation is applied when reading; the output is
    written from pixels alone, so EXIF (GPS, camera, time) and text chunks are gone."""
    import cv2

    from .errors import SourceError, UsageError
    from .io.sink import check_output_path, write_atomically

    config = config or PipelineConfig()
    output_path = Path(output_path) if output_path else default_output_path(input_path)
    input_path = Path(input_path)
    if not input_path.exists():
        raise SourceError(f"{input_path}: no such file")
    if input_path.is_dir():
        raise SourceError(f"{input_path}: is a directory, not a media file")
    refuse_same_file(input_path, output_path)
    if not is_image_path(output_path):
        raise UsageError(f"{output_path}: an image can only be written as {', '.join(IMAGE_EXTENSIONS)}")
    check_output_path(output_path, overwrite)
    started = time.perf_counter()
    try:
        encoded_in = np.fromfile(input_path, np.uint8)
    except OSError as exc:
        raise SourceError(f"{input_path}: cannot read: {exc.strerror}") from None
    if encoded_in.size == 0:
        raise SourceError(f"{input_path}: empty file, not an image")
    try:
        bgr = cv2.imdecode(encoded_in, cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is None:
        raise SourceError(f"{input_path}: not an image blurcam can read")
    own_detector = detector is None
    detector = detector or make_detector(config.detector, threshold=config.threshold)
    try:
        # Stills are redacted in BGR as read (no 4:2:0 colour loss).
        faces = detect_image(detector, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 0)
    finally:
        if own_detector:
            detector.close()
    regions = redact_faces(bgr, faces.xyxy, config.redact)
    ok, encoded = cv2.imencode(output_path.suffix.lower(), bgr)
    if not ok:
        raise SinkError(f"{output_path}: cannot encode image")
    write_atomically(output_path, encoded.tobytes(), overwrite=overwrite)
    if on_frame is not None:
        on_frame(FrameRecord(0, 0.0, faces, regions, False))
    return RunStats(frames=1, faces_detected=len(faces), seconds=time.perf_counter() - started)
