import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blurcam.synth import Placement, background, render, write_clip
from blurcam.redact import RedactConfig, regions_for
from blurcam.track import Persistence, TrackConfig, bridge_boxes, fit_scene, follow_back, one_box_per_face
from blurcam.types import Faces
from conftest import decode_rgb
from leak import detail_kept

ROOT = Path(__file__).parent.parent


def faces(*boxes):
    return Faces.from_xyxy(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9))


def test_detections_always_pass_through_untouched():
    p = Persistence(TrackConfig(hold_frames=0))
    det = faces([10, 10, 50, 50], [100, 100, 120, 130])
    out = p.update(det).faces
    np.testing.assert_array_equal(out.xyxy, det.xyxy)
    assert not out.carried.any()


def test_box_held_through_detector_blinks_then_released():
    """Face seen in frames 0-4, missed in 5-7: still covered; gone after hold frames."""
    p = Persistence(TrackConfig(hold_frames=3))
    for t in range(5):
        out = p.update(faces([10 + 2 * t, 10, 50 + 2 * t, 50])).faces
        assert len(out) == 1 and not out.carried[0]
    track = out.track_id[0]
    for t in range(5, 8):
        out = p.update(Faces.empty()).faces
        assert len(out) == 1 and out.carried[0] and out.track_id[0] == track
        # moved on with the face's motion (2 px/frame to the right) and never shrinks
        assert out.xyxy[0, 2] >= 50 + 2 * 4
        assert out.xyxy[0, 0] <= 10 + 2 * 4
    assert len(p.update(Faces.empty()).faces) == 0


def test_same_face_keeps_its_track_and_new_face_is_confirmed_on_second_sight():
    p = Persistence()
    a = p.update(faces([10, 10, 50, 50]))
    assert len(a.born.faces) == 0  # one sighting: not yet owed a look-back
    b = p.update(faces([12, 10, 52, 50], [200, 200, 240, 240]))
    assert b.faces.track_id[0] == a.faces.track_id[0]
    assert len(b.born.faces) == 1 and b.born.faces.track_id[0] == a.faces.track_id[0]
    np.testing.assert_array_equal(b.born.faces.xyxy[0], [10, 10, 50, 50])  # its box at birth
    assert b.born.age.tolist() == [1]
    c = p.update(faces([14, 10, 54, 50], [201, 200, 241, 240]))
    assert len(c.born.faces) == 1 and c.born.faces.track_id[0] == b.faces.track_id[1]


def test_detector_failure_keeps_tracks_without_ageing():
    p = Persistence(TrackConfig(hold_frames=1))
    p.update(faces([10, 10, 50, 50]))
    for _ in range(5):
        assert len(p.update(None).faces) == 1  # no answer is not "no face"


def test_empty_input_is_fine():
    p = Persistence()
    assert len(p.update(Faces.empty()).faces) == 0


def test_split_detection_of_a_known_face_gets_no_lookback():
    p = Persistence()
    p.update(faces([10, 10, 50, 50]))
    p.update(faces([12, 10, 52, 50]))
    p.update(faces([14, 10, 54, 50], [30, 30, 60, 60]))  # second box overlaps the known face
    assert len(p.update(faces([16, 10, 56, 50], [31, 30, 61, 60])).born.faces) == 0
    p.update(faces([18, 10, 58, 50], [300, 300, 340, 340]))  # a new face elsewhere
    assert len(p.update(faces([20, 10, 60, 50], [301, 300, 341, 340])).born.faces) == 1


def test_duplicate_track_of_a_detected_face_adds_no_carried_box():
    p = Persistence()
    p.update(faces([10, 10, 50, 50], [12, 12, 52, 52]))  # two detectors on one face: two tracks
    out = p.update(faces([11, 10, 51, 50])).faces  # one of them blinks, the face is still detected
    assert len(out) == 1 and not out.carried.any()


