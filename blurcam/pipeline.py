"""Jobs: each opens its source, sinks and detector, runs the frame loop, and closes
them, whatever happens. The library's entry points (the CLI is a shell over them):

    redact_file(input, output, PipelineConfig(...))    a video, written atomically
    redact_image(input, output, PipelineConfig(...))   a still image, written atomically
    stream_live(source, destinations, LiveConfig(...))  a camera or stream, in real time

Every failure a user can cause is a BlurcamError subclass (see errors.py).
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from functools import partial
from pathlib import Path

import numpy as np

from .cpu import encoder_threads_beside_detector
from .detect import DEFAULT_LIVE_PRESET, Detector, DetectorConfig, make_detector
from .errors import BlurcamError, SinkError, SourceError, UsageError
from .io.atomic import check_output_path, refuse_same_file, write_atomically
from .io.media import IMAGE_EXTENSIONS, is_image_path, output_suffix
from .io.sink import EncoderConfig, FileSink, Sink
from .io.source import MediaSource, open_live_source
from .io.destination import parse_destinations
from .io.fanout import FanOut
from .io.stream import StreamConfig, StreamSink
from .loop import run_frames
from .policy import FilePolicy, LivePolicy
from .runstats import FrameRecord, LiveStats, RunStats
from .redact import RedactConfig, redact_faces
from .regions import RegionPass, Regions
from .track import TrackConfig
from .types import Frame
from .view import detect_image

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything one run needs besides input and output.

    detector: which detector and how (preset or backend, threshold, CenterFace cadence,
        precision, runtime), see :class:`blurcam.detect.DetectorConfig`.
    queue_frames: capacity of each inter-stage queue, in frames (>= 1).
    salvage: read a damaged input past its errors (RunStats.damaged says if any were met).
    regions: manual regions (blurcam.regions) redacted on top of the detector's boxes;
        apply_exclusions: let their not-a-face regions remove low-score boxes.
    """

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    redact: RedactConfig = field(default_factory=RedactConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    audio: bool = True
    queue_frames: int = 4
    salvage: bool = False
    regions: Regions | None = None
    apply_exclusions: bool = False

    def __post_init__(self) -> None:
        _check_detector(self.detector)
        if self.queue_frames < 1:
            raise ValueError(f"queue_frames must be >= 1, got {self.queue_frames}")


def _check_detector(detector) -> None:
    # A preset's name in place of its config would run until the first worker read it.
    if not isinstance(detector, DetectorConfig):
        raise TypeError(f"detector must be a DetectorConfig, e.g. DetectorConfig(name={detector!r}), "
                        f"got {type(detector).__name__}")


DEFAULT_DELAY_S = 1.0  # bench/live_bench.py, README "Live: the delay"
MAX_DELAY_S = 30.0  # frames kept in memory: 30 s of 1080p is ~2.8 GB


@dataclass(frozen=True, kw_only=True)
class LiveConfig:
    """Settings for one live run.

    detector: which detector and how (default: the live preset), see
        :class:`blurcam.detect.DetectorConfig`; its CenterFace cadence is the run's own
        (see :func:`live_detector`).
    delay_s: seconds each frame (and its audio) is kept before it is sent, so a face
        found late is painted back over the frames before it and CenterFace may skip
        frames when the machine is behind (the file pipeline's protection); 0: sent as
        soon as redacted, CenterFace on every frame, nothing looked back.
    detect_timeout_ms: a frame whose detection has not finished this long after it
        started goes out obscured whole (the detector is too slow or hung); with a
        delay, not before the frame must leave.
    latency_ms: the latency bound beyond the delay, capture to sink: frames are dropped at the input
        when those in flight would make a new one leave later, whichever stage is
        behind (detection, redaction, encoding or sending), and a detected frame that
        would still leave later (its age plus redaction and sink at their pace) is
        dropped before its redaction, never sent late.
    realtime: pace a file source to its timestamps, as a camera delivers frames.
        None: pace a file (``stream_live`` knows; ``run_live`` on its own does not
        pace), not a camera or a stream; False: a file as fast as it decodes.
    max_seconds: stop after this much source time (None: until the source ends or Ctrl-C).
    queue_frames: frames waiting for the detector; more are dropped, not queued.
    max_in_flight: frames between the input and out of the sink, at most, however
        fast the stages are.
    """

    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(name=DEFAULT_LIVE_PRESET))
    delay_s: float = DEFAULT_DELAY_S
    redact: RedactConfig = field(default_factory=RedactConfig)
    track: TrackConfig = field(default_factory=lambda: TrackConfig(hold_frames=10, lookback_frames=0))
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(crf=23, preset="veryfast", live=True))
    audio: bool = True
    detect_timeout_ms: float = 500.0
    latency_ms: float = 400.0
    realtime: bool | None = None
    max_seconds: float | None = None
    queue_frames: int = 4
    max_in_flight: int = 8

    def __post_init__(self) -> None:
        _check_detector(self.detector)
        if self.detect_timeout_ms <= 0:
            raise ValueError(f"detect_timeout_ms must be > 0, got {self.detect_timeout_ms}")
        if self.latency_ms <= 0:
            raise ValueError(f"latency_ms must be > 0, got {self.latency_ms}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {self.max_in_flight}")
        if self.queue_frames < 1:
            raise ValueError(f"queue_frames must be >= 1, got {self.queue_frames}")
        if not 0 <= self.delay_s <= MAX_DELAY_S:
            raise ValueError(f"delay must be between 0 and {MAX_DELAY_S:g} seconds, got {self.delay_s:g}")
        if self.track.lookback_frames:
            raise ValueError("a live run looks back as far as its delay: lookback_frames must be 0")


