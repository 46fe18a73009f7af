"""The tracker's pair-wise update (issue 17: a crowd frame costs O(pairs that can
interact), not O(detections x tracks)) gives exactly the TrackUpdate of the dense
formulation it replaced, on random crowds."""

import numpy as np
import pytest

import blurcam.track
from blurcam.boxes import meeting_pairs
from blurcam.track import Persistence, TrackConfig
from blurcam.types import Faces
from old_code import module_at, update_column

DENSE_COMMIT = "5db8a40"  # the last track.py with (D, T) matrices in Persistence.update


def random_crowd(seed: int, frames: int = 25):
    """Detections of a crowd frame by frame: faces that move (own motion plus a pan and
    a zoom), blink, are re-found far off (distance matches), split into two boxes
    (duplicates), plus one-frame false positives and frames with no answer (None).
    Half the seeds round to whole pixels so equal IoUs and distances tie."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 120))
    wh = np.array([rng.uniform(150, 700), rng.uniform(100, 400)])
    side = rng.uniform(4, 60, n)
    xy = rng.uniform(0, 1, (n, 2)) * wh
    box = np.concatenate([xy, xy + side[:, None] * rng.uniform(0.8, 1.2, (n, 1))], axis=1)
    vel = rng.normal(0, rng.uniform(0, 6), (n, 2))
    pan, zoom = rng.normal(0, 4, 2), rng.normal(0, 0.01)
    whole = rng.random() < 0.5
    out = []
    for _ in range(frames):
        centre = (box[:, :2] + box[:, 2:]) / 2
        shift = np.tile(vel + pan + zoom * (centre - wh / 2), 2)
        box = box + shift + rng.normal(0, 1, box.shape)
        if rng.random() < 0.08:
            out.append(None)
            continue
        seen = box[rng.random(n) >= rng.uniform(0, 0.5)]
        jump = rng.random(len(seen)) < 0.1  # re-found far from where its motion says
        seen[jump] += np.tile(rng.normal(0, 15, (int(jump.sum()), 2)), 2)
        split = seen[rng.random(len(seen)) < 0.1]
        split = np.concatenate([split[:, :2], split[:, :2] + (split[:, 2:] - split[:, :2]) * 0.6], axis=1)
        fp_xy = rng.uniform(0, 1, (int(rng.integers(0, 15)), 2)) * wh
        fp = np.concatenate([fp_xy, fp_xy + rng.uniform(2, 30, (len(fp_xy), 1))], axis=1)
        det = np.concatenate([seen, split, fp])[rng.permutation(len(seen) + len(split) + len(fp))]
        if whole:
            det = np.round(det)
        out.append(Faces.from_xyxy(det.astype(np.float32), rng.uniform(0.05, 1, len(det)).astype(np.float32)))
    return out


def random_config(seed: int) -> TrackConfig:
    rng = np.random.default_rng(seed + 10_000)
    return TrackConfig(hold_frames=int(rng.integers(0, 20)), match_iou=float(rng.choice([0.05, 0.2, 0.5])),
                       reach_per_frame=float(rng.choice([0.1, 0.25, 0.7, 1.5])),
                       confirm_hits=int(rng.integers(1, 3)), velocity_decay=float(rng.uniform(0.5, 1)))


def assert_same(got, want):
    for name in ("faces", "births"):
        a, b = (got.faces, want.faces) if name == "faces" else (update_column(got, name), update_column(want, name))
        for f in ("xyxy", "score", "track_id", "carried"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f"{name}.{f}")
    for f in ("births_age", "births_now", "births_velocity", "gap_from", "gap_to", "gaps", "gap_ids"):
        np.testing.assert_array_equal(update_column(got, f), update_column(want, f), err_msg=f)
    assert got.reach == want.reach


def _all_pairs(a, b, cell=None):
    """The dense pairing: every (i, j), as the (D, T) matrices had them."""
    i, j = np.indices((len(np.reshape(a, (-1, 4))), len(np.reshape(b, (-1, 4)))))
    return i.ravel(), j.ravel()


@pytest.mark.parametrize("seed", range(40))
def test_sparse_update_equals_all_pairs(seed, monkeypatch):
    """The grid's pairs lose nothing: the same update as scoring every pair."""
    sparse, dense = Persistence(random_config(seed)), Persistence(random_config(seed))
    for det in random_crowd(seed):
        got = sparse.update(det)
        with monkeypatch.context() as m:
            m.setattr(blurcam.track, "meeting_pairs", _all_pairs)
            want = dense.update(det)
        assert_same(got, want)


def _dense_module():
    return module_at(DENSE_COMMIT, "track")