def test_lost_face_elsewhere_still_carried():
    p = Persistence()
    p.update(faces([10, 10, 50, 50], [200, 200, 240, 240]))
    out = p.update(faces([11, 10, 51, 50])).faces  # the second face is missed
    assert len(out) == 2 and out.carried.sum() == 1


def test_face_found_again_reports_the_gap_and_its_two_sightings():
    """Seen at frame 0, unseen 1-3, seen again at 4 (a detector run every 4th frame)."""
    p = Persistence(TrackConfig(hold_frames=5))
    p.update(faces([0, 0, 40, 40]))
    for _ in range(3):
        assert len(p.update(Faces.empty()).refound.frames) == 0
    again = p.update(faces([24, 0, 64, 40]))
    assert again.refound.frames.tolist() == [4]
    np.testing.assert_array_equal(again.refound.before_xyxy, [[0, 0, 40, 40]])
    np.testing.assert_array_equal(again.refound.now_xyxy, [[24, 0, 64, 40]])
    assert len(p.update(faces([30, 0, 70, 40])).refound.frames) == 0  # seen on consecutive frames: no gap


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
    assert again.faces.track_id[0] == first.faces.track_id[0] and again.refound.frames.tolist() == [4]
    stranger = Persistence(TrackConfig(hold_frames=5))
    first = stranger.update(faces([0, 0, 40, 40]))
    stranger.update(Faces.empty())
    far = stranger.update(faces([200, 0, 240, 40]))  # too far for 2 frames: a different face
    assert far.faces.track_id[0] != first.faces.track_id[0]


def test_failed_frame_does_not_repeat_the_last_births_or_bridges():
    p = Persistence(TrackConfig(hold_frames=5))
    p.update(faces([0, 0, 40, 40]))
    p.update(Faces.empty())
    both = p.update(faces([2, 0, 42, 40]))  # second sighting after a gap: a birth and a bridge
    assert len(both.born.faces) == 1 and len(both.refound.frames) == 1
    failed = p.update(None)  # detector failed: nothing new was learnt
    assert len(failed.born.faces) == 0 and len(failed.refound.frames) == 0 and failed.reach == 0


def test_face_matched_by_distance_still_gets_the_lookback_of_a_new_face():
    """A face appearing near where another was lost inherits its track, but may be a
    different person: once seen again it is back-filled from where it appeared."""
    p = Persistence(TrackConfig(hold_frames=8))
    p.update(faces([0, 0, 40, 40]))
    p.update(faces([0, 0, 40, 40]))
    for _ in range(3):
        p.update(Faces.empty())
    assert len(p.update(faces([50, 0, 90, 40])).born.faces) == 0  # 50 px away after 4 frames: matched by distance
    confirmed = p.update(faces([51, 0, 91, 40]))
    assert len(confirmed.born.faces) == 1
    np.testing.assert_array_equal(confirmed.born.faces.xyxy, [[50, 0, 90, 40]])


def test_lookback_spans_a_new_face_back_to_its_birth_and_grows_before_it():
    """Born at frame 0 at x 0-40, confirmed at frame 2 at x 20-60 (growth 0.1/frame)."""
    p = Persistence(TrackConfig(hold_frames=5, growth_per_frame=0.1))
    p.update(faces([0, 0, 40, 40]))
    p.update(Faces.empty())
    update = p.update(faces([20, 0, 60, 40]))
    assert update.reach is None  # a birth is owed to every earlier frame still held
    one_back = update.owed_to(1)  # inside its life: the span of both sightings (and the bridge)
    assert one_back.carried.all() and (one_back.track_id == update.faces.track_id[0]).all()
    np.testing.assert_allclose(one_back.xyxy[0], [0, 0, 60, 40])
    # Before its birth: followed back along its motion (10 px/frame to the right), grown
    # by 2 frames' growth (4 px a side) and, along x, by half its speed per frame back (5 px).
    three_back = update.owed_to(3)
    assert len(three_back) == 1
    np.testing.assert_allclose(three_back.xyxy[0], [-10 - 4 - 5, -4, 30 + 4 + 5, 44])