def settings_record(config: PipelineConfig) -> dict:
    """What a run's output depends on, as plain JSON values: ``config`` (``"config"``;
    its manual regions left out: a report lists them itself, a folder run has none) and
    the SHA-256 of each model file its detector loads (``"models"``: {file name: sha256}).
    A folder run keys its manifest on it; a --report records it."""
    from .models import model_sha256

    return {"config": asdict(replace(config, regions=None)), "models": model_sha256(config.detector.model_files)}


def default_output_path(input_path: str | Path) -> Path:
    """INPUT's name + ``.blurred`` + its extension: clip.mp4 -> clip.blurred.mp4. A video
    in a container blurcam does not write (an animated GIF, a .3gp) becomes an .mp4."""
    p = Path(input_path)
    return p.with_name(f"{p.stem}.blurred{output_suffix(p)}")


def redact_file(input_path: str | Path, output_path: str | Path | None = None,
                config: PipelineConfig | None = None, *, overwrite: bool = False,
                detector: Detector | None = None,
                on_frame: Callable[[FrameRecord], None] | None = None,
                regions: RegionPass | None = None) -> RunStats:
    """Redact a video file into ``output_path`` (atomically: complete or absent).

    ``detector`` overrides ``config.detector`` (tests inject failing detectors).
    ``regions``: the pass that applies ``config.regions`` (made here if not given; give
    one to read its tally afterwards).
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
        preset = config.detector.preset
        if own_detector and encoder.threads is None and preset is not None and preset.encode_threads:
            encoder = replace(encoder, threads=encoder_threads_beside_detector())
        sink = FileSink(output_path, source.info, audio_streams=source.audio_streams,
                        encoder=encoder, overwrite=overwrite)
        if own_detector:
            detector = make_detector(config.detector)
        lookback = config.track.lookback_frames if not source.info.is_live else 0
        if regions is None:
            regions = region_pass(config)
        if regions is not None and regions.slack_s is None:
            regions.slack_s = half_frame_s(source.info)
        stats = run_frames(source, sink, FilePolicy(lookback, config.queue_frames, regions), detector=detector,
                           redact=config.redact, track=config.track, on_frame=on_frame)
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


def region_pass(config: PipelineConfig) -> RegionPass | None:
    """The RegionPass for ``config.regions`` (None without regions); the video job sets
    its slack to half a frame (:func:`half_frame_s`)."""
    if config.regions is None:
        return None
    return RegionPass(config.regions, apply_exclusions=config.apply_exclusions, slack_s=None)


def half_frame_s(info) -> float:
    """Half a frame interval of ``info`` (a VideoInfo) in seconds; 60 fps when unknown."""
    return 0.5 / float(info.frame_rate) if info.frame_rate else 1 / 120


def redact_image(input_path: str | Path, output_path: str | Path | None = None,
                 config: PipelineConfig | None = None, *, overwrite: bool = False,
                 detector: Detector | None = None,
                 on_frame: Callable[[FrameRecord], None] | None = None,
                 regions: RegionPass | None = None) -> RunStats:
    """Redact a still image. EXIF orientation is applied when reading; the output is
    written from pixels alone, so EXIF (GPS, camera, time) and text chunks are gone.
    Manual regions (``config.regions``) apply as at time 0."""
    import cv2

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
    detector = detector or make_detector(config.detector)
    try:
        # Stills are redacted in BGR as read (no 4:2:0 colour loss).
        faces = detect_image(detector, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 0)
    finally:
        if own_detector:
            detector.close()
    regions = regions or region_pass(config)
    if regions is not None:  # a one-frame "video" at time 0, stored as displayed
        faces = regions.apply(Frame((bgr[..., 0],) * 3, 0, 0, Fraction(1, 1)), faces)
    destroyed = redact_faces(bgr, faces.xyxy, config.redact)
    ok, encoded = cv2.imencode(output_path.suffix.lower(), bgr)
    if not ok:
        raise SinkError(f"{output_path}: cannot encode image")
    write_atomically(output_path, encoded.tobytes(), overwrite=overwrite)
    if on_frame is not None:
        on_frame(FrameRecord(0, 0.0, faces, destroyed, False))
    return RunStats(frames=1, faces_detected=len(faces), seconds=time.perf_counter() - started)


def redact_path(input_path: str | Path, output_path: str | Path | None = None,
                config: PipelineConfig | None = None, *, overwrite: bool = False, report: str | Path | None = None,
                report_full_paths: bool = False,
                on_frame: Callable[[FrameRecord], None] | None = None) -> RunStats:
    """Redact a video or a still image (by its extension), and write ``report`` (the
    --report JSON) beside it. The report path is checked before any work, and written
    atomically; if it fails after the output was written, the error says so. The report
    names the files by their base names, or by absolute paths with ``report_full_paths``."""
    from .report import ReportBuilder, write_report

    config = config or PipelineConfig()
    output_path = Path(output_path) if output_path else default_output_path(input_path)
    builder = None
    if report is not None:
        report = Path(report)
        refuse_same_file(input_path, report, "report")
        refuse_same_file(output_path, report, "report", whose="output")
        check_output_path(report, overwrite)
        builder = ReportBuilder(config.regions.ids if config.regions is not None else ())

    def each(record: FrameRecord) -> None:
        if builder is not None:
            builder.add(record)
        if on_frame is not None:
            on_frame(record)

    job = redact_image if is_image_path(input_path) else redact_file
    regions = region_pass(config)
    stats = job(input_path, output_path, config, overwrite=overwrite, on_frame=each, regions=regions)
    if builder is not None:
        try:
            write_report(report, builder.build(input_path=input_path, output_path=output_path,
                                               settings=settings_record(config), stats=stats,
                                               full_paths=report_full_paths, regions=regions), overwrite=overwrite)
        except BlurcamError as exc:
            raise type(exc)(f"{output_path} was written, but not its report: {exc}") from None
    return stats


def live_detector(config: LiveConfig) -> Detector:
    """The live preset's detector. Every detector starts on every frame. Without a
    delay it stays so: a stream without look-back would send raw a face first seen on
    a frame a file preset skips (balanced: CenterFace every 2nd). With a delay its
    CenterFace cadence adapts to the machine (``LivePolicy.cadence``)."""
    return make_detector(replace(config.detector, centerface_every=1), adaptive=config.delay_s > 0)


def run_live(source: MediaSource, sink: Sink, config: LiveConfig | None = None, *,
             detector: Detector | None = None, detector_factory: Callable[[], Detector] | None = None,
             stats: LiveStats | None = None, on_tick: Callable[[RunStats], None] | None = None,
             stop: threading.Event | None = None, load_first: bool = False) -> LiveStats:
    """The frame loop under the live policy, on a source and sink the caller opened and
    closes. ``detector``: an instance (the caller's); or ``detector_factory``, loaded in
    a thread while the stream starts obscured (neither: :func:`live_detector`);
    ``load_first``: a factory is loaded before the first frame instead (a file source,
    which can wait)."""
    config = config or LiveConfig()
    rate = float(source.info.frame_rate or 30)
    # A new face is painted back as far as a file's (TrackConfig's default, 0.5 s at 30 fps):
    # followed back further, a fast face's box grows over the background (1 s: tests/test_live_cli).
    lookback = min(math.ceil(config.delay_s * rate), TrackConfig().lookback_frames)
    policy = LivePolicy(config.detect_timeout_ms, realtime=bool(config.realtime), max_seconds=config.max_seconds,
                        queue_frames=config.queue_frames, latency_ms=config.latency_ms,
                        max_in_flight=config.max_in_flight, load_first=load_first, delay_s=config.delay_s,
                        frame_s=1 / rate, lookback_frames=lookback)
    track = replace(config.track, lookback_frames=lookback)
    stats = stats if stats is not None else LiveStats()
    if detector is None and detector_factory is None:
        detector_factory = partial(live_detector, config)
    run_frames(source, sink, policy, detector=detector, detector_factory=detector_factory, redact=config.redact,
               track=track, stats=stats, on_tick=on_tick, stop=stop)
    return stats


@dataclass
class LiveRun:
    """How a live run ended: its counters, and the stop signal if it was interrupted
    (None: the source ended). A destination that failed on the way was logged when it did."""

    stats: LiveStats
    interrupted: KeyboardInterrupt | None = None


def stream_live(source: str | None, destinations: list[str], config: LiveConfig | None = None, *,
                stream: StreamConfig | None = None, camera: int = 0, size: str | None = None,
                fps: int | None = None, source_timeout_s: float = 10.0, overwrite: bool = False,
                preview: bool = False, on_tick: Callable[[RunStats], None] | None = None,
                detector: Detector | None = None, detector_factory: Callable[[], Detector] | None = None,
                listen: bool = False,
                on_listening: Callable[[], None] | None = None) -> LiveRun:
    """Redact ``source`` (see ``open_live_source``; with ``listen``, an address a
    sender pushes to) into every destination (see
    ``StreamSink``) and a preview window, in real time, until the source ends or a
    stop signal (Ctrl-C, SIGTERM, SIGHUP) arrives; then the sinks are committed, so
    recordings are closed properly. ``on_listening`` is called once every destination
    has been checked, just before a ``listen`` source starts waiting for its sender. A network destination that cannot connect at the
    start is retried in the background while the others go on (when it is the only
    one, that is an error). ``detector`` (an instance) or ``detector_factory``: default
    :func:`live_detector`, loaded in a thread while the stream starts obscured. A file
    ``source`` is paced to real time unless ``config.realtime`` is False, and its detector
    is loaded before the first frame (a file can wait; a camera cannot).

    Every destination is checked before anything is opened: an unsupported one or
    one given twice (any spelling of the same file) is a UsageError, an existing
    recording an OutputExistsError unless ``overwrite``.
    """
    config = config or LiveConfig()
    if not destinations and not preview:
        raise UsageError("give at least one destination with --to (rtmp://..., udp://..., -, or a .ts/.mkv file)")
    is_file = bool(source) and "://" not in source and source != "-"
    for dest in parse_destinations(destinations):
        if not dest.network and dest.target != "-":
            if is_file:  # a recording that is the source itself would destroy it
                refuse_same_file(source, dest.target, "recording")
            check_output_path(Path(dest.target), overwrite)
    if config.realtime is None:
        config = replace(config, realtime=is_file)
    if listen and on_listening is not None:  # destinations are checked: now the wait begins
        on_listening()
    src = open_live_source(source, camera=camera, size=size, fps=fps, audio=config.audio, timeout_s=source_timeout_s,
                           listen=listen)
    run = LiveRun(LiveStats())
    sinks: list[Sink] = []
    try:
        for dest in destinations:
            sinks.append(StreamSink(dest, src.info, audio_streams=src.audio_streams, encoder=config.encoder,
                                    config=stream, overwrite=overwrite, on_sent=run.stats.sent,
                                    required=len(destinations) + preview == 1))
        if preview:
            from .io.preview import PreviewSink

            sinks.append(PreviewSink())
        sink = sinks[0] if len(sinks) == 1 else FanOut(sinks)
        stop = threading.Event()
        try:
            run_live(src, sink, config, detector=detector, detector_factory=detector_factory, stats=run.stats,
                     on_tick=on_tick, stop=stop, load_first=is_file)
        except KeyboardInterrupt as exc:  # flush what was sent, close recordings
            run.interrupted = exc
            stop.set()
        sink.commit()
        return run
    except BaseException:
        for each in sinks:
            each.abort()
        raise
    finally:
        src.close()
