"""The frame loop, once for files and streams: read -> view -> detect (fail closed) ->
persist -> redact -> write. What differs between a file and a stream is a policy
(blurcam.policy: FilePolicy, LivePolicy), which holds settings and returns decisions;
the loop owns the queues, the threads and the counters (blurcam.runstats: RunStats,
LiveStats; blurcam.flight: Flight, the frames in flight and each stage's pace).

Threads (bounded queues, one stop event, errors re-raised in the caller; see stages):

    reader      source items; each frame with the detector's view of it  -> frames queue
                audio packets                                              -> audio queue
    detector    loads the model if given a factory (frames are obscured until it is
                ready), then detects; a frame whose detection raises is obscured
                                                        (frame, faces or None) -> detected queue
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
from collections import deque
from collections.abc import Callable

import numpy as np

from .detect import Detector, view_side
from .detect.ensemble import cadenced, set_every
from .flight import DETECTION, KEPT, LATE, REDACTION, SINK, Flight
from .io.convert import view_size
from .io.sink import Sink
from .io.source import MediaSource
from .policy import Pending, Policy
from .redact import RedactConfig, obscure_whole, redact_faces, regions_for
from .runstats import FrameRecord, RunStats
from .stages import END, Stages, Stop, drain
from .track import Persistence, TrackConfig, one_box_per_face
from .types import Faces, Frame
from .view import detect_frame, make_view

log = logging.getLogger(__name__)


class _DetectorSlot:
    """The detector. An instance (``detector``) is the caller's and ready at once (warm
    it up at the stream's size first if that matters). A ``factory`` is loaded and,
    under a stream policy, makes one call at the stream's size (where runtimes
    allocate, a stall that would drop live frames). With ``load_in_background`` (a
    camera or stream) that happens in a thread of its own and frames go out obscured
    until it is done, so a stream starts at once; a detector that fails to load there
    leaves every frame obscured, and says why. Otherwise (files) the factory runs
    before the first frame, and its error is the caller's."""

    def __init__(self, detector: Detector | None, factory: Callable[[], Detector] | None, info,
                 policy: Policy) -> None:
        self.owned = factory is not None
        self._ready: list[Detector] = []
        self._thread = None
        self._warm = policy.warm_at_size
        if factory is not None and policy.load_in_background:
            self._thread = threading.Thread(target=self._load, args=(factory, info), name="blurcam-loader",
                                            daemon=True)
            self._thread.start()
        elif factory is not None:
            self._ready.append(factory())
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


