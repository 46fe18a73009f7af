"""The frame loop's policies on their own: what a file keeps back and paints, what a
stream drops. (Whole runs through the loop are in test_pipeline and test_live.)"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from blurcam.policy import FilePolicy, LivePolicy, Pending
from blurcam.track import Persistence, TrackConfig
from blurcam.types import Faces, Frame


def frame(index: int) -> Frame:
    planes = (np.zeros((8, 8), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    return Frame(planes, index, index, Fraction(1, 30))


def box(*xyxy) -> Faces:
    return Faces.from_xyxy(np.array([xyxy], np.float32), np.array([0.9], np.float32))


def test_file_policy_keeps_its_lookback_and_paints_a_late_face_onto_kept_frames():
    tracker, policy = Persistence(TrackConfig(hold_frames=5)), FilePolicy(lookback_frames=2)
    out = []
    for i, detections in enumerate([Faces.empty(), box(0, 0, 40, 40), box(2, 0, 42, 40)]):
        update = tracker.update(detections)
        out += policy.keep(Pending(frame(i), update.faces, obscure=False), update)
    assert [p.frame.index for p in out] == [0]  # two frames still kept for look-back
    # The face, seen at frames 1 and 2, is confirmed at 2: frame 0 (before it) gets its box.
    assert len(out[0].extra) == 1 and out[0].extra[0].carried.all()
    # followed back along its motion (2 px/frame), grown 2 x 3 % and, along x, by half its speed
    np.testing.assert_allclose(out[0].extra[0].xyxy[0], [-2 - 1.2 - 1, -1.2, 38 + 1.2 + 1, 41.2], atol=1e-4)
    rest = policy.flush()
    assert [p.frame.index for p in rest] == [1, 2] and policy.flush() == []


def test_file_policy_without_lookback_passes_frames_straight_through():
    tracker, policy = Persistence(), FilePolicy(lookback_frames=0)
    update = tracker.update(box(0, 0, 40, 40))
    assert [p.frame.index for p in policy.keep(Pending(frame(0), update.faces, False), update)] == [0]


def test_file_policy_waits_for_room_and_live_policy_drops_and_counts():
    # The loop owns the queue and the counters; the policy decides wait or drop. A whole
    # run that drops (counted, never queued raw) and one that waits: test_policy.py
    # (test_a_stream_drops_frames_its_detector_has_no_room_for_and_a_file_waits).
    assert LivePolicy(500.0).waits_for_room is False and FilePolicy(0).waits_for_room is True


def test_live_policy_never_keeps_a_frame_back():
    tracker, policy = Persistence(), LivePolicy(500.0)
    for i in range(3):
        update = tracker.update(box(i, 0, 40 + i, 40))
        assert [p.frame.index for p in policy.keep(Pending(frame(i), update.faces, False), update)] == [i]
    assert policy.flush() == [] and policy.watchdog_s == 0.5


@pytest.mark.parametrize("stage_ms, sink_frame_ms, held, backlog, expected_ms, admitted", [
    ((0, 0, 0), 0, (0, 0), 0, 0, True),  # nothing measured yet
    ((80, 10, 5), 20, (2, 0), 1, 115 + 160, True),  # the detector behind: keep it fed...
    ((80, 10, 5), 20, (4, 0), 1, 115 + 320, False),  # ...but no more than the bound allows
    ((100, 200, 0), 20, (0, 0), 0, 320, True),  # crowd redaction: one frame at a time...
    ((100, 200, 0), 20, (1, 0), 0, 320 + 200, False),  # ...a second would wait for the caller
    ((40, 5, 0), 150, (0, 0), 2, 195 + 300, False),  # a sink with a thread of its own, behind
    ((900, 5, 0), 5, (0, 0), 0, 910, False),  # a stage slower than the bound admits nothing more
])
def test_flight_admits_a_frame_only_if_it_would_leave_within_the_bound(stage_ms, sink_frame_ms, held, backlog,
                                                                        expected_ms, admitted):
    from blurcam.flight import DETECTION, REDACTION, SINK, Flight

    flight = Flight(0.4, 8)
    for stage, ms in zip((DETECTION, REDACTION, SINK), stage_ms):
        if ms:
            flight.took(stage, ms / 1000)
    for _ in range(held[0] + held[1]):
        flight.entered()
    for _ in range(held[1]):
        flight.moved(DETECTION, REDACTION)
    sink = type("Sink", (), {"backlog": backlog, "frame_s": sink_frame_ms / 1000})()
    assert flight.expected_s(sink) * 1000 == pytest.approx(expected_ms)
    assert flight.admits(sink) == admitted


def test_flight_never_admits_more_than_its_cap():
    from blurcam.flight import Flight

    flight = Flight(10.0, 3)
    sink = type("Sink", (), {"backlog": 1, "frame_s": 0.0})()
    flight.entered()
    assert flight.admits(sink)
    flight.entered()
    assert not flight.admits(sink)  # 2 in the loop + 1 in the sink


def test_flight_names_the_stage_where_frames_wait():
    from blurcam.flight import DETECTION, REDACTION, SINK, Flight

    flight = Flight(0.4, 8)
    flight.took(REDACTION, 0.2)
    flight.took(SINK, 0.01)
    idle = type("Sink", (), {"backlog": 0})()
    for _ in range(3):
        flight.entered()
    assert flight.behind(idle) == DETECTION and flight.frames(idle) == 3
    flight.moved(DETECTION, REDACTION)
    flight.moved(DETECTION, REDACTION)
    assert flight.behind(idle) == REDACTION  # waiting for the caller, whose slower part is redaction
    assert flight.behind(type("Sink", (), {"backlog": 5})()) == SINK
    flight.moved(REDACTION, SINK)
    flight.left(SINK)
    assert flight.frames(idle) == 2
