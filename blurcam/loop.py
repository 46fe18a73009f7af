"""The frame loop, once for files and streams: read -> view -> detect (fail closed) ->
persist -> redact -> write. What differs between a file and a stream is a policy:

    FilePolicy   waits for every frame and every detection (back-pressure), and holds
                 ``lookback_frames`` frames so faces found late are painted back
    LivePolicy   paces a rehearsal file to real time, drops frames at the input when
                 any stage is behind (detection, redaction or the sink: no more frames
                 in flight than let a new one leave within the latency bound at the
                 stages' pace), drops a frame that would still leave late, sends a frame whose
                 detection is overdue obscured whole (a watchdog); with a delay it holds each
                 frame (and its audio) that long, looks back over the frames it holds as a
                 file does, and adapts CenterFace's cadence; without one it never looks back

Threads (bounded queues, one stop event, errors re-raised in the caller; see stages):

    reader      source items; the detector's view of each frame      -> frames queue
                audio packets                                          -> audio queue
    detector    loads the model if given a factory (frames are obscured until it is
                ready), then detects; a frame whose detection raises is obscured
    caller      persistence, look-back, redaction, the sink; the watchdog

Nothing reaches the sink that has not been through detection and redaction, or been
obscured whole.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .detect import Detector, view_side
from .detect.ensemble import cadenced, set_every
from .io.convert import view_size
from .io.sink import Sink
from .io.source import MediaSource
from .redact import RedactConfig, obscure_whole, redact_faces, regions_for
from .stages import END, Stages, Stop, drain
from .track import Persistence, TrackConfig, TrackUpdate, one_box_per_face
from .types import Faces, Frame
from .view import detect_frame, make_view

log = logging.getLogger(__name__)


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
    """Counts of one run. frames: written to the sink; frames_in: read from the source
    (more when a stream drops frames). ``damaged``/``frames_expected``: --salvage."""

    frames: int = 0
    frames_in: int = 0
    frames_dropped: int = 0
    dropped_by: Counter = field(default_factory=Counter)  # stage that was behind (or "late") -> frames
    in_flight_max: int = 0  # most frames at once between the input and out of the sink
    frames_obscured_whole: int = 0
    faces_detected: int = 0
    faces_carried: int = 0
    seconds: float = 0.0
    damaged: bool = False
    frames_expected: int | None = None
    centerface_every: int | None = None  # a live delayed run's CenterFace cadence now (1: every frame)
    centerface_every_max: int | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def faces(self) -> int:
        return self.faces_detected + self.faces_carried


@dataclass
class LiveStats(RunStats):
    """RunStats plus latency, capture to mux in ms (the stats line uses the last 300
    frames, benchmarks the whole run)."""

    started_s: float = field(default_factory=time.monotonic)
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=300))
    all_latency_ms: list = field(default_factory=list)
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
        cadence = f"  centerface every {self.centerface_every}" if self.centerface_every else ""
        return (f"{self.frames / elapsed:5.1f} fps  latency p50 {p50:4.0f} ms p95 {p95:4.0f} ms{cadence}  "
                f"dropped {self.frames_dropped}{self.drop_reasons()}  obscured {self.frames_obscured_whole}  "
                f"faces {self.faces}")

    def drop_reasons(self) -> str:
        """' (behind: redaction 80, sink 3; late 1)': which stage was behind when frames
        were dropped at the input, and frames dropped because they would have left late."""
        behind = ", ".join(f"{stage} {n}" for stage, n in self.dropped_by.most_common() if stage != LATE)
        late = self.dropped_by.get(LATE, 0)
        parts = ([f"behind: {behind}"] if behind else []) + ([f"late {late}"] if late else [])
        return f" ({'; '.join(parts)})" if parts else ""


def _p50_p95(values: np.ndarray) -> tuple[float, float]:
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


DETECTION, REDACTION, SINK, LATE = "detection", "redaction", "sink", "late"
HELD = "held"  # detected, waiting out the live delay: not in flight (it waits on purpose, no stage is behind)


class Flight:
    """Frames between the input and out of the sink, and what each stage costs per frame.

    The loop counts frames in (``entered``), from stage to stage (``moved``: detection,
    redaction, the sink's ``write_frame``) and out (``left``); the sink says how many
    it still holds once ``write_frame`` has returned (``backlog``) and its own time per
    frame (``frame_s``). The stage holding the most frames is the one behind
    (``behind``). Each stage of the loop reports its time per frame (``took``; an
    exponential average). Thread-safe.

    Three servers in a row: the detector's thread, the caller's (redaction, then
    ``write_frame``) and the sink's own. A new frame leaves after every stage's time
    plus its wait at the slowest point: each frame ahead of it at a server or before
    it costs that server's time per frame (``expected_s``). ``admits`` a frame when
    that is within ``bound_s`` and fewer than ``max_frames`` are in flight, so the
    detector is kept fed when it is what is behind, and nothing queues past the bound.
    """

    _SMOOTHING = 0.2

    def __init__(self, bound_s: float, max_frames: int) -> None:
        self.bound_s, self.max_frames = bound_s, max_frames
        self._lock = threading.Lock()
        self._held = {DETECTION: 0, REDACTION: 0, SINK: 0, HELD: 0}  # frames waiting for or in each stage of the loop
        self.stage_s = {DETECTION: 0.0, REDACTION: 0.0, SINK: 0.0}
        self._spread_s = dict.fromkeys(self.stage_s, 0.0)  # average deviation from stage_s

    def entered(self) -> None:
        with self._lock:
            self._held[DETECTION] += 1

    def moved(self, stage: str, to: str) -> None:
        with self._lock:
            self._held[stage] -= 1
            self._held[to] += 1

    def left(self, stage: str) -> None:
        with self._lock:
            self._held[stage] -= 1

    def took(self, stage: str, seconds: float) -> None:
        with self._lock:
            old = self.stage_s[stage]
            self.stage_s[stage] = seconds if old == 0.0 else old + self._SMOOTHING * (seconds - old)
            if old:
                self._spread_s[stage] += self._SMOOTHING * (abs(seconds - old) - self._spread_s[stage])

    def frames(self, sink: Sink) -> int:
        """Frames in flight now: in the loop's queues and threads, plus the sink's backlog."""
        with self._lock:
            return sum(n for stage, n in self._held.items() if stage != HELD) + int(getattr(sink, "backlog", 0))

    def _servers(self, sink: Sink) -> list[tuple[float, int]]:
        """(seconds per frame, frames at it or before it) for the detector's, the
        caller's and the sink's thread, in order."""
        with self._lock:
            held, t = dict(self._held), dict(self.stage_s)
        ahead_detector = held[DETECTION]
        ahead_caller = ahead_detector + held[REDACTION] + held[SINK]
        ahead_sink = ahead_caller + int(getattr(sink, "backlog", 0))
        return [(t[DETECTION], ahead_detector), (t[REDACTION] + t[SINK], ahead_caller),
                (float(getattr(sink, "frame_s", 0.0)), ahead_sink)]

    def expected_s(self, sink: Sink) -> float:
        """When a frame admitted now would leave the sink, in seconds from now."""
        servers = self._servers(sink)
        return sum(t for t, _ in servers) + max(t * ahead for t, ahead in servers)

    def admits(self, sink: Sink) -> bool:
        return self.frames(sink) < self.max_frames and self.expected_s(sink) <= self.bound_s

    def after_detection_s(self, sink: Sink) -> float:
        """Seconds a detected frame may still need: redaction, then the sink, each at its
        average plus twice its average deviation (a crowd's redaction cost varies from
        frame to frame; the deadline check errs on the side of dropping)."""
        with self._lock:
            needs = {stage: self.stage_s[stage] + 2 * self._spread_s[stage] for stage in (REDACTION, SINK)}
        return needs[REDACTION] + needs[SINK] + float(getattr(sink, "frame_s", 0.0))

    def behind(self, sink: Sink) -> str:
        """The stage holding the most frames: the detector's, the sink's own backlog, or
        the caller's thread (redaction then ``write_frame``: the slower of the two by
        time); the slowest stage by time when none holds any."""
        with self._lock:
            held, stage_s = dict(self._held), dict(self.stage_s)
        caller = held[REDACTION] + held[SINK]
        backlog = int(getattr(sink, "backlog", 0))
        if max(held[DETECTION], caller, backlog) <= 0:
            return max(self.times(sink).items(), key=lambda kv: kv[1])[0]
        if held[DETECTION] >= max(caller, backlog):
            return DETECTION
        if backlog >= caller:
            return SINK
        return REDACTION if stage_s[REDACTION] >= stage_s[SINK] else SINK

    def times(self, sink: Sink) -> dict[str, float]:
        """Seconds per frame of each stage; the sink's is its ``write_frame`` plus its own thread's."""
        with self._lock:
            times = dict(self.stage_s)
        times[SINK] += float(getattr(sink, "frame_s", 0.0))
        return times

    def describe(self, sink: Sink) -> str:
        return ", ".join(f"{stage} {s * 1000:.0f} ms" for stage, s in self.times(sink).items())


class _Pending:
    """A detected frame on its way to the sink, with look-back boxes painted onto it later."""

    __slots__ = ("frame", "faces", "extra", "obscure")

    def __init__(self, frame: Frame, faces: Faces, obscure: bool) -> None:
        self.frame, self.faces, self.obscure = frame, faces, obscure
        self.extra: list[Faces] = []


def paint_lookback(held: deque[_Pending], update: TrackUpdate, depth: int | None = None) -> None:
    """Paint ``update``'s look-back boxes onto the frames ``held`` (oldest first), the
    newest first and no farther back than the update reaches, nor than ``depth`` frames."""
    reach = update.reach
    reach = depth if reach is None else reach if depth is None else min(reach, depth)
    for back, earlier in enumerate(reversed(held), start=1):
        if reach is not None and back > reach:
            break
        boxes = update.owed_to(back)
        if len(boxes):
            earlier.extra.append(boxes)


class FilePolicy:
    """A file: every frame is read, detected and written, in order (back-pressure, no
    drops), and the last ``lookback_frames`` frames are held so a face confirmed
    late is painted back over them (``TrackUpdate.owed_to``)."""

    queue_frames: int
    watchdog_s = None  # a file waits for its detector, however slow
    delay_s = 0.0  # frames leave as the look-back window moves on, not by the clock
    load_in_background = False  # nothing to drop while the model loads: load it first
    warm_at_size = False  # nor while it allocates on its first call
    latency_s, max_in_flight = math.inf, 1 << 30  # no deadline; back-pressure bounds the queues

    def __init__(self, lookback_frames: int, queue_frames: int = 4, regions=None) -> None:
        self.lookback_frames, self.queue_frames, self.regions = lookback_frames, queue_frames, regions
        self._held: deque[_Pending] = deque()

    def items(self, source: MediaSource) -> Iterator:
        return source.items()

    def admit(self, stages: Stages, frames_q: queue.Queue, frame: Frame, stats: RunStats,
              flight: Flight | None = None, sink: Sink | None = None) -> bool:
        stages.put(frames_q, frame)
        return True

    def late(self, frame: Frame, flight: Flight, sink: Sink) -> bool:
        return False  # a file has no deadline

    def admit_audio(self, audio_q: queue.Queue, packet) -> None:
        audio_q.put(packet)  # unbounded, but the reader is held back by the frames queue

    def hold(self, pending: _Pending, update: TrackUpdate) -> list[_Pending]:
        """Paint ``update``'s look-back onto the held frames, hold ``pending``, and
        return the frames that leave the look-back window (oldest first)."""
        if self.lookback_frames:
            paint_lookback(self._held, update)
        self._held.append(pending)
        ready = []
        while len(self._held) > self.lookback_frames:
            ready.append(self._with_regions(self._held.popleft()))
        return ready

    def flush(self) -> list[_Pending]:
        ready, self._held = list(self._held), deque()
        return [self._with_regions(item) for item in ready]

    def due(self) -> list[_Pending]:
        return []  # a file's frames leave the window as later ones arrive (hold)

    def deadline_s(self, frame: Frame, started_s: float) -> float:
        return math.inf

    def audio_until_s(self, frame: Frame) -> float:
        return math.inf  # a file's audio goes out as read: its muxer interleaves by time

    def cadence(self, ran: bool, seconds: float) -> int | None:
        return None  # a file keeps its preset's cadence

    def _with_regions(self, item: _Pending) -> _Pending:
        """The manual-regions hook: a frame's boxes are final once it leaves the window."""
        if self.regions is not None:
            item.faces, item.extra = self.regions.apply(item.frame, Faces.concat([item.faces, *item.extra])), []
        return item