def run_frames(source: MediaSource, sink: Sink, policy: Policy, *, detector: Detector | None = None,
               detector_factory: Callable[[], Detector] | None = None,
               redact: RedactConfig, track: TrackConfig, stats: RunStats | None = None,
               on_frame: Callable[[FrameRecord], None] | None = None,
               on_tick: Callable[[RunStats], None] | None = None,
               stop: threading.Event | None = None) -> RunStats:
    """Redact every frame of ``source`` into ``sink`` under ``policy``; returns ``stats``.

    Give exactly one of ``detector`` (an instance, ready: the caller's, who closes it)
    or ``detector_factory`` (the loop loads it, and closes what it made; under the
    live policy it is loaded and warmed up in a thread while frames go out obscured).
    The sink gets frames in order, each at most once, each redacted or obscured whole;
    the caller commits or aborts it. ``on_frame`` runs in the caller's thread after
    each frame is written (progress, reports); ``on_tick`` about once a second; setting
    ``stop`` ends the run early. An error in a worker thread (the source breaking, the
    sink failing) stops the run and is raised here; a detector raising on a frame is
    not an error: that frame leaves obscured whole.
    """
    if (detector is None) == (detector_factory is None):
        raise ValueError("give run_frames exactly one of detector and detector_factory")
    stats = stats if stats is not None else RunStats()
    stop = stop or threading.Event()
    stages = Stages()
    frames_q: queue.Queue = queue.Queue(maxsize=policy.queue_frames)  # (frame, view or None)
    detected_q: queue.Queue = queue.Queue(maxsize=policy.queue_frames + 2)  # (frame or None, faces or None)
    audio_q: queue.Queue = queue.Queue(maxsize=policy.audio_queue_packets)
    slot = _DetectorSlot(detector, detector_factory, source.info, policy)
    flight = Flight(policy.latency_s, policy.max_in_flight)
    inflight = _InFlight()
    tracker = Persistence(track)
    rng = np.random.default_rng()
    drops = threading.Lock()  # frames are dropped from the reader's thread and the caller's
    started = time.perf_counter()

    def drop(reason: str) -> None:
        """Count one frame dropped, never sent: ``reason`` is the stage behind, or LATE."""
        with drops:
            stats.frames_dropped += 1
            stats.dropped_by[reason] += 1
        policy.dropped()

    def admit(frame: Frame, view: np.ndarray | None) -> None:
        """Queue ``frame`` for detection: wait for room (a file), or drop it when it
        would leave late or the detector has no room (a stream); never pass it on raw."""
        if policy.waits_for_room:
            stages.put(frames_q, (frame, view))
        else:
            in_flight = flight.frames(sink)
            if not flight.admits(sink):
                drop(flight.behind(sink))
                return
            try:
                frames_q.put_nowait((frame, view))
            except queue.Full:  # the detector is behind
                drop(DETECTION)
                return
            stats.in_flight_max = max(stats.in_flight_max, in_flight + 1)
        flight.entered()

    def read() -> None:
        try:
            for item in policy.items(source):
                if stop.is_set() or stages.stop.is_set():
                    return
                if isinstance(item, Frame):
                    stats.frames_in += 1
                    active = slot.get()  # the view is made here, off the detector's thread
                    admit(item, make_view(item, view_side(active)) if active is not None else None)
                else:
                    try:
                        audio_q.put_nowait(item)
                    except queue.Full:  # a stream's audio is bounded: the excess is dropped
                        pass
        finally:
            stages.put(frames_q, END)

    def detect() -> None:
        while (message := stages.get(frames_q)) is not END:
            frame, view = message
            message = None  # the view goes once detected: only the planes stay buffered
            active = slot.get()
            if active is None:  # still loading, or failed to: obscured
                flight.moved(DETECTION, REDACTION)
                stages.put(detected_q, (frame, None))
                continue
            started_s = time.monotonic()
            inflight.start(frame, policy.deadline_s(frame, started_s))
            try:
                faces = detect_frame(active, frame, view)
            except Exception as exc:  # fail closed: this frame will be obscured whole
                log.warning("detector failed on frame %d (%s); obscuring the whole frame", frame.index, exc)
                faces = None
            view = None
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

    def emit(item: Pending) -> None:
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
            release(policy.flush())  # the frames kept are older: they leave first
            emit(Pending(frame, Faces.empty(), obscure=True))

    def release(items: list[Pending]) -> None:
        for item in items:
            flight.moved(KEPT, REDACTION)
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
                if frame is not None and policy.late(frame, flight.after_detection_s(sink)):  # dropped, never sent late
                    drop(LATE)
                    flight.left(REDACTION)
                    late_in_a_row += 1
                    if late_in_a_row == 30:
                        log.warning("30 frames in a row would have left later than %.0f ms and were dropped "
                                    "(per frame: %s); allow more latency or choose a faster preset",
                                    policy.latency_s * 1000, flight.describe(sink))
                elif frame is not None:  # None: the watchdog sent it already
                    late_in_a_row = 0
                    flight.moved(REDACTION, KEPT)
                    release(policy.keep(Pending(frame, update.faces, obscure=detections is None), update))
            if on_tick is not None and time.monotonic() - last_tick >= 1.0:
                last_tick = time.monotonic()
                on_tick(stats)
        release(policy.flush())
        if not stop.is_set():
            stages.join()
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