def test_lookback_of_a_plain_gap_reaches_only_inside_it():
    p = Persistence(TrackConfig(hold_frames=5, confirm_hits=1))
    p.update(faces([0, 0, 40, 40]))
    p.update(faces([0, 0, 40, 40]))
    for _ in range(2):
        p.update(Faces.empty())
    update = p.update(faces([12, 0, 52, 40]))  # still overlapping: the same face, no new birth
    assert update.refound.frames.tolist() == [3] and update.reach == 2 and len(update.born.faces) == 0
    np.testing.assert_allclose(update.owed_to(1).xyxy, bridge_boxes(update.refound.before_xyxy, update.refound.now_xyxy, update.refound.frames, 1, 0.03))
    assert len(update.owed_to(3)) == 0


def test_lookback_follows_a_face_back_past_the_frame_edge():
    """A face entering at the left edge, seen first 30 px inside and moving 10 px/frame:
    three frames before, its box lies mostly outside the frame, and is still given."""
    p = Persistence(TrackConfig(growth_per_frame=0.0))
    p.update(faces([0, 100, 30, 140]))
    update = p.update(faces([0, 100, 40, 140]))  # the visible part widens: 5 px/frame centre
    box = update.owed_to(4).xyxy[0]  # three frames before its birth
    assert box[0] < 0 < box[2]  # centre may be outside, the part inside is covered
    assert box[2] >= 30 - 3 * 10  # reaches the sliver that was inside then
    assert (box[1], box[3]) == (100, 140)  # it moved along x only


def test_young_face_whose_box_outgrows_its_lookback_is_painted_back_again():
    """Seen first as a sliver at the right edge, then whole: the whole box is painted
    over the frames since its birth, not only the sliver."""
    p = Persistence()
    p.update(faces([620, 100, 640, 120]))
    assert len(p.update(faces([620, 100, 640, 121])).born.faces) == 1
    assert len(p.update(faces([617, 100, 640, 122])).born.faces) == 0  # about the same size: painted already
    again = p.update(faces([600, 100, 640, 160]))
    assert len(again.born.faces) == 1
    np.testing.assert_allclose(again.owed_to(2).xyxy[0], [600, 100, 640, 160])


def test_follow_back_never_shrinks_a_box():
    first = np.array([[0, 0, 10, 40]], np.float32)  # a sliver at the edge
    now = np.array([[0, 0, 40, 40]], np.float32)  # the whole face, later
    box = follow_back(first, now, np.array([[15, 0]], np.float32), np.array([2]), 4, 0.0)
    assert (box[:, 2:] - box[:, :2] >= 40).all()


# A face sliding into the frame (issue 23): from each edge, at several speeds, it is
# seen in part before the detector finds it; look-back must destroy those frames.
EDGE_SPEEDS = [(edge, speed) for edge in ("left", "right", "top", "bottom") for speed in (3, 8, 20)]
EDGE_W, EDGE_H, SPRITE_H = 640, 360, 180


def _sliding_in(sprite, edge: str, speed: int, n_frames: int) -> Placement:
    """The sprite's face starts just outside ``edge`` and moves inward ``speed`` px/frame."""
    s = SPRITE_H / sprite.image.shape[0]
    fx1, fy1, fx2, fy2 = np.array(sprite.face_xyxy) * s
    travel = speed * (n_frames - 1)
    if edge in ("left", "right"):
        y = 120 - fy1
        x0 = -fx2 - 2 if edge == "left" else EDGE_W - fx1 + 2
        return Placement(sprite, SPRITE_H, (x0, y), (x0 + (travel if edge == "left" else -travel), y))
    x = 280 - fx1
    y0 = -fy2 - 2 if edge == "top" else EDGE_H - fy1 + 2
    return Placement(sprite, SPRITE_H, (x, y0), (x, y0 + (travel if edge == "top" else -travel)))