class LivePolicy:
    """A stream: its latency is bounded whichever stage is behind, at ``delay_s`` plus
    ``latency_ms``. A frame is dropped at the input (and counted, with the stage that
    is behind named) when the frames already in flight would make it leave later than
    that (see ``Flight.admits``) or the detector's queue is full; a detected frame that
    would still leave later (its age plus redaction and sink at their current pace) is
    dropped before redaction (counted as late), never sent late. A frame whose
    detection is not back in time is sent obscured whole (a watchdog: ``detect_timeout_ms``
    after its detection started, or with a delay when it must leave).

    ``delay_s`` > 0: each detected frame is held until ``delay_s`` after its capture
    (its audio with it), and look-back and gap boxes (``TrackUpdate.owed_to``) are
    painted onto the frames held, as a file's are; CenterFace's cadence adapts
    (``cadence``: every frame when there is time, every 2nd or 3rd when not, the boxes
    between sightings bridged by look-back inside the delay and carried at its edge).
    ``delay_s`` 0: nothing is held back and nothing is looked back.

    ``realtime`` paces a file to its timestamps; ``max_seconds`` stops after that much
    source time; ``load_first``: load and warm up a detector factory before the first
    frame (a paced file loses nothing by waiting) instead of streaming obscured frames
    meanwhile; ``frame_s``: the source's frame interval (the cadence's budget);
    ``lookback_frames``: how far back a new face is painted (None: every frame held)."""

    MAX_EVERY = 3  # CenterFace at least every 3rd frame: look-back bridges 2 frames unseen
    _HEADROOM = 0.85  # share of a frame interval detection may take (the encoder shares the cores)
    _RELAX = 0.7  # a slower cadence is kept until the faster one would fit in this share
    _SMOOTHING = 0.2
    _BEHIND_S = 2.0  # after a drop, CenterFace stays at its slowest cadence this long (frees the cores)

    def __init__(self, detect_timeout_ms: float, *, realtime: bool = False, max_seconds: float | None = None,
                 queue_frames: int = 4, latency_ms: float = 400.0, max_in_flight: int = 8,
                 load_first: bool = False, delay_s: float = 0.0, frame_s: float = 1 / 30,
                 lookback_frames: int | None = None) -> None:
        self.watchdog_s = detect_timeout_ms / 1000
        self.realtime, self.max_seconds, self.queue_frames = realtime, max_seconds, queue_frames
        self.delay_s, self.frame_s, self.lookback_frames = delay_s, frame_s, lookback_frames
        self.latency_s, self.max_in_flight = delay_s + latency_ms / 1000, max_in_flight
        self.load_in_background = not load_first  # stream at once, obscured, while a model made here loads
        self.warm_at_size = True  # its first call at the stream's size allocates: a stall that drops frames
        self._held: deque[_Pending] = deque()
        self.every = 1
        self._with_s: float | None = None  # detection time of a frame CenterFace ran on (s, smoothed)
        self._without_s: float | None = None  # and of one it skipped
        self._dropped_s = -math.inf  # when a frame was last dropped (monotonic; written by the reader and the caller)

    def items(self, source: MediaSource) -> Iterator:
        """Stamp frames with their capture time; sleep to real time for rehearsal files."""
        origin_media = origin_wall = None
        for item in source.items():
            if isinstance(item, Frame):
                t = item.time_s()
                if origin_media is None:
                    origin_media, origin_wall = t, time.monotonic()
                if self.max_seconds is not None and t - origin_media >= self.max_seconds:
                    return
                if self.realtime:
                    delay = origin_wall + (t - origin_media) - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                item.captured_s = time.monotonic()
            yield item

    def admit(self, stages: Stages, frames_q: queue.Queue, frame: Frame, stats: RunStats,
              flight: Flight | None = None, sink: Sink | None = None) -> bool:
        """Queue ``frame`` for detection, or drop it (never pass it on raw); True if queued."""
        in_flight = 0
        if flight is not None:
            in_flight = flight.frames(sink)
            if not flight.admits(sink):
                stats.frames_dropped += 1
                stats.dropped_by[flight.behind(sink)] += 1
                self._dropped_s = time.monotonic()
                return False
        try:
            frames_q.put_nowait(frame)
            stats.in_flight_max = max(stats.in_flight_max, in_flight + 1)
            return True
        except queue.Full:  # the detector is behind
            stats.frames_dropped += 1
            stats.dropped_by[DETECTION] += 1
            self._dropped_s = time.monotonic()
            return False

    def late(self, frame: Frame, flight: Flight, sink: Sink) -> bool:
        """True if ``frame``, about to be redacted, would leave the sink later than the
        latency bound (its age plus redaction and sink at their current pace)."""
        if not frame.captured_s:
            return False
        if time.monotonic() - frame.captured_s + flight.after_detection_s(sink) > self.latency_s:
            self._dropped_s = time.monotonic()
            return True
        return False

    def deadline_s(self, frame: Frame, started_s: float) -> float:
        """When (``time.monotonic()``) the watchdog sends ``frame`` obscured if its
        detection, started at ``started_s``, is not back: when it must leave."""
        if self.delay_s and frame.captured_s:
            return max(frame.captured_s + self.delay_s, started_s + min(self.watchdog_s, self.delay_s))
        return started_s + self.watchdog_s

    def admit_audio(self, audio_q: queue.Queue, packet) -> None:
        try:
            audio_q.put_nowait(packet)
        except queue.Full:
            pass

    def audio_until_s(self, frame: Frame) -> float:
        """Audio up to this media time goes out with ``frame``: a delayed stream holds
        its audio as long as its video, so the two leave together."""
        return frame.time_s() if self.delay_s else math.inf

    def hold(self, pending: _Pending, update: TrackUpdate) -> list[_Pending]:
        """Paint ``update``'s look-back onto the frames held, hold ``pending``; the
        frames whose delay is over (all of them without a delay), oldest first."""
        if not self.delay_s:
            return [pending]
        paint_lookback(self._held, update, self.lookback_frames)
        pending.frame.view = None  # detected: only its pixels wait out the delay
        self._held.append(pending)
        return self.due()

    def due(self) -> list[_Pending]:
        """Held frames whose delay is over (call it often: the loop does on every turn)."""
        now, ready = time.monotonic(), []
        while self._held and self._held[0].frame.captured_s + self.delay_s <= now:
            ready.append(self._held.popleft())
        return ready

    def flush(self) -> list[_Pending]:
        ready, self._held = list(self._held), deque()
        return ready

    def cadence(self, ran: bool, seconds: float) -> int | None:
        """CenterFace's cadence after a detection that took ``seconds`` (``ran``: with
        CenterFace): the most frequent, up to every ``MAX_EVERY``-th frame, whose
        average time per frame fits the frame interval; the slowest for ``_BEHIND_S``
        after any frame was dropped, whichever stage was behind (detection shares the
        cores with redaction and the encoder: frames are dropped only when even the
        slowest cadence cannot keep up). Without a delay: 1, every frame (nothing
        can be looked back)."""
        if not self.delay_s:
            return 1
        attr = "_with_s" if ran else "_without_s"
        old = getattr(self, attr)
        setattr(self, attr, seconds if old is None else old + self._SMOOTHING * (seconds - old))
        with_s = self._with_s or 0.0
        without_s = self._without_s if self._without_s is not None else 0.2 * with_s  # MediaPipe alone

        def per_frame(every: int) -> float:
            return (with_s + (every - 1) * without_s) / every

        if time.monotonic() - self._dropped_s < self._BEHIND_S:
            self.every = self.MAX_EVERY
            return self.every
        budget = self._HEADROOM * self.frame_s
        every = next((k for k in range(1, self.MAX_EVERY + 1) if per_frame(k) <= budget), self.MAX_EVERY)
        if every < self.every and per_frame(every) > self._RELAX * budget:
            every = self.every  # only speed up with room to spare (no flapping)
        self.every = every
        return every


