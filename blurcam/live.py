"""Live: camera or stream in, redacted stream out, in real time, failing closed.

    reader thread     source frames (paced to real time for rehearsal files) -> detect queue;
                      when the queue is full the frame is DROPPED and counted
    detector thread   loads the model, then detects; until it is loaded, and for any
                      frame whose detection raises, the frame is marked "obscure whole"
    caller's thread   persistence (hold only, no look-back), redaction, sinks; and a
                      watchdog: a frame whose detection runs past ``detect_timeout_ms``
                      is sent obscured whole, and the late result only feeds the tracker

Nothing reaches a sink without having been through detection and redaction, or
being obscured whole. Sinks are StreamSinks (network, stdout, recording) that
discard frames while disconnected, never buffering them anywhere.
"""
from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .detect import DEFAULT_LIVE_PRESET, Detector, make_detector, view_side
from .errors import SourceError, UsageError
from .io.convert import view_size
from .io.sink import EncoderConfig
from .io.source import MediaSource
from .pipeline import detect_frame, make_view
from .redact import RedactConfig, obscure_whole, redact_faces
from .stages import END, Stages, Stop, drain
from .track import Persistence, TrackConfig
from .types import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LiveConfig:
    """Settings for one live run.

    detect_timeout_ms: a frame whose detection has not finished this long after it
        started goes out obscured whole (the detector is too slow or hung).
    realtime: pace a file source to its timestamps (rehearsal, tests).
    max_seconds: stop after this much source time (None: until the source ends or Ctrl-C).
    queue_frames: frames waiting for the detector; more are dropped, not queued.
    """

    detector: str = DEFAULT_LIVE_PRESET
    threshold: float | None = None
    redact: RedactConfig = field(default_factory=RedactConfig)
    track: TrackConfig = field(default_factory=lambda: TrackConfig(hold_frames=10, lookback_frames=0))
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(crf=23, preset="veryfast", live=True))
    audio: bool = True
    detect_timeout_ms: float = 500.0
    realtime: bool = False
    max_seconds: float | None = None
    queue_frames: int = 4

    def __post_init__(self) -> None:
        if self.detect_timeout_ms <= 0:
            raise ValueError(f"detect_timeout_ms must be > 0, got {self.detect_timeout_ms}")
        if self.queue_frames < 1:
            raise ValueError(f"queue_frames must be >= 1, got {self.queue_frames}")
        if self.track.lookback_frames:
            raise ValueError("live output cannot look back: lookback_frames must be 0")


@dataclass
class LiveStats:
    """Counters of a live run; latency is capture to mux, in ms (the stats line uses the
    last 300 frames, benchmarks the whole run)."""

    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0
    frames_obscured: int = 0
    faces: int = 0
    started_s: float = field(default_factory=time.monotonic)
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=300))
    all_latency_ms: list = field(default_factory=list)  # whole run, for benchmarks
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent(self, frame: Frame) -> None:
        """Record one frame leaving through a sink (called from sink threads)."""
        if frame.captured_s:
            ms = (time.monotonic() - frame.captured_s) * 1000
            with self._lock:
                self.latency_ms.append(ms)
                self.all_latency_ms.append(ms)

    def percentiles(self) -> tuple[float, float]:
        """Latency p50, p95 over the last 300 frames."""
        with self._lock:
            return _p50_p95(np.array(self.latency_ms))

    def percentiles_all(self) -> tuple[float, float]:
        """Latency p50, p95 over the whole run."""
        with self._lock:
            return _p50_p95(np.array(self.all_latency_ms))

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started_s, 1e-9)
        p50, p95 = self.percentiles()
        return (f"{self.frames_out / elapsed:5.1f} fps  latency p50 {p50:4.0f} ms p95 {p95:4.0f} ms  "
                f"dropped {self.frames_dropped}  obscured {self.frames_obscured}  faces {self.faces}")


def _p50_p95(values: np.ndarray) -> tuple[float, float]:
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def has_format(name: str, available=None) -> bool:
    """Whether PyAV's FFmpeg has the (de)muxer ``name``. PyAV lists aliases together
    (``video4linux2,v4l2``), so each entry is split on commas."""
    import av

    entries = av.formats_available if available is None else available
    return any(name in entry.split(",") for entry in entries)


@dataclass(frozen=True)
class CameraInput:
    """How to open a platform's camera (and microphone) with FFmpeg's device demuxers."""

    url: str
    format: str
    options: dict
    mic: tuple[str, str] | None = None  # (url, format) of a separate microphone input (Linux)