@pytest.fixture(scope="module")
def sliding_faces(tmp_path_factory, sprites):
    """Twelve clips, one face each, redacted by one real ``blurcam blur`` folder run with
    default settings; returns {(edge, speed): (frames, boxes, redacted frames)}."""
    root = tmp_path_factory.mktemp("edges")
    src, out = root / "in", root / "out"
    src.mkdir()
    clips = {}
    for edge, speed in EDGE_SPEEDS:
        n_frames = 45 if speed < 5 else 30
        frames, boxes = zip(*render([_sliding_in(sprites[0], edge, speed, n_frames)], background((EDGE_W, EDGE_H)),
                                    n_frames))
        write_clip(src / f"{edge}{speed}.mp4", frames, audio=False)
        clips[edge, speed] = (frames, boxes)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "blurcam", "blur", str(src), "-o", str(out)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return {key: (frames, boxes, decode_rgb(out / f"{key[0]}{key[1]}.mp4")) for key, (frames, boxes) in clips.items()}


@pytest.mark.parametrize("edge, speed", EDGE_SPEEDS)
def test_face_entering_from_the_frame_edge_is_not_left_raw_before_its_first_detection(sliding_faces, edge, speed):
    frames, boxes, redacted = sliding_faces[edge, speed]
    assert len(redacted) == len(frames)
    axis = 0 if edge in ("left", "right") else 1
    whole = max(b[0, axis + 2] - b[0, axis] for b in boxes if len(b))
    partial = 0
    for i, (frame, box, out) in enumerate(zip(frames, boxes, redacted)):
        if not len(box):
            continue
        kept = detail_kept(frame, out, box[0])
        assert kept is None or kept < 0.4, f"frame {i}: face {box[0].round()} keeps {kept:.2f} of its detail"
        partial += kept is not None and box[0, axis + 2] - box[0, axis] < 0.9 * whole
    assert partial >= 2  # the clip really shows the face in part before it is whole


def _merged(boxes, carried, size_wh=(200, 100)):
    f = Faces(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.5, np.float32),
              np.arange(len(boxes)), np.array(carried, bool))
    kept = one_box_per_face(f, regions_for(f.xyxy, size_wh, RedactConfig()))
    return kept.track_id.tolist()


@pytest.mark.parametrize("boxes, carried, kept", [
    ([[10, 10, 50, 50], [20, 20, 40, 40]], [False, True], [0]),  # carried inside a detection: one box
    ([[10, 10, 50, 50], [20, 20, 40, 40]], [True, False], [0, 1]),  # a detection is never dropped
    ([[10, 10, 50, 50], [20, 20, 40, 40]], [False, False], [0, 1]),  # nor merged into another detection
    ([[10, 10, 30, 30], [10, 10, 30, 30]], [True, True], [0]),  # identical: one of them
    ([[10, 10, 50, 50], [30, 10, 70, 50]], [False, True], [0, 1]),  # overlapping, not inside: both
    ([[10, 10, 50, 50], [8, 12, 28, 32]], [False, True], [0]),  # sticks out raw, inside once padded
    ([[10, 10, 50, 50], [20, 20, 45, 45], [25, 25, 40, 40]], [True, True, True], [0]),  # a chain ends in one
    ([[300, 10, 340, 50]], [True], []),  # wholly outside the frame: nothing to cover
    ([[-30, 10, 10, 50]], [True], [0]),  # centre outside, part inside: kept
    ([], [], []),
])
def test_one_box_per_face_table(boxes, carried, kept):
    assert _merged(boxes, carried) == kept