Policy = FilePolicy | LivePolicy


class _DetectorSlot:
    """The detector. An instance is the caller's and ready at once (warm it up at the
    stream's size first if that matters). A factory is loaded and, under a stream
    policy, makes one call at the stream's size (where runtimes allocate, a stall that
    would drop live frames). With ``load_in_background`` (a camera or stream) that
    happens in a thread of its own and frames go out obscured until it is done, so a
    stream starts at once; a detector that fails to load there leaves every frame
    obscured, and says why. Otherwise (files) the factory runs before the first frame."""

    def __init__(self, detector: Detector | Callable[[], Detector], info, policy: Policy) -> None:
        self.owned = not hasattr(detector, "detect")
        self._ready: list[Detector] = []
        self._thread = None
        self._warm = policy.warm_at_size
        if self.owned and policy.load_in_background:
            self._thread = threading.Thread(target=self._load, args=(detector, info), name="blurcam-loader",
                                            daemon=True)
            self._thread.start()
        elif self.owned:
            self._ready.append(detector())
            if self._warm:
                warm_up(self._ready[0], info)
        else:
            self._ready.append(detector)

    def _load(self, factory: Callable[[], Detector], info) -> None:
        try:
            active = factory()
            if self._warm:
                warm_up(active, info)
            self._ready.append(active)
        except Exception as exc:
            log.error("detector failed to load (%s); every frame is obscured", exc)

    def get(self) -> Detector | None:
        return self._ready[0] if self._ready else None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self.owned and self._ready:
            self._ready[0].close()