def camera_input(camera: int = 0, *, size: str | None = None, fps: int | None = None, audio: bool = True,
                 platform: str = sys.platform) -> CameraInput:
    """The device input for camera number ``camera`` on ``platform``: avfoundation on
    macOS (camera and microphone in one input), dshow on Windows, v4l2 plus the ALSA
    default microphone on Linux (stamped with wall-clock time, as ALSA is, so the two
    inputs share one clock)."""
    options = {}
    if size:
        options["video_size"] = size
    if fps:
        options["framerate"] = str(fps)
    if platform == "darwin":
        return CameraInput(f"{camera}:{'0' if audio else 'none'}", "avfoundation", options)
    if platform == "win32":
        return CameraInput(f"video={camera}", "dshow", options)
    return CameraInput(f"/dev/video{camera}", "v4l2", {**options, "timestamps": "abs"},
                       mic=("default", "alsa") if audio else None)


def open_live_source(source: str | None, *, camera: int = 0, size: str | None = None, fps: int | None = None,
                     audio: bool = True, timeout_s: float = 10.0) -> MediaSource:
    """SOURCE: a URL (rtsp, rtmp, http, udp, tcp, srt), '-' for MPEG-TS/Matroska on stdin,
    a file, or None for the platform's camera number ``camera``.

    A source that sends nothing for ``timeout_s`` (at open, or later while reading)
    is a SourceError; Ctrl-C works while it is being opened (the open runs in a
    thread: FFmpeg's open cannot be interrupted from Python)."""
    if source is None:
        cam = camera_input(camera, size=size, fps=fps, audio=audio)
        if not has_format(cam.format):
            raise SourceError(f"this PyAV build cannot open cameras ({cam.format} missing); pipe one in instead: "
                              f"ffmpeg -f {cam.format} -i {cam.url} -f mpegts - | blurcam live - --to ...")
        if not Path(cam.url).exists() and cam.format == "v4l2":
            raise SourceError(f"{cam.url}: no such camera (see: ls /dev/video*)")
        mic = cam.mic if cam.mic and has_format(cam.mic[1]) else None
        return _interruptible(lambda: MediaSource(cam.url, audio=audio, format=cam.format, options=cam.options,
                                                  live=True, timeout_s=timeout_s, mic=mic))
    if source == "-":
        _wait_readable(sys.stdin.buffer, timeout_s)
        return _interruptible(lambda: MediaSource(sys.stdin.buffer, audio=audio, live=True))
    if "://" in source:
        options = {"video_size": size} if size else {}
        return _interruptible(lambda: MediaSource(source, audio=audio, options=options, live=True,
                                                  timeout_s=(timeout_s, timeout_s)))
    return MediaSource(source, audio=audio, live=True)


def _wait_readable(stream, timeout_s: float) -> None:
    """SourceError unless ``stream`` has data (or EOF) within ``timeout_s`` (POSIX)."""
    import select

    try:
        ready, _, _ = select.select([stream], [], [], timeout_s)
    except (OSError, ValueError, TypeError):  # not selectable (Windows pipes): no first-packet timeout
        return
    if not ready:
        raise SourceError(f"stdin: no data within {timeout_s:g} s (is anything piped in?)")


def _interruptible(open_source: Callable[[], MediaSource]) -> MediaSource:
    """Run ``open_source`` in a thread and wait for it where Ctrl-C can reach us. An
    abandoned open (Ctrl-C) is left to its own timeout; nothing has been written yet."""
    result: dict = {}

    def run() -> None:
        try:
            result["source"] = open_source()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, name="blurcam-open", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    if "error" in result:
        raise result["error"]
    return result["source"]


def _paced(items: Iterator, realtime: bool, max_seconds: float | None) -> Iterator:
    """Stamp frames with their capture time; sleep to real time for rehearsal files."""
    origin_media = origin_wall = None
    for item in items:
        if isinstance(item, Frame):
            t = float(item.pts * item.time_base) if item.pts is not None else item.index / 30
            if origin_media is None:
                origin_media, origin_wall = t, time.monotonic()
            if max_seconds is not None and t - origin_media >= max_seconds:
                return
            if realtime:
                delay = origin_wall + (t - origin_media) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            item.captured_s = time.monotonic()
        yield item