@pytest.mark.parametrize("seed", range(40))
def test_sparse_update_equals_dense_formulation(seed):
    """The same TrackUpdate (faces, births, gaps) as the (D, T) matrix code it replaced."""
    dense_track = _dense_module()
    sparse, dense = Persistence(random_config(seed)), dense_track.Persistence(random_config(seed))
    for det in random_crowd(seed):
        assert_same(sparse.update(det), dense.update(det))


def test_meeting_pairs_are_every_meeting_pair_once():
    rng = np.random.default_rng(0)
    for trial in range(200):
        def boxes(k):
            xy, size = rng.uniform(-50, 400, (k, 2)), rng.uniform(0, 80, (k, 2))
            size[rng.random(k) < 0.2] = 0  # points
            size[rng.random(k) < 0.05] *= -1  # inverted: meet nothing
            out = np.concatenate([xy, xy + size], axis=1)
            return np.round(out) if trial % 2 else out
        a, b = boxes(int(rng.integers(0, 60))), boxes(int(rng.integers(0, 60)))
        i, j = meeting_pairs(a, b, cell=None if trial % 3 else float(rng.uniform(1, 100)))
        order = np.lexsort((j, i))
        i, j = i[order], j[order]
        A, B = a[:, None], b[None]
        meet = ((A[..., 0] <= B[..., 2]) & (B[..., 0] <= A[..., 2]) & (A[..., 1] <= B[..., 3]) & (B[..., 1] <= A[..., 3])
                & (A[..., 2] >= A[..., 0]) & (A[..., 3] >= A[..., 1]) & (B[..., 2] >= B[..., 0]) & (B[..., 3] >= B[..., 1]))
        want_i, want_j = np.nonzero(meet)
        np.testing.assert_array_equal(i, want_i)
        np.testing.assert_array_equal(j, want_j)
        # exact=False: a superset, still each pair once
        i, j = meeting_pairs(a, b, cell=float(rng.uniform(8, 100)), exact=False)
        pairs = set(zip(i.tolist(), j.tolist()))
        assert len(pairs) == len(i) and set(zip(want_i.tolist(), want_j.tolist())) <= pairs


def test_meeting_pairs_far_apart_and_huge_boxes_stay_small():
    """A box far off, or one covering everything, widens the grid instead of filling it."""
    a = np.array([[0, 0, 10, 10], [1e7, 1e7, 1e7 + 10, 1e7 + 10], [-1e6, -1e6, 1e6, 1e6]], np.float32)
    i, j = meeting_pairs(a, a)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 0), (0, 2), (1, 1), (2, 0), (2, 2)]


def lattice_crowd(seed: int, frames: int = 12):
    """Equal faces on a lattice closer than their size, moving in whole pixels: a
    detection between two tracks overlaps both equally, so ties decide matches."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(12) * 6, np.arange(8) * 6)
    box = np.stack([gx.ravel(), gy.ravel(), gx.ravel() + 10, gy.ravel() + 10], axis=1).astype(np.float32)
    out = []
    for _ in range(frames):
        box = box + np.float32(rng.integers(-3, 4)) * np.array([1, 0, 1, 0], np.float32)
        seen = box[rng.random(len(box)) < 0.7] + np.float32(3) * np.array([1, 0, 1, 0], np.float32) * rng.integers(0, 2)
        out.append(Faces.from_xyxy(seen, np.full(len(seen), 0.5, np.float32)))
    return out


@pytest.mark.parametrize("seed", range(10))
def test_sparse_update_equals_dense_formulation_on_ties(seed):
    dense_track = _dense_module()
    sparse, dense = Persistence(random_config(seed)), dense_track.Persistence(random_config(seed))
    for det in lattice_crowd(seed):
        assert_same(sparse.update(det), dense.update(det))


@pytest.mark.parametrize("seed", range(20))
def test_one_box_per_face_on_shared_pairs_keeps_the_same_boxes(seed):
    """one_box_per_face now takes its candidate containers from meeting_pairs: the
    boxes kept are those its own grid kept (5db8a40), ties and empty regions included."""
    from blurcam.redact import RedactConfig, regions_for
    from blurcam.track import one_box_per_face

    reference = _dense_module()
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    xy = rng.uniform(-80, [640, 360], (n, 2))
    xyxy = np.concatenate([xy, xy + rng.uniform(0, 120, (n, 1)) * rng.uniform(0.8, 1.2, (n, 2))], axis=1)
    xyxy = (np.round(xyxy / 8) * 8 if seed % 2 else xyxy).astype(np.float32)
    f = Faces(xyxy, rng.random(n).astype(np.float32), rng.integers(-1, n // 3 + 1, n), rng.random(n) < 0.6)
    regions = regions_for(f.xyxy, (640, 360), RedactConfig())
    got, want = one_box_per_face(f, regions), reference.one_box_per_face(f, regions)
    for name in ("xyxy", "score", "track_id", "carried"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