def warm_up(detector: Detector, info) -> None:
    """One call on a blank view of a stream's size (``info``: its VideoInfo): the
    runtimes allocate on their first call at a new size, a stall a live stream
    would pay in dropped frames."""
    w, h = view_size(info.width, info.height, view_side(detector))
    detector.detect(np.zeros((h, w, 3) if info.rotation_deg % 180 == 0 else (w, h, 3), np.uint8), 0)


class _InFlight:
    """The frame the detector is working on, shared with the watchdog."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frame: Frame | None = None
        self.deadline_s = math.inf
        self.emitted = False

    def start(self, frame: Frame, deadline_s: float) -> None:
        """The detector starts on ``frame``, which must be back by ``deadline_s`` (monotonic)."""
        with self.lock:
            self.frame, self.deadline_s, self.emitted = frame, deadline_s, False

    def finish(self) -> bool:
        """Done with the frame; True if the watchdog already sent it."""
        with self.lock:
            late, self.frame = self.emitted, None
            return late

    def overdue(self) -> Frame | None:
        """The in-flight frame if its detection is overdue (then marked as sent)."""
        with self.lock:
            frame = self.frame
            if frame is None or self.emitted or time.monotonic() < self.deadline_s:
                return None
            self.emitted = True
            return frame


def _packet_time_s(packet) -> float:
    """An audio packet's media time in seconds (-inf without a pts: it goes at once)."""
    return float(packet.pts * packet.time_base) if packet.pts is not None else -math.inf


