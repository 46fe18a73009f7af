import numpy as np
import pytest

from blurcam.track import Persistence, TrackConfig, bridge_boxes
from blurcam.types import Faces


def faces(*boxes):
    return Faces.from_xyxy(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9))


def test_detections_always_pass_through_untouched():
    p = Persistence(TrackConfig(hold_frames=0))
    det = faces([10, 10, 50, 50], [100, 100, 120, 130])
    out = p.update(det)
    np.testing.assert_array_equal(out.xyxy, det.xyxy)
    assert not out.carried.any()


def test_box_held_through_detector_blinks_then_released():
    """Face seen in frames 0-4, missed in 5-7: still covered; gone after hold frames."""
    p = Persistence(TrackConfig(hold_frames=3))
    for t in range(5):
        out = p.update(faces([10 + 2 * t, 10, 50 + 2 * t, 50]))
        assert len(out) == 1 and not out.carried[0]
    track = out.track_id[0]
    for t in range(5, 8):
        out = p.update(Faces.empty())
        assert len(out) == 1 and out.carried[0] and out.track_id[0] == track
        # moved on with the face's motion (2 px/frame to the right) and never shrinks
        assert out.xyxy[0, 2] >= 50 + 2 * 4
        assert out.xyxy[0, 0] <= 10 + 2 * 4
    assert len(p.update(Faces.empty())) == 0


def test_same_face_keeps_its_track_and_new_face_is_confirmed_on_second_sight():
    p = Persistence()
    a = p.update(faces([10, 10, 50, 50]))
    assert len(p.births) == 0  # one sighting: not yet owed a look-back
    b = p.update(faces([12, 10, 52, 50], [200, 200, 240, 240]))
    assert b.track_id[0] == a.track_id[0]
    assert len(p.births) == 1 and p.births.track_id[0] == a.track_id[0]
    np.testing.assert_array_equal(p.births.xyxy[0], [10, 10, 50, 50])  # its box at birth
    assert p.births_age.tolist() == [1]
    p.update(faces([14, 10, 54, 50], [201, 200, 241, 240]))
    assert len(p.births) == 1 and p.births.track_id[0] == b.track_id[1]


def test_detector_failure_keeps_tracks_without_ageing():
    p = Persistence(TrackConfig(hold_frames=1))
    p.update(faces([10, 10, 50, 50]))
    for _ in range(5):
        assert len(p.update(None)) == 1  # no answer is not "no face"


def test_empty_input_is_fine():
    p = Persistence()
    assert len(p.update(Faces.empty())) == 0


def test_split_detection_of_a_known_face_gets_no_lookback():
    p = Persistence()
    p.update(faces([10, 10, 50, 50]))
    p.update(faces([12, 10, 52, 50]))
    p.update(faces([14, 10, 54, 50], [30, 30, 60, 60]))  # second box overlaps the known face
    p.update(faces([16, 10, 56, 50], [31, 30, 61, 60]))
    assert len(p.births) == 0
    p.update(faces([18, 10, 58, 50], [300, 300, 340, 340]))  # a new face elsewhere
    p.update(faces([20, 10, 60, 50], [301, 300, 341, 340]))
    assert len(p.births) == 1


def test_duplicate_track_of_a_detected_face_adds_no_carried_box():
    p = Persistence()
    p.update(faces([10, 10, 50, 50], [12, 12, 52, 52]))  # two detectors on one face: two tracks
    out = p.update(faces([11, 10, 51, 50]))  # one of them blinks, the face is still detected
    assert len(out) == 1 and not out.carried.any()


def test_lost_face_elsewhere_still_carried():
    p = Persistence()
    p.update(faces([10, 10, 50, 50], [200, 200, 240, 240]))
    out = p.update(faces([11, 10, 51, 50]))  # the second face is missed
    assert len(out) == 2 and out.carried.sum() == 1


def test_face_found_again_reports_the_gap_and_its_two_sightings():
    """Seen at frame 0, unseen 1-3, seen again at 4 (a detector run every 4th frame)."""
    p = Persistence(TrackConfig(hold_frames=5))
    p.update(faces([0, 0, 40, 40]))
    for _ in range(3):
        p.update(Faces.empty())
        assert len(p.gaps) == 0
    p.update(faces([24, 0, 64, 40]))
    assert p.gaps.tolist() == [4]
    np.testing.assert_array_equal(p.gap_from, [[0, 0, 40, 40]])
    np.testing.assert_array_equal(p.gap_to, [[24, 0, 64, 40]])
    p.update(faces([30, 0, 70, 40]))  # seen on consecutive frames: no gap
    assert len(p.gaps) == 0


def test_bridge_boxes_follow_the_straight_path_between_sightings():
    start, end = np.array([[0, 0, 40, 40]], np.float32), np.array([[24, 0, 64, 40]], np.float32)
    gaps = np.array([4])
    mid = bridge_boxes(start, end, gaps, back=2, growth_per_frame=0.0)
    np.testing.assert_allclose(mid, [[12, 0, 52, 40]])
    one_before = bridge_boxes(start, end, gaps, back=1, growth_per_frame=0.05)
    np.testing.assert_allclose((one_before[0, :2] + one_before[0, 2:]) / 2, [38, 20])  # 3/4 of the way
    assert one_before[0, 2] - one_before[0, 0] == pytest.approx(40 * 1.05)  # grown by its 1 frame from a sighting
    assert len(bridge_boxes(start, end, gaps, back=4, growth_per_frame=0.0)) == 0  # frame 0 was a sighting


def test_face_unseen_for_frames_is_matched_beyond_iou_reach():
    """Moved 30 px (0.75 of its size) in 4 frames: no overlap left, still the same face."""
    p = Persistence(TrackConfig(hold_frames=5))
    first = p.update(faces([0, 0, 40, 40]))
    for _ in range(3):
        p.update(Faces.empty())
    again = p.update(faces([30, 0, 70, 40]))
    assert again.track_id[0] == first.track_id[0] and p.gaps.tolist() == [4]
    stranger = Persistence(TrackConfig(hold_frames=5))
    first = stranger.update(faces([0, 0, 40, 40]))
    stranger.update(Faces.empty())
    far = stranger.update(faces([200, 0, 240, 40]))  # too far for 2 frames: a different face
    assert far.track_id[0] != first.track_id[0]


def test_failed_frame_does_not_repeat_the_last_births_or_bridges():
    p = Persistence(TrackConfig(hold_frames=5))
    p.update(faces([0, 0, 40, 40]))
    p.update(Faces.empty())
    p.update(faces([2, 0, 42, 40]))  # second sighting after a gap: a birth and a bridge
    assert len(p.births) == 1 and len(p.gaps) == 1
    p.update(None)  # detector failed: nothing new was learnt
    assert len(p.births) == 0 and len(p.gaps) == 0


def test_face_matched_by_distance_still_gets_the_lookback_of_a_new_face():
    """A face appearing near where another was lost inherits its track, but may be a
    different person: once seen again it is back-filled from where it appeared."""
    p = Persistence(TrackConfig(hold_frames=8))
    p.update(faces([0, 0, 40, 40]))
    p.update(faces([0, 0, 40, 40]))
    for _ in range(3):
        p.update(Faces.empty())
    p.update(faces([50, 0, 90, 40]))  # 50 px away after 4 frames: matched by distance
    assert len(p.births) == 0
    p.update(faces([51, 0, 91, 40]))
    assert len(p.births) == 1
    np.testing.assert_array_equal(p.births.xyxy, [[50, 0, 90, 40]])
