"""What differs between a file and a stream in the frame loop (blurcam.loop): a policy
holds the settings and returns the decisions; the loop owns the queues, the threads
and every counter.

    FilePolicy   waits for room on every queue (back-pressure, nothing dropped) and for
                 every detection, and keeps ``lookback_frames`` frames so faces found
                 late are painted back
    LivePolicy   paces a rehearsal file to real time, drops frames when late, sends a
                 frame whose detection is overdue obscured whole (a watchdog); with a
                 delay it keeps each frame that long, looks back over the frames it keeps
                 as a file does, and adapts CenterFace's cadence; without one it never
                 looks back

A policy is called from the loop's threads: ``items`` from the reader, ``deadline_s``
and ``cadence`` from the detector's, ``dropped`` from the reader's and the caller's,
everything else from the caller's.
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from typing import Protocol

from .io.source import MediaSource
from .track import TrackUpdate
from .types import Faces, Frame


class Pending:
    """A detected frame on its way to the sink: ``faces`` found or carried on it,
    ``extra`` look-back boxes painted onto it later, ``obscure``: its detection failed
    (it leaves obscured whole)."""

    __slots__ = ("frame", "faces", "extra", "obscure")

    def __init__(self, frame: Frame, faces: Faces, obscure: bool) -> None:
        self.frame, self.faces, self.obscure = frame, faces, obscure
        self.extra: list[Faces] = []


def paint_lookback(kept: deque[Pending], update: TrackUpdate, depth: int | None = None) -> None:
    """Paint ``update``'s look-back boxes onto the frames ``kept`` (oldest first), the
    newest first and no farther back than the update reaches, nor than ``depth`` frames."""
    reach = update.reach
    reach = depth if reach is None else reach if depth is None else min(reach, depth)
    for back, earlier in enumerate(reversed(kept), start=1):
        if reach is not None and back > reach:
            break
        boxes = update.owed_to(back)
        if len(boxes):
            earlier.extra.append(boxes)


class Policy(Protocol):
    """The settings and decisions that tell a file's run from a stream's.

    Settings (read by the loop):
        queue_frames        frames waiting for the detector (its queue's size)
        audio_queue_packets audio packets between the reader and the caller (0: unbounded)
        waits_for_room      True: the reader waits when the detector's queue is full
                            (back-pressure); False: it drops the frame (and counts it)
        latency_s, max_in_flight
                            the bound a new frame must leave the sink within, and the
                            most frames in flight (``Flight``); inf and a huge number: none
        watchdog_s          how long a detection may take before its frame leaves
                            obscured whole (None: wait however long)
        delay_s             how long each frame is kept before it leaves (0: at once)
        load_in_background  a detector factory loads in a thread while frames leave obscured
        warm_at_size        a loaded detector makes one call at the stream's size first

    Decisions: ``items`` (what the reader reads, paced and stamped), ``deadline_s``
    (when an overdue detection's frame must leave), ``late`` (drop a detected frame
    rather than send it late), ``keep`` / ``due`` / ``flush`` (which frames to keep for
    look-back and which to release, oldest first), ``audio_until_s`` (audio that leaves
    with a frame), ``cadence`` (CenterFace's cadence); ``dropped`` tells the policy the
    loop dropped a frame.
    """

    queue_frames: int
    audio_queue_packets: int
    waits_for_room: bool
    latency_s: float
    max_in_flight: int
    watchdog_s: float | None
    delay_s: float
    load_in_background: bool
    warm_at_size: bool

    def items(self, source: MediaSource) -> Iterator: ...

    def deadline_s(self, frame: Frame, started_s: float) -> float: ...

    def late(self, frame: Frame, needs_s: float) -> bool: ...

    def dropped(self) -> None: ...

    def keep(self, pending: Pending, update: TrackUpdate) -> list[Pending]: ...

    def due(self) -> list[Pending]: ...

    def flush(self) -> list[Pending]: ...

    def audio_until_s(self, frame: Frame) -> float: ...

    def cadence(self, ran: bool, seconds: float) -> int | None: ...


class FilePolicy:
    """A file: every frame is read, detected and written, in order (back-pressure, no
    drops), and the last ``lookback_frames`` frames are kept so a face confirmed
    late is painted back over them (``TrackUpdate.owed_to``). ``regions``: a
    RegionPass applied to each frame's final boxes as it leaves (None: none)."""

    audio_queue_packets = 0  # unbounded, but the reader is held back by the frames queue
    waits_for_room = True
    watchdog_s = None  # a file waits for its detector, however slow
    delay_s = 0.0  # frames leave as the look-back window moves on, not by the clock
    load_in_background = False  # nothing to drop while the model loads: load it first
    warm_at_size = False  # nor while it allocates on its first call
    latency_s, max_in_flight = math.inf, 1 << 30  # no deadline; back-pressure bounds the queues

    def __init__(self, lookback_frames: int, queue_frames: int = 4, regions=None) -> None:
        self.lookback_frames, self.queue_frames, self.regions = lookback_frames, queue_frames, regions
        self._kept: deque[Pending] = deque()

    def items(self, source: MediaSource) -> Iterator:
        return source.items()

    def deadline_s(self, frame: Frame, started_s: float) -> float:
        return math.inf

    def late(self, frame: Frame, needs_s: float) -> bool:
        return False  # a file has no deadline

    def dropped(self) -> None:
        pass  # a file drops nothing

    def keep(self, pending: Pending, update: TrackUpdate) -> list[Pending]:
        """Paint ``update``'s look-back onto the frames kept, keep ``pending``, and
        return the frames that leave the look-back window (oldest first)."""
        if self.lookback_frames:
            paint_lookback(self._kept, update)
        self._kept.append(pending)
        ready = []
        while len(self._kept) > self.lookback_frames:
            ready.append(self._with_regions(self._kept.popleft()))
        return ready

    def due(self) -> list[Pending]:
        return []  # a file's frames leave the window as later ones arrive (keep)

    def flush(self) -> list[Pending]:
        """Every frame kept, oldest first (the end of the run)."""
        ready, self._kept = list(self._kept), deque()
        return [self._with_regions(item) for item in ready]

    def audio_until_s(self, frame: Frame) -> float:
        return math.inf  # a file's audio goes out as read: its muxer interleaves by time

    def cadence(self, ran: bool, seconds: float) -> int | None:
        return None  # a file keeps its preset's cadence

    def _with_regions(self, item: Pending) -> Pending:
        """The manual-regions hook: a frame's boxes are final once it leaves the window."""
        if self.regions is not None:
            item.faces, item.extra = self.regions.apply(item.frame, Faces.concat([item.faces, *item.extra])), []
        return item


class LivePolicy:
    """A stream: its latency is bounded whichever stage is behind, at ``delay_s`` plus
    ``latency_ms``. The loop drops a frame at the input (and counts it, with the stage
    that is behind named) when the frames already in flight would make it leave later
    than that (see ``Flight.admits``) or the detector's queue is full; a detected frame
    that would still leave later (``late``: its age plus redaction and sink at their
    current pace) is dropped before redaction (counted as late), never sent late. A
    frame whose detection is not back in time is sent obscured whole (a watchdog:
    ``detect_timeout_ms`` after its detection started, or with a delay when it must leave).

    ``delay_s`` > 0: each detected frame is kept until ``delay_s`` after its capture
    (its audio with it), and look-back and gap boxes (``TrackUpdate.owed_to``) are
    painted onto the frames kept, as a file's are; CenterFace's cadence adapts
    (``cadence``: every frame when there is time, every 2nd or 3rd when not, the boxes
    between sightings bridged by look-back inside the delay and carried at its edge).
    ``delay_s`` 0: nothing is kept back and nothing is looked back.

    ``realtime`` paces a file to its timestamps; ``max_seconds`` stops after that much
    source time; ``load_first``: load and warm up a detector factory before the first
    frame (a paced file loses nothing by waiting) instead of streaming obscured frames
    meanwhile; ``frame_s``: the source's frame interval (the cadence's budget);
    ``lookback_frames``: how far back a new face is painted (None: every frame kept)."""

    MAX_EVERY = 3  # CenterFace at least every 3rd frame: look-back bridges 2 frames unseen
    _HEADROOM = 0.85  # share of a frame interval detection may take (the encoder shares the cores)
    _RELAX = 0.7  # a slower cadence is kept until the faster one would fit in this share
    _SMOOTHING = 0.2
    _BEHIND_S = 2.0  # after a drop, CenterFace stays at its slowest cadence this long (frees the cores)

    audio_queue_packets = 256  # a stream's audio never holds the reader back: excess is dropped
    waits_for_room = False  # a frame the detector has no room for is dropped, never queued raw

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
        self._kept: deque[Pending] = deque()
        self.every = 1
        self._with_s: float | None = None  # detection time of a frame CenterFace ran on (s, smoothed)
        self._without_s: float | None = None  # and of one it skipped
        self._dropped_s = -math.inf  # when a frame was last dropped (monotonic; set from the reader and the caller)

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

    def deadline_s(self, frame: Frame, started_s: float) -> float:
        """When (``time.monotonic()``) the watchdog sends ``frame`` obscured if its
        detection, started at ``started_s``, is not back: when it must leave."""
        if self.delay_s and frame.captured_s:
            return max(frame.captured_s + self.delay_s, started_s + min(self.watchdog_s, self.delay_s))
        return started_s + self.watchdog_s

    def late(self, frame: Frame, needs_s: float) -> bool:
        """True if ``frame``, detected and about to be redacted, would leave the sink
        later than the latency bound: its age plus ``needs_s``, the seconds redaction
        and the sink still need at their current pace (``Flight.after_detection_s``)."""
        if not frame.captured_s:
            return False
        return time.monotonic() - frame.captured_s + needs_s > self.latency_s

    def dropped(self) -> None:
        """The loop dropped a frame (at the input or as late): CenterFace slows down."""
        self._dropped_s = time.monotonic()

    def keep(self, pending: Pending, update: TrackUpdate) -> list[Pending]:
        """Paint ``update``'s look-back onto the frames kept, keep ``pending``; the
        frames whose delay is over (all of them without a delay), oldest first."""
        if not self.delay_s:
            return [pending]
        paint_lookback(self._kept, update, self.lookback_frames)
        self._kept.append(pending)
        return self.due()

    def due(self) -> list[Pending]:
        """Kept frames whose delay is over (call it often: the loop does on every turn)."""
        now, ready = time.monotonic(), []
        while self._kept and self._kept[0].frame.captured_s + self.delay_s <= now:
            ready.append(self._kept.popleft())
        return ready

    def flush(self) -> list[Pending]:
        """Every frame kept, oldest first (the end of the run, or the watchdog's turn)."""
        ready, self._kept = list(self._kept), deque()
        return ready

    def audio_until_s(self, frame: Frame) -> float:
        """Audio up to this media time goes out with ``frame``: a delayed stream keeps
        its audio as long as its video, so the two leave together."""
        return frame.time_s() if self.delay_s else math.inf

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