def run_frames(source: MediaSource, sink: Sink, detector: Detector | Callable[[], Detector], policy: Policy, *,
               redact: RedactConfig, track: TrackConfig, stats: RunStats | None = None,
               on_frame: Callable[[FrameRecord], None] | None = None,
               on_tick: Callable[[RunStats], None] | None = None,
               stop: threading.Event | None = None) -> RunStats:
    """Redact every frame of ``source`` into ``sink`` under ``policy``; returns ``stats``.

    ``detector``: an instance (ready: the caller's), or a factory (the loop then closes
    what it made; under the live policy it is loaded and warmed up in a thread while
    frames go out obscured). The sink gets frames in order, each at most
    once, each redacted or obscured whole; the caller commits or aborts it.
    ``on_frame`` runs in the caller's thread after each frame is written (progress,
    reports); ``on_tick`` about once a second; setting ``stop`` ends the run early.
    """
    stats = stats if stats is not None else RunStats()
    stop = stop or threading.Event()
    stages = Stages()
    frames_q: queue.Queue = queue.Queue(maxsize=policy.queue_frames)
    detected_q: queue.Queue = queue.Queue(maxsize=policy.queue_frames + 2)
    audio_q: queue.Queue = queue.Queue(maxsize=0 if isinstance(policy, FilePolicy) else 256)
    slot = _DetectorSlot(detector, source.info, policy)
    flight = Flight(policy.latency_s, policy.max_in_flight)
    inflight = _InFlight()
    tracker = Persistence(track)
    rng = np.random.default_rng()
    started = time.perf_counter()

    def read() -> None:
        try:
            for item in policy.items(source):
                if stop.is_set() or stages.stop.is_set():
                    return
                if isinstance(item, Frame):
                    stats.frames_in += 1
                    if (active := slot.get()) is not None:  # here, off the detector's thread
                        item.view = make_view(item, view_side(active))
                    if policy.admit(stages, frames_q, item, stats, flight, sink):
                        flight.entered()
                else:
                    policy.admit_audio(audio_q, item)
        finally:
            stages.put(frames_q, END)

    def detect() -> None:
        while (frame := stages.get(frames_q)) is not END:
            active = slot.get()
            if active is None:  # still loading, or failed to: obscured
                flight.moved(DETECTION, REDACTION)
                stages.put(detected_q, (frame, None))
                continue
            started_s = time.monotonic()
            inflight.start(frame, policy.deadline_s(frame, started_s))
            try:
                faces = detect_frame(active, frame)
            except Exception as exc:  # fail closed: this frame will be obscured whole
                log.warning("detector failed on frame %d (%s); obscuring the whole frame", frame.index, exc)
                faces = None
            took_s = time.monotonic() - started_s
            flight.took(DETECTION, took_s)
            if paced := cadenced(active):
                every = policy.cadence(paced[0].ran, took_s)
                if every is not None:
                    set_every(paced, every)
                    stats.centerface_every = every
                    stats.centerface_every_max = max(stats.centerface_every_max or 1, every)
            flight.moved(DETECTION, REDACTION)
            late = inflight.finish()
            stages.put(detected_q, (None if late else frame, faces))
        stages.put(detected_q, END)

    audio_waiting: deque = deque()  # audio packets read, not yet due (a delayed stream)

    def send_audio(until_s: float) -> None:
        """Write the audio read so far up to media time ``until_s`` (in read order)."""
        audio_waiting.extend(drain(audio_q))
        while audio_waiting and (until_s == math.inf or _packet_time_s(audio_waiting[0]) <= until_s):
            sink.write_audio(audio_waiting.popleft())

    def emit(item: _Pending) -> None:
        frame = item.frame
        faces = Faces.concat([item.faces, *item.extra])
        started_s = time.monotonic()
        faces = one_box_per_face(faces, regions_for(faces.xyxy, (frame.width, frame.height), redact))
        if item.obscure:
            obscure_whole(frame.planes, redact, rng)
            regions = np.array([[0, 0, frame.width, frame.height]], np.int32)
            stats.frames_obscured_whole += 1
        else:
            regions = redact_faces(frame.planes, faces.xyxy, redact, rng)
        redacted_s = time.monotonic()
        flight.took(REDACTION, redacted_s - started_s)
        flight.moved(REDACTION, SINK)
        sink.write_frame(frame)
        flight.took(SINK, time.monotonic() - redacted_s)
        flight.left(SINK)  # to the sink's backlog, if it has a thread of its own
        send_audio(policy.audio_until_s(frame))
        stats.frames += 1
        stats.faces_detected += int((~faces.carried).sum())
        stats.faces_carried += int(faces.carried.sum())
        if on_frame is not None:
            on_frame(FrameRecord(frame.index, frame.time_s() if frame.pts is not None else None,
                                 faces, regions, item.obscure))

    def watchdog() -> None:
        """Send the in-flight frame obscured if its detection is overdue. The detector
        reads the frame's view, not its planes, and a late result is not sent again."""
        frame = inflight.overdue()
        if frame is not None:
            log.warning("detection of frame %d was not back when it had to leave; sent obscured", frame.index)
            release(policy.flush())  # the frames held are older: they leave first
            emit(_Pending(frame, Faces.empty(), obscure=True))

    def release(items: list[_Pending]) -> None:
        for item in items:
            flight.moved(HELD, REDACTION)
            emit(item)

    stages.start("reader", read)
    stages.start("detector", detect)
    last_tick = time.monotonic()
    late_in_a_row = 0
    turn_s = None if policy.watchdog_s is None else min(0.05, policy.watchdog_s / 4, policy.delay_s / 20 or 1)
    try:
        while not stop.is_set():
            got = stages.poll(detected_q, turn_s)
            release(policy.due())
            if got is None:
                watchdog()
            elif got is END:
                break
            else:
                frame, detections = got
                update = tracker.update(detections)
                if frame is not None and policy.late(frame, flight, sink):  # dropped, never sent late
                    stats.frames_dropped += 1
                    stats.dropped_by[LATE] += 1
                    flight.left(REDACTION)
                    late_in_a_row += 1
                    if late_in_a_row == 30:
                        log.warning("30 frames in a row would have left later than %.0f ms and were dropped "
                                    "(per frame: %s); allow more latency or choose a faster preset",
                                    policy.latency_s * 1000, flight.describe(sink))
                elif frame is not None:  # None: the watchdog sent it already
                    late_in_a_row = 0
                    flight.moved(REDACTION, HELD)
                    release(policy.hold(_Pending(frame, update.faces, obscure=detections is None), update))
            if on_tick is not None and time.monotonic() - last_tick >= 1.0:
                last_tick = time.monotonic()
                on_tick(stats)
        release(policy.flush())
        if not stop.is_set():
            for thread in stages.threads:
                thread.join()
        stages.check()
        send_audio(math.inf)
    except Stop:
        stages.check()
    finally:
        stop.set()
        stages.shutdown([frames_q, detected_q, audio_q])
        slot.close()
    stats.seconds = time.perf_counter() - started
    return stats