class _InFlight:
    """The frame the detector is working on, shared with the watchdog."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frame: Frame | None = None
        self.started_s = 0.0
        self.emitted = False


def run_live(source: MediaSource, sink, config: LiveConfig | None = None, *,
             detector: Detector | Callable[[], Detector] | None = None,
             stats: LiveStats | None = None, on_tick: Callable[[LiveStats], None] | None = None,
             stop: threading.Event | None = None) -> LiveStats:
    """Redact ``source`` into ``sink`` until the source ends, ``max_seconds`` pass or
    ``stop`` is set. ``detector``: an instance, or a factory called in the detector
    thread (default: ``make_detector(config.detector)``), so the stream starts at
    once, obscured, while the model loads. ``on_tick`` runs about once a second.
    The caller commits or aborts the sink.
    """
    config = config or LiveConfig()
    stats = stats or LiveStats()
    stop = stop or threading.Event()
    stages = Stages()
    frames_q: queue.Queue = queue.Queue(maxsize=config.queue_frames)
    detected_q: queue.Queue = queue.Queue(maxsize=config.queue_frames + 2)
    audio_q: queue.Queue = queue.Queue(maxsize=256)
    inflight = _InFlight()
    tracker = Persistence(config.track)
    rng = np.random.default_rng()
    timeout_s = config.detect_timeout_ms / 1000

    def read() -> None:
        try:
            for item in _paced(source.items(), config.realtime, config.max_seconds):
                if stop.is_set() or stages.stop.is_set():
                    return
                if isinstance(item, Frame):
                    stats.frames_in += 1
                    if loaded:  # made here, off the detector's thread (before loading, frames are obscured)
                        item.view = make_view(item, view_side(loaded[0]))
                    try:
                        frames_q.put_nowait(item)
                    except queue.Full:  # behind real time: drop at the input, never pass it raw
                        stats.frames_dropped += 1
                elif config.audio:
                    try:
                        audio_q.put_nowait(item)
                    except queue.Full:
                        pass
        finally:
            stages.put(frames_q, END)

    loaded: list[Detector] = []  # filled by the loader thread once the model is ready

    def load() -> None:
        try:
            active = _load(detector, config)
            # One call at the stream's size first: the runtimes allocate on their first
            # inference at a new size, and that stall would drop live frames.
            w, h = view_size(source.info.width, source.info.height, view_side(active))
            active.detect(np.zeros((h, w, 3) if source.info.rotation_deg % 180 == 0 else (w, h, 3), np.uint8), 0)
            loaded.append(active)
        except Exception as exc:  # stay obscured for the whole run, and say why
            log.error("detector failed to load (%s); every frame is obscured", exc)

    def detect() -> None:
        while (frame := stages.get(frames_q)) is not END:
            if not loaded:  # the model is still loading: the stream starts obscured
                stages.put(detected_q, (frame, None))
                continue
            with inflight.lock:
                inflight.frame, inflight.started_s, inflight.emitted = frame, time.monotonic(), False
            try:
                faces = detect_frame(loaded[0], frame)
            except Exception as exc:  # fail closed
                log.warning("detector failed on frame %d (%s); obscuring it", frame.index, exc)
                faces = None
            with inflight.lock:
                late = inflight.emitted
                inflight.frame = None
            stages.put(detected_q, (None if late else frame, faces))
        stages.put(detected_q, END)

    def emit(frame: Frame, obscure: bool, faces=None) -> None:
        if obscure:
            obscure_whole(frame.planes, config.redact, rng)
            stats.frames_obscured += 1
        else:
            redact_faces(frame.planes, faces.xyxy, config.redact, rng)
            stats.faces += len(faces)
        sink.write_frame(frame)
        for packet in drain(audio_q):
            sink.write_audio(packet)
        stats.frames_out += 1

    def watchdog() -> None:
        """Send the in-flight frame obscured if its detection is overdue."""
        with inflight.lock:
            frame = inflight.frame
            if frame is None or inflight.emitted or time.monotonic() - inflight.started_s < timeout_s:
                return
            inflight.emitted = True
        log.warning("detection of frame %d took over %.0f ms; sent obscured", frame.index, config.detect_timeout_ms)
        # The detector reads the frame's view (made by the reader once the model is
        # loaded), not its planes, and a late result is not emitted again: the planes
        # can be obscured and sent as they are.
        emit(frame, obscure=True)

    loader = threading.Thread(target=load, name="blurcam-live-loader", daemon=True)
    loader.start()
    stages.start("live-reader", read)
    stages.start("live-detector", detect)
    last_tick = time.monotonic()
    try:
        while not stop.is_set():
            stages.check()
            try:
                got = detected_q.get(timeout=min(0.05, timeout_s / 4))
            except queue.Empty:
                watchdog()
                got = None
            if got is END:
                break
            if got is not None:
                frame, detections = got
                faces = tracker.update(detections)
                if frame is not None:
                    emit(frame, obscure=detections is None, faces=faces)
            if on_tick is not None and time.monotonic() - last_tick >= 1.0:
                last_tick = time.monotonic()
                on_tick(stats)
        stages.check()
    except Stop:
        stages.check()
    finally:
        stop.set()
        stages.shutdown([frames_q, detected_q, audio_q])
        loader.join()
        if loaded and loaded[0] is not detector:
            loaded[0].close()
    return stats


def _load(detector, config: LiveConfig) -> Detector:
    if detector is None:
        # Every detector on every frame: a stream has no look-back, so a face first seen
        # on a frame a file preset would skip (balanced: CenterFace every 2nd) goes out raw.
        return make_detector(config.detector, threshold=config.threshold, centerface_every=1)
    if hasattr(detector, "detect"):
        return detector
    return detector()  # a factory


def live_config(**kwargs) -> LiveConfig:
    """LiveConfig from keyword arguments, ValueError -> UsageError (for the CLI)."""
    try:
        return LiveConfig(**kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