def test_one_box_per_face_never_uncovers_a_pixel():
    """Random crowds of boxes at many sizes, many inside others, some sharing a track:
    every pixel some box's region covers, a kept box's region covers."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(1, 400))
        xy = rng.uniform(-50, 650, (n, 2))
        side = rng.choice([6, 12, 24, 60, 150], n)[:, None] * rng.uniform(0.8, 1.2, (n, 2))
        xyxy = np.concatenate([xy, xy + side], axis=1).astype(np.float32)
        nested = rng.random(n) < 0.5  # half of them inside another box
        parent = rng.integers(0, n, n)
        xyxy[nested] = (xyxy[parent[nested]] * 3 + xyxy[nested]) / 4
        track = rng.integers(-1, n // 2 + 1, n)  # some tracks have several boxes, some none
        f = Faces(xyxy, np.ones(n, np.float32), track, rng.random(n) < 0.8)
        config = RedactConfig()
        all_regions = regions_for(f.xyxy, (640, 360), config)
        kept = one_box_per_face(f, all_regions)
        assert (~f.carried).sum() == (~kept.carried).sum()  # every detection kept
        masks = []
        for regions in (all_regions, regions_for(kept.xyxy, (640, 360), config)):
            mask = np.zeros((360, 640), bool)
            for x1, y1, x2, y2 in regions:
                mask[y1:y2, x1:x2] = True
            masks.append(mask)
        assert not (masks[0] & ~masks[1]).any()  # nothing uncovered (a track's hull may cover more)
        assert len(kept) < n or not nested.any()


def test_boxes_of_one_track_become_their_hull():
    """A box held forward and the path back-filled for the same frame: one box, covering both."""
    f = Faces(np.array([[10, 10, 30, 30], [14, 12, 34, 32], [100, 10, 120, 30]], np.float32),
              np.array([0.3, 1.0, 0.5], np.float32), np.array([4, 4, 4]), np.array([True, True, False]))
    kept = one_box_per_face(f, regions_for(f.xyxy, (200, 100), RedactConfig()))
    assert len(kept) == 2
    np.testing.assert_array_equal(kept.xyxy, [[10, 10, 34, 32], [100, 10, 120, 30]])  # the detection as it was
    assert kept.score[0] == 1.0 and kept.carried.tolist() == [True, False]


def test_missed_face_overlapping_a_detected_neighbour_is_still_carried():
    """In a crowd a missed face often overlaps a detected neighbour (IoU 0.33 here):
    it is a different face, not a duplicate, and keeps its carried box."""
    p = Persistence()
    p.update(faces([0, 0, 40, 40], [20, 0, 60, 40]))
    out = p.update(faces([20, 0, 60, 40])).faces
    assert len(out) == 2 and out.carried.sum() == 1
    np.testing.assert_allclose(out.xyxy[out.carried][0, :2], [0, 0], atol=2)


def test_fit_scene_recovers_a_zoom_and_a_pan_despite_walkers():
    rng = np.random.default_rng(2)
    points = rng.uniform(0, 1280, (200, 2))
    step = 0.01 * points + np.array([-4.0, 2.0])
    step[:20] += rng.uniform(-15, 15, (20, 2))  # a tenth walk their own way
    scene = fit_scene(points, step, np.zeros(3))
    assert scene[0] == pytest.approx(0.01, abs=1e-4)  # zoom: 1 % per frame
    np.testing.assert_allclose(scene[1:], [-4.0, 2.0], atol=0.02)  # pan, px/frame
    assert np.allclose(fit_scene(points[:3], step[:3], np.array([0.1, 1, 1])), [0.085, 0.85, 0.85])  # too few: damped


def test_small_faces_in_a_fast_pan_keep_their_tracks():
    """A camera panning 8 px/frame over 10 px faces moves each further than its size
    between frames: the pan, learnt from the larger faces, carries them to their match,
    so each face keeps one track instead of a new one (and a carried box) per frame."""
    rng = np.random.default_rng(4)
    small = rng.uniform(100, 1100, (40, 2))
    large = rng.uniform(100, 1100, (8, 2))
    boxes = np.concatenate([np.hstack([small, small + 10]), np.hstack([large, large + 60])]).astype(np.float32)
    p = Persistence()
    ids = set()
    for t in range(8):
        out = p.update(faces(*(boxes + np.float32([8 * t, 0, 8 * t, 0])))).faces
        ids |= set(out.track_id[~out.carried].tolist())
    assert len(ids) <= len(boxes) + 40  # the small faces lose their tracks once at most, while the pan is learnt
    assert len(out) <= len(boxes) + 40  # (main: a new track and a carried box per small face every frame)
