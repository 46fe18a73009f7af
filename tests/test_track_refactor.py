"""Persistence split into named steps over a track table (issue 22) gives, frame by
frame, exactly what the 125-line ``update`` it replaced (85f9e2a) gave: the same
faces, births, gaps, and boxes painted back onto every earlier frame."""

import numpy as np
import pytest

from blurcam.track import Persistence, TrackConfig
from blurcam.types import Faces
from old_code import module_at, update_column
from test_track_sparse import random_crowd

BEFORE_COMMIT = "85f9e2a"  # the last track.py with the one-piece Persistence.update


def _before_module():
    return module_at(BEFORE_COMMIT, "track")


def scripted_scene(seed: int, frames: int = 40, resolution_wh=(640, 360)):
    """Detections of a scene frame by frame: faces that walk, leave, and enter from
    the frame edge (seen first as a growing sliver), a camera that pans and zooms,
    blinks and longer misses (gaps), detector failures (None), one-frame false
    positives, split boxes and faces appearing where another was lost."""
    rng = np.random.default_rng(seed)
    w, h = resolution_wh
    n = int(rng.integers(3, 40))
    side = rng.uniform(8, 80, n)
    xy = rng.uniform(-60, 1, (n, 2)) * [1, 0] + rng.uniform(0, 1, (n, 2)) * [w, h]
    box = np.concatenate([xy, xy + side[:, None]], axis=1)
    vel = rng.normal(0, 3, (n, 2))
    born = rng.integers(0, frames // 2, n)  # frame each face first appears
    out = []
    for t in range(frames):
        pan, zoom = np.array([4 * np.sin(t / 6), 0.0]), 0.01 * np.cos(t / 9)
        centre = (box[:, :2] + box[:, 2:]) / 2
        box = box + np.tile(vel + pan + zoom * (centre - [w / 2, h / 2]), 2)
        if rng.random() < 0.06:
            out.append(None)
            continue
        inside = np.clip(box, 0, [w, h, w, h])  # a face at the edge is seen in part
        area = (inside[:, 2] - inside[:, 0]).clip(0) * (inside[:, 3] - inside[:, 1]).clip(0)
        seen = (born <= t) & (area > 0) & (rng.random(n) >= rng.uniform(0.05, 0.4))
        seen &= ~((t % 7 < 3) & (np.arange(n) % 5 == 0))  # some faces unseen for a few frames
        det = inside[seen] + rng.normal(0, 0.7, (int(seen.sum()), 4))
        split = det[rng.random(len(det)) < 0.08]
        split = np.concatenate([split[:, :2], split[:, :2] + (split[:, 2:] - split[:, :2]) * 0.55], axis=1)
        fp_xy = rng.uniform(0, 1, (int(rng.integers(0, 4)), 2)) * [w, h]
        fp = np.concatenate([fp_xy, fp_xy + rng.uniform(4, 40, (len(fp_xy), 1))], axis=1)
        det = np.concatenate([det, split, fp])[rng.permutation(len(det) + len(split) + len(fp))]
        if seed % 3 == 0:
            det = np.round(det)  # whole pixels: equal IoUs and distances tie
        out.append(Faces.from_xyxy(det.astype(np.float32), rng.uniform(0.05, 1, len(det)).astype(np.float32)))
    return out


def scripted_config(seed: int) -> TrackConfig:
    rng = np.random.default_rng(seed + 20_000)
    return TrackConfig(hold_frames=int(rng.integers(0, 16)), lookback_frames=int(rng.integers(0, 20)),
                       match_iou=float(rng.choice([0.05, 0.2, 0.5])),
                       growth_per_frame=float(rng.choice([0.0, 0.03, 0.1])),
                       velocity_decay=float(rng.uniform(0.5, 1)), confirm_hits=int(rng.integers(1, 4)),
                       reach_per_frame=float(rng.choice([0.1, 0.25, 0.7, 1.5])))


def assert_same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Equal to the bit, dtype included (np.testing's asserts cost more than the tracker here)."""
    assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), f"{what}: {a!r} != {b!r}"


def assert_same_faces(got: Faces, want: Faces, what: str) -> None:
    for f in ("xyxy", "score", "track_id", "carried"):
        assert_same(getattr(got, f), getattr(want, f), f"{what}.{f}")


def assert_same_update(got, want, depth: int, frame: int) -> None:
    assert_same_faces(got.faces, want.faces, f"frame {frame} faces")
    assert_same_faces(got.born.faces, want.births, f"frame {frame} births")
    for f in ("births_age", "births_now", "births_velocity", "gap_from", "gap_to", "gaps", "gap_ids"):
        assert_same(update_column(got, f), getattr(want, f), f"frame {frame} {f}")
    assert got.reach == want.reach
    # What a caller holding ``depth`` earlier frames paints onto each of them.
    for back in range(1, depth + 1):
        assert_same_faces(got.owed_to(back), want.lookback(back), f"frame {frame} painted {back} back")


def run_both(config: TrackConfig, scene: list) -> None:
    before = _before_module()
    new, old = Persistence(config), before.Persistence(config)
    depth = max(config.lookback_frames, 1) + 3  # a few past the window: reach is unbounded for births
    for frame, det in enumerate(scene):
        assert_same_update(new.update(det), old.update(det), depth, frame)
        assert_same(new.ids, old.ids, f"frame {frame} track ids")


@pytest.mark.parametrize("seed", range(16))
def test_split_update_equals_the_one_piece_update_on_scripted_scenes(seed):
    run_both(scripted_config(seed), scripted_scene(seed))


@pytest.mark.parametrize("seed", range(4))
def test_split_update_equals_the_one_piece_update_on_crowds(seed):
    run_both(scripted_config(seed), random_crowd(seed))
