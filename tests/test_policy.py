"""The frame loop's policies through their public Protocol (what a file keeps back and
releases, what a stream drops or sends obscured), and whole runs of the loop on
in-memory media: every worker's error reaches the caller, and no frame leaves raw."""
from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from blurcam.errors import DetectorError, SinkError, SourceError
from blurcam.flight import DETECTION, LATE, REDACTION, SINK
from blurcam.loop import run_frames
from blurcam.policy import FilePolicy, LivePolicy, Pending, Policy
from blurcam.redact import RedactConfig
from blurcam.runstats import RunStats
from blurcam.track import Persistence, TrackConfig
from blurcam.types import Faces, Frame, VideoInfo

W, H = 96, 64
FACE = (32, 16, 64, 48)  # x1, y1, x2, y2 in frame pixels, where every frame has its "face"


def frame(index: int, captured_s: float = 0.0) -> Frame:
    planes = (np.zeros((8, 8), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    return Frame(planes, index, index, Fraction(1, 30), captured_s=captured_s)


def box(*xyxy) -> Faces:
    return Faces.from_xyxy(np.array([xyxy], np.float32), np.array([0.9], np.float32))


def kept(policy: Policy, tracker: Persistence, index: int, detections: Faces, **frame_args) -> list[int]:
    """Keep one detected frame under ``policy``; the indices of the frames it releases."""
    update = tracker.update(detections)
    return [p.frame.index for p in policy.keep(Pending(frame(index, **frame_args), update.faces, False), update)]


# ---- the policies on their own -------------------------------------------------------


def test_both_policies_satisfy_the_protocol():
    policies: list[Policy] = [FilePolicy(lookback_frames=3), LivePolicy(500.0, delay_s=1.0)]
    for policy in policies:
        for name in Policy.__annotations__:
            assert hasattr(policy, name), name


def test_a_file_waits_and_a_stream_drops_when_late():
    file, live = FilePolicy(lookback_frames=0), LivePolicy(500.0, latency_ms=400.0)
    assert file.waits_for_room and not live.waits_for_room
    assert file.watchdog_s is None and live.watchdog_s == 0.5
    old = frame(0, captured_s=time.monotonic() - 0.3)
    assert not file.late(old, needs_s=60.0)  # a file has no deadline
    assert not live.late(old, needs_s=0.05)  # 0.3 s old + 0.05 s to go: within 0.4 s
    assert live.late(old, needs_s=0.2)  # 0.5 s: dropped rather than sent late
    assert not live.late(frame(1), needs_s=60.0)  # no capture time (not a stream): never late
    assert file.deadline_s(old, 10.0) == float("inf") and live.deadline_s(old, 10.0) == pytest.approx(10.5)


def test_a_stream_slows_centerface_down_after_the_loop_drops_a_frame():
    live = LivePolicy(500.0, delay_s=1.0, frame_s=1 / 30)
    assert live.cadence(True, 0.010) == 1
    live.dropped()
    assert live.cadence(True, 0.010) == LivePolicy.MAX_EVERY


def test_a_file_keeps_its_lookback_window_and_paints_a_late_face_back():
    tracker, policy = Persistence(TrackConfig(hold_frames=5)), FilePolicy(lookback_frames=2)
    assert kept(policy, tracker, 0, Faces.empty()) == []
    assert kept(policy, tracker, 1, box(0, 0, 40, 40)) == []
    assert policy.due() == []  # a file's frames leave as later ones arrive, not by the clock
    released = policy.keep(Pending(frame(2), Faces.empty(), False), tracker.update(box(2, 0, 42, 40)))
    assert [p.frame.index for p in released] == [0]
    assert len(released[0].extra) == 1 and released[0].extra[0].carried.all()  # the face, confirmed at 2
    assert [p.frame.index for p in policy.flush()] == [1, 2] and policy.flush() == []


def test_a_stream_without_a_delay_keeps_nothing_back():
    tracker, policy = Persistence(), LivePolicy(500.0)
    for i in range(3):
        assert kept(policy, tracker, i, box(i, 0, 40 + i, 40), captured_s=time.monotonic()) == [i]
    assert policy.flush() == [] and policy.audio_until_s(frame(5)) == float("inf")


def test_a_delayed_stream_keeps_each_frame_its_delay_and_looks_back_over_what_it_keeps():
    tracker, policy = Persistence(TrackConfig(hold_frames=5)), LivePolicy(500.0, delay_s=30.0, lookback_frames=5)
    now = time.monotonic()
    assert kept(policy, tracker, 0, Faces.empty(), captured_s=now - 31.0) == [0]  # its delay is over
    assert kept(policy, tracker, 1, Faces.empty(), captured_s=now) == []  # kept for 30 s
    assert kept(policy, tracker, 2, box(0, 0, 40, 40), captured_s=now) == []
    assert kept(policy, tracker, 3, box(2, 0, 42, 40), captured_s=now) == []
    assert policy.due() == []
    rest = policy.flush()  # the end of the run: everything kept leaves, oldest first
    assert [p.frame.index for p in rest] == [1, 2, 3]
    assert rest[0].extra and rest[0].extra[0].carried.all()  # frame 1, before the face was confirmed
    assert policy.audio_until_s(frame(3)) == pytest.approx(0.1)  # its audio leaves with it


# ---- whole runs on in-memory media ---------------------------------------------------


def textured_planes(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (H, W), np.uint8), rng.integers(0, 256, (H // 2, W // 2), np.uint8),
            rng.integers(0, 256, (H // 2, W // 2), np.uint8))


class MemorySource:
    """A MediaSource stand-in: ``frames`` textured frames; SourceError at ``fail_at``."""

    def __init__(self, frames: int, fail_at: int | None = None) -> None:
        self.frames, self.fail_at = frames, fail_at
        self.info = VideoInfo(width=W, height=H, time_base=Fraction(1, 30), frame_rate=Fraction(30), frames=frames)

    def items(self):
        for i in range(self.frames):
            if i == self.fail_at:
                raise SourceError(f"memory: broken at frame {i}")
            yield Frame(textured_planes(i), i, i, Fraction(1, 30))


class MemorySink:
    """Keeps a copy of each frame's luma as written; SinkError at frame ``fail_at``."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at, self.written = fail_at, []

    def write_frame(self, frame: Frame) -> None:
        if len(self.written) == self.fail_at:
            raise SinkError("memory: disk full")
        self.written.append((frame.index, frame.planes[0].copy()))

    def write_audio(self, packet) -> None:
        pass

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass


class FaceDetector:
    """Finds the face at FACE on every frame (full-size views); raises on ``raise_on``."""

    name, max_side = "fake", None

    def __init__(self, raise_on=(), sleep_s: float = 0.0) -> None:
        self.raise_on, self.sleep_s, self.calls = set(raise_on), sleep_s, 0

    def detect(self, image: np.ndarray, timestamp_ms: int) -> Faces:
        index, self.calls = self.calls, self.calls + 1
        time.sleep(self.sleep_s)
        if index in self.raise_on:
            raise RuntimeError("inference failed")
        return box(*FACE)

    def close(self) -> None:
        pass


def run(policy: Policy, source: MemorySource, sink: MemorySink, stats: RunStats | None = None,
        **detector) -> RunStats:
    return run_frames(source, sink, policy, **(detector or {"detector": FaceDetector()}),
                      redact=RedactConfig(), track=TrackConfig(hold_frames=0, lookback_frames=0), stats=stats)


def unhurried(kind: str) -> Policy:
    """A file's policy, or a stream's with room and time for every frame of a short run."""
    if kind == "file":
        return FilePolicy(lookback_frames=2)
    return LivePolicy(5000.0, queue_frames=16, latency_ms=60_000, max_in_flight=64)


def changed(written: np.ndarray, index: int, xyxy=FACE) -> float:
    """Share of the pixels in ``xyxy`` that differ from the raw frame ``index``."""
    x1, y1, x2, y2 = xyxy
    return float((written[y1:y2, x1:x2] != textured_planes(index)[0][y1:y2, x1:x2]).mean())


def assert_none_raw(sink: MemorySink) -> None:
    for index, luma in sink.written:
        assert changed(luma, index) > 0.9, f"frame {index} left with its face intact"


@pytest.mark.parametrize("kind", ["file", "live"])
def test_every_frame_of_a_run_leaves_redacted(kind):
    sink = MemorySink()
    stats = run(unhurried(kind), MemorySource(12), sink)
    assert [i for i, _ in sink.written] == list(range(12)) and stats.frames == 12
    assert stats.frames_dropped == 0 and stats.faces_detected == 12
    assert_none_raw(sink)


@pytest.mark.parametrize("kind", ["file", "live"])
def test_a_source_breaking_reaches_the_caller_as_a_source_error(kind):
    sink, stats = MemorySink(), RunStats()
    with pytest.raises(SourceError, match="broken at frame 7"):
        policy = FilePolicy(lookback_frames=2) if kind == "file" else LivePolicy(5000.0)
        run(policy, MemorySource(50, fail_at=7), sink, stats)
    assert stats.frames_in == 7 and len(sink.written) <= 7
    assert_none_raw(sink)
    assert not [t for t in threading.enumerate() if t.name in ("blurcam-reader", "blurcam-detector")]


def test_a_sink_failing_reaches_the_caller_as_a_sink_error_and_stops_the_run():
    sink, stats = MemorySink(fail_at=3), RunStats()
    with pytest.raises(SinkError, match="disk full"):
        run(FilePolicy(lookback_frames=0), MemorySource(200), sink, stats)
    assert len(sink.written) == 3 and stats.frames_in < 50  # the reader stopped with the run
    assert_none_raw(sink)
    assert not [t for t in threading.enumerate() if t.name in ("blurcam-reader", "blurcam-detector")]


def test_a_detector_that_cannot_load_reaches_the_caller_before_any_frame():
    def broken() -> FaceDetector:
        raise DetectorError("model file missing")

    sink = MemorySink()
    with pytest.raises(DetectorError, match="model file missing"):
        run(FilePolicy(lookback_frames=0), MemorySource(5), sink, detector_factory=broken)
    assert sink.written == []


@pytest.mark.parametrize("kind", ["file", "live"])
def test_a_detector_raising_on_a_frame_sends_that_frame_obscured_whole(kind):
    """Fail closed: a detection that fails is no error for the run, but its frame is
    obscured whole, never passed through."""
    sink = MemorySink()
    stats = run(unhurried(kind), MemorySource(10), sink, detector=FaceDetector(raise_on={3, 4}))
    assert stats.frames == 10 and stats.frames_obscured_whole == 2
    for index, luma in sink.written:
        if index in (3, 4):
            assert changed(luma, index, (0, 0, W, H)) > 0.9  # the whole frame, not a box
    assert_none_raw(sink)


def test_a_stream_whose_detector_cannot_load_sends_every_frame_obscured_whole():
    """A stream starts at once while its model loads in a thread: a model that fails to
    load there is logged, and every frame leaves obscured whole, never raw."""
    def broken() -> FaceDetector:
        raise DetectorError("model file missing")

    sink = MemorySink()
    policy = LivePolicy(5000.0, queue_frames=16, latency_ms=60_000, max_in_flight=64)
    stats = run(policy, MemorySource(8), sink, detector_factory=broken)
    assert stats.frames == stats.frames_obscured_whole == 8
    for index, luma in sink.written:
        assert changed(luma, index, (0, 0, W, H)) > 0.9


def test_exactly_one_detector_is_given():
    with pytest.raises(ValueError, match="exactly one"):
        run(FilePolicy(lookback_frames=0), MemorySource(1), MemorySink(), detector=FaceDetector(),
            detector_factory=FaceDetector)


def test_a_stream_drops_frames_its_detector_has_no_room_for_and_a_file_waits():
    """Fed faster than it detects: the stream drops at the input (counted, with the
    stage behind named) and never queues a frame raw; the file loses none."""
    live = LivePolicy(5000.0, queue_frames=1, latency_ms=60_000, max_in_flight=64)
    sink = MemorySink()
    stats = run(live, MemorySource(40), sink, detector=FaceDetector(sleep_s=0.02))
    assert stats.frames_dropped > 0 and stats.frames + stats.frames_dropped == stats.frames_in == 40
    assert set(stats.dropped_by) <= {DETECTION, REDACTION, SINK, LATE} and stats.dropped_by[DETECTION] > 0
    assert_none_raw(sink)
    sink = MemorySink()
    stats = run(FilePolicy(lookback_frames=0, queue_frames=1), MemorySource(40), sink,
                detector=FaceDetector(sleep_s=0.005))
    assert stats.frames == 40 and stats.frames_dropped == 0
    assert_none_raw(sink)
