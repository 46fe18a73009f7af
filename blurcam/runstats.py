"""What a run did: counts per run (RunStats, LiveStats with latency) and per frame (FrameRecord)."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from .flight import LATE
from .types import Faces, Frame


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

