"""Frames in flight between a stream's input and out of its sink, and what each stage
costs per frame: the measure a stream's frame loop keeps its latency bounded with."""
from __future__ import annotations

import threading

from .io.sink import Sink

DETECTION, REDACTION, SINK, LATE = "detection", "redaction", "sink", "late"
KEPT = "kept"  # detected, waiting out the live delay: not in flight (it waits on purpose, no stage is behind)


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
        self._count = {DETECTION: 0, REDACTION: 0, SINK: 0, KEPT: 0}  # frames waiting for or in each stage of the loop
        self.stage_s = {DETECTION: 0.0, REDACTION: 0.0, SINK: 0.0}
        self._spread_s = dict.fromkeys(self.stage_s, 0.0)  # average deviation from stage_s

    def entered(self) -> None:
        with self._lock:
            self._count[DETECTION] += 1

    def moved(self, stage: str, to: str) -> None:
        with self._lock:
            self._count[stage] -= 1
            self._count[to] += 1

    def left(self, stage: str) -> None:
        with self._lock:
            self._count[stage] -= 1

    def took(self, stage: str, seconds: float) -> None:
        with self._lock:
            old = self.stage_s[stage]
            self.stage_s[stage] = seconds if old == 0.0 else old + self._SMOOTHING * (seconds - old)
            if old:
                self._spread_s[stage] += self._SMOOTHING * (abs(seconds - old) - self._spread_s[stage])

    def frames(self, sink: Sink) -> int:
        """Frames in flight now: in the loop's queues and threads, plus the sink's backlog."""
        with self._lock:
            return sum(n for stage, n in self._count.items() if stage != KEPT) + int(getattr(sink, "backlog", 0))

    def _servers(self, sink: Sink) -> list[tuple[float, int]]:
        """(seconds per frame, frames at it or before it) for the detector's, the
        caller's and the sink's thread, in order."""
        with self._lock:
            count, t = dict(self._count), dict(self.stage_s)
        ahead_detector = count[DETECTION]
        ahead_caller = ahead_detector + count[REDACTION] + count[SINK]
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
            count, stage_s = dict(self._count), dict(self.stage_s)
        caller = count[REDACTION] + count[SINK]
        backlog = int(getattr(sink, "backlog", 0))
        if max(count[DETECTION], caller, backlog) <= 0:
            return max(self.times(sink).items(), key=lambda kv: kv[1])[0]
        if count[DETECTION] >= max(caller, backlog):
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

