"""Temporal persistence for redaction: detections plus boxes of recently lost faces.

A detector blinks: a face found in frame t can be missed in t+1 and found again
in t+2. For redaction a miss is a leak, so persistence here only ever ADDS boxes
(unlike SORT or ByteTrack, which hold back unconfirmed or low-score boxes):

    output(t) = every detection of frame t
              + the predicted box of every track lost less than ``hold_frames`` ago

Tracks are matched greedily by IoU against their predicted boxes, then what is
left by centre distance (a face unseen for frames can move out of IoU reach); a
track's velocity is a smoothed per-frame change of its box. The scene's motion (a
camera's pan and zoom, fitted to the faces matched each frame) moves new faces and
lost ones, so small faces in a pan keep their tracks.

``Persistence.update`` returns a :class:`TrackUpdate`: the faces for this frame, and
what a caller holding earlier frames (files, not streams) should paint onto them:
a newly confirmed face back-filled into the frames before it, followed back along
its motion (births; again when a young face's box outgrows the one painted, as a
face sliding in from the frame edge does), and the straight path between two
sightings of a face for the frames between (gaps). ``TrackUpdate.lookback(back)``
gives those boxes for one earlier frame. ``one_box_per_face`` then merges a frame's
detections, carried and look-back boxes so each face is one box, never uncovering.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .boxes import meeting_pairs, pair_iou
from .types import Faces


MAX_REACH = 1.5  # box sizes: the farthest a face unseen for frames is matched
MAX_SIZE_RATIO = 1.5  # a distance match needs boxes within this size ratio


@dataclass(frozen=True, kw_only=True)
class TrackConfig:
    """hold_frames: frames a box is kept after its last detection (0 = off).
    lookback_frames: frames before a face's first detection that also get its box
        (files only; the pipeline delays output by this many frames).
    match_iou: least IoU between a prediction and a detection to be the same face.
    growth_per_frame: relative growth of a carried box per frame without detection,
        covering motion the velocity does not explain.
    velocity_decay: factor applied to a track's velocity every frame (damps drift).
    confirm_hits: detections a new face needs before it is back-filled into the
        frames before its birth.
    reach_per_frame: how far a face unseen for k frames may have moved and still be
        matched, in box sizes per frame (at most 1.5 box sizes in all).
    """

    hold_frames: int = 15
    lookback_frames: int = 15
    match_iou: float = 0.2
    growth_per_frame: float = 0.03
    velocity_decay: float = 0.85
    confirm_hits: int = 2
    reach_per_frame: float = 0.25

    def __post_init__(self) -> None:
        if self.hold_frames < 0:
            raise ValueError(f"hold_frames must be >= 0, got {self.hold_frames}")
        if self.lookback_frames < 0:
            raise ValueError(f"lookback_frames must be >= 0, got {self.lookback_frames}")
        if not 0.0 < self.match_iou <= 1.0:
            raise ValueError(f"match_iou must be in (0, 1], got {self.match_iou}")
        if self.confirm_hits < 1:
            raise ValueError(f"confirm_hits must be >= 1, got {self.confirm_hits}")
        if not 0.0 <= self.velocity_decay <= 1.0:
            raise ValueError(f"velocity_decay must be in [0, 1], got {self.velocity_decay}")
        if not 0.0 < self.reach_per_frame <= MAX_REACH:
            raise ValueError(f"reach_per_frame must be in (0, {MAX_REACH}], got {self.reach_per_frame}")
        if not 0.0 <= self.growth_per_frame <= 0.5:
            raise ValueError(f"growth_per_frame must be in [0, 0.5], got {self.growth_per_frame}")


_NONE4 = np.zeros((0, 4), np.float32)
_NONE2 = np.zeros((0, 2), np.float32)
_NONE = np.zeros(0, np.int64)
OUTGROWN = 1.5  # a young face's box this much larger in area than its painted one is painted back again
DUPLICATE_INSIDE = 0.7  # share of a lost track's box inside a detection that makes it a duplicate
SPEED_DOUBT = 0.5  # share of a face's measured speed its look-back box widens by, per frame back


@dataclass(frozen=True)
class TrackUpdate:
    """One ``Persistence.update``: this frame's faces, and boxes owed to earlier frames.

    faces: every detection (with track ids) plus carried boxes of lost tracks.
    births: faces confirmed by this update (their second detection), box at birth;
        births_age (N,) frames between birth and now; births_now (N, 4) box now;
        births_velocity (N, 2) centre motion in px/frame, measured from the face's own
        sightings (or the scene's motion when it was born this frame).
    gap_from, gap_to (M, 4): the boxes of tracks found again after gaps (M,) frames
        unseen, at the earlier and at this sighting; gap_ids (M,).
    growth_per_frame: how fast a look-back box grows with its distance from a sighting.
    """

    faces: Faces
    births: Faces = field(default_factory=Faces.empty)
    births_age: np.ndarray = field(default_factory=lambda: _NONE)
    births_now: np.ndarray = field(default_factory=lambda: _NONE4)
    births_velocity: np.ndarray = field(default_factory=lambda: _NONE2)
    gap_from: np.ndarray = field(default_factory=lambda: _NONE4)
    gap_to: np.ndarray = field(default_factory=lambda: _NONE4)
    gaps: np.ndarray = field(default_factory=lambda: _NONE)
    gap_ids: np.ndarray = field(default_factory=lambda: _NONE)
    growth_per_frame: float = 0.0

    @property
    def reach(self) -> int | None:
        """How many frames back this update owes boxes: 0 none, None unbounded (a
        birth is painted over every earlier frame still held)."""
        if len(self.births):
            return None
        return int(self.gaps.max()) - 1 if len(self.gaps) else 0

    def lookback(self, back: int) -> Faces:
        """Carried boxes for the frame ``back`` (>= 1) frames before this one: each
        birth's box (inside its life, the span of its sightings; before its birth, its
        boxes followed back along its motion and grown), and the path between two
        sightings inside a gap. Boxes may reach past the frame edge (a face entering
        the frame): redaction clips them, nothing here drops them."""
        first, now, age = self.births.xyxy, self.births_now, self.births_age
        inside = back < age
        spanned = np.concatenate([np.minimum(first[:, :2], now[:, :2]), np.maximum(first[:, 2:], now[:, 2:])], axis=1)
        before = follow_back(first, now, self.births_velocity, np.maximum(back - age, 0), back,
                             self.growth_per_frame)
        born = np.where(inside[:, None], spanned, before).astype(np.float32)
        bridged = bridge_boxes(self.gap_from, self.gap_to, self.gaps, back, self.growth_per_frame)
        ids = np.concatenate([self.births.track_id, self.gap_ids[self.gaps > back]])
        score = np.concatenate([self.births.score, np.ones(len(bridged), np.float32)])
        return Faces(np.concatenate([born, bridged]), score.astype(np.float32), ids, np.ones(len(ids), bool))


def follow_back(first: np.ndarray, now: np.ndarray, velocity: np.ndarray, before_birth: np.ndarray,
                before_now: int, growth_per_frame: float) -> np.ndarray:
    """Where new faces were ``before_birth`` (N,) frames before their first sighting
    ``first`` (N, 4) xyxy, from that box and the latest one ``now`` (N, 4), seen
    ``before_now`` frames after the frame asked for, moving ``velocity`` (N, 2) px/frame.

    Both boxes are moved back along the motion (a face entering the frame is first
    seen in part: its later, fuller box moved back covers its earlier slivers), the
    hull of the two is kept at full size (never shrunk: a box pinned to the frame edge
    does not measure the face's size) and grown by ``growth_per_frame`` of its size
    and by ``SPEED_DOUBT`` of the speed per frame back, for motion the two sightings
    did not measure. Returns (N, 4) float32; it may lie partly outside the frame.
    """
    d = before_birth.astype(np.float32)[:, None]
    shift = np.tile(velocity, 2)
    from_first = first - shift * d
    from_now = now - shift * np.float32(before_now)
    box = np.concatenate([np.minimum(from_first[:, :2], from_now[:, :2]),
                          np.maximum(from_first[:, 2:], from_now[:, 2:])], axis=1)
    size = box[:, 2:] - box[:, :2]
    margin = size * growth_per_frame * (d + 1) / 2 + SPEED_DOUBT * np.abs(velocity) * d
    return np.concatenate([box[:, :2] - margin, box[:, 2:] + margin], axis=1).astype(np.float32)


class Persistence:
    """Holds lost faces for ``hold_frames``; call ``update`` once per frame, in order,
    even when the detector found nothing (pass ``Faces.empty()``).

    Track state is kept as parallel arrays (T = live tracks): ``box`` (T, 4) last
    detected or predicted xyxy, ``velocity`` (T, 4) per-frame change, ``missed`` (T,)
    frames since last detection, ``ids`` (T,).

    Cost per update O(D + T + pairs of boxes that meet), not O(D * T): matching,
    distance matching (boxes widened by their reach), duplicates and known births all
    score only the pairs :func:`~blurcam.boxes.meeting_pairs` finds, with the same
    result as scoring every pair (tests/test_track_sparse.py).
    """

    def __init__(self, config: TrackConfig | None = None) -> None:
        self.config = config or TrackConfig()
        self.box = np.zeros((0, 4), np.float32)
        self.velocity = np.zeros((0, 4), np.float32)
        self.missed = np.zeros(0, np.int64)
        self.ids = np.zeros(0, np.int64)
        self.score = np.zeros(0, np.float32)
        self.last_seen = np.zeros((0, 4), np.float32)  # (T, 4) box at the last detection
        self.hits = np.zeros(0, np.int64)  # (T,) detections so far
        self.age = np.zeros(0, np.int64)  # (T,) updates since the track was born
        self.first_box = np.zeros((0, 4), np.float32)  # (T, 4) box at birth
        self.backfill = np.zeros(0, bool)  # (T,) a new face that still owes its look-back
        self.painted = np.zeros((0, 4), np.float32)  # (T, 4) latest box its look-back was painted from
        # The scene's motion (a camera panning and zooming moves every face): a point p
        # moves scene[0] * p + scene[1:] px per frame. Fitted to the faces matched each frame.
        self.scene = np.zeros(3, np.float32)
        self._next_id = 0

    def update(self, detections: Faces | None) -> TrackUpdate:
        """This frame's :class:`TrackUpdate`: ``faces`` are all ``detections`` (with
        track ids) plus carried boxes of tracks lost less than ``hold_frames`` ago
        (``carried=True``); births and gaps are what it owes earlier frames.

        ``detections=None`` means the detector had no answer for this frame (failure):
        tracks are predicted forward but not aged, and nothing is born.
        """
        growth = self.config.growth_per_frame
        predicted = self.box + self.velocity
        # A prediction is a guess that worsens with time: damp a face's own velocity
        # towards the scene's motion there, so a jittery velocity cannot carry a box off a
        # face that has stopped, while a face in a pan keeps moving with the pan.
        field = scene_motion(self.scene, self.box)
        self.velocity = field + (self.velocity - field) * np.float32(self.config.velocity_decay)
        if detections is None:
            self.box = predicted
            return TrackUpdate(self._carried(np.ones(len(self.ids), bool)), growth_per_frame=growth)
        det = detections.xyxy
        track_of_det = np.full(len(det), -1, np.int64)
        reached = np.zeros(len(det), bool)  # matched by distance, not overlap
        if len(det) and len(predicted):
            # Only boxes that meet can overlap: pairs from a grid, O(pairs), not O(D * T).
            d, t = meeting_pairs(det, predicted)
            iou = pair_iou(det[d], predicted[t])
            close = iou >= self.config.match_iou
            _assign_greedy(d[close], t[close], -iou[close], len(predicted), track_of_det)
            # A face unseen for a few frames (a detector run on every k-th frame, a blink)
            # can move out of IoU reach: match what is left by centre distance, within a
            # radius that grows with the frames unseen, between boxes of similar size.
            free_d, free_t = np.flatnonzero(track_of_det < 0), np.setdiff1d(np.arange(len(predicted)), track_of_det)
            if len(free_d) and len(free_t):
                seen = self.last_seen[free_t]
                size_t = (seen[:, 2:] - seen[:, :2]).max(axis=1)
                size_d = (det[free_d, 2:] - det[free_d, :2]).max(axis=1)
                centre_t = (predicted[free_t, :2] + predicted[free_t, 2:]) / 2
                centre_d = (det[free_d, :2] + det[free_d, 2:]) / 2
                radius = np.minimum(self.config.reach_per_frame * (self.missed[free_t] + 1), MAX_REACH)
                # Candidates: detection centres inside a square about each track's centre
                # a little wider than its reach; the exact test below decides.
                reach = (radius * np.maximum(size_t, 1)) * 1.001 + 0.01
                i, j = meeting_pairs(np.concatenate([centre_d, centre_d], axis=1),
                                     np.concatenate([centre_t - reach[:, None], centre_t + reach[:, None]], axis=1))
                dist = np.linalg.norm(centre_d[i] - centre_t[j], axis=1) / np.maximum(size_t, 1)[j]
                ratio = size_d[i] / np.maximum(size_t, 1)[j]
                ok = (dist <= radius[j]) & (ratio > 1 / MAX_SIZE_RATIO) & (ratio < MAX_SIZE_RATIO)
                sub = np.full(len(free_d), -1, np.int64)
                _assign_greedy(i[ok], j[ok], dist[ok], len(free_t), sub)
                track_of_det[free_d[sub >= 0]] = free_t[sub[sub >= 0]]
                reached[free_d[sub >= 0]] = True
        matched = track_of_det >= 0
        hit = np.zeros(len(self.ids), bool)
        hit[track_of_det[matched]] = True
        t_hit, d_hit = track_of_det[matched], np.flatnonzero(matched)
        refound = self.missed[t_hit] > 0
        gap_from = self.last_seen[t_hit[refound]]
        gap_to = det[d_hit[refound]].astype(np.float32)
        gaps = self.missed[t_hit[refound]] + 1
        gap_ids = self.ids[t_hit[refound]]

        # Matched tracks: update box and smoothed velocity. Unmatched: predict, age.
        new_box = predicted.copy()
        new_vel = self.velocity.copy()
        t_idx = track_of_det[matched]
        # Per-frame motion since the last sighting: a face re-found after k frames unseen
        # (a detector run on every k-th frame) moved k frames' worth.
        step = (det[matched] - self.last_seen[t_idx]) / (self.missed[t_idx] + 1)[:, None].astype(np.float32)
        new_vel[t_idx] = 0.5 * self.velocity[t_idx] + 0.5 * step
        self.scene = fit_scene(_centre(self.last_seen[t_idx]), _centre(step), self.scene)
        new_box[t_idx] = det[matched]
        missed = np.where(hit, 0, self.missed + 1)
        # An unmatched track whose prediction lies mostly inside a detection of this frame
        # (and overlaps it as a match would) is a duplicate (two detectors, or a split
        # box, on one face): that detection covers the face, so the track ends instead of
        # adding a carried box. Overlap alone is not enough: in a crowd, a missed face
        # overlaps its detected neighbour.
        if len(det) and (~hit).any():
            lost = predicted[~hit]
            i, j = meeting_pairs(lost, det)
            dup = (pair_iou(lost[i], det[j]) >= self.config.match_iou) & (covered_share(lost[i], det[j]) >= DUPLICATE_INSIDE)
            covered = np.zeros(len(lost), bool)
            covered[i[dup]] = True
            missed[np.flatnonzero(~hit)[covered]] = self.config.hold_frames + 1
        score = self.score.copy()
        score[t_idx] = detections.score[matched]
        last_seen = self.last_seen.copy()
        last_seen[t_idx] = det[matched]
        hits = self.hits.copy()
        hits[t_idx] += 1
        age = self.age + 1

        # Unmatched detections start new tracks.
        born = ~matched
        n_born = int(born.sum())
        born_ids = np.arange(self._next_id, self._next_id + n_born, dtype=np.int64)
        self._next_id += n_born
        track_of_det[born] = np.arange(len(self.ids), len(self.ids) + n_born)

        self.box = np.concatenate([new_box, det[born]])
        # A new face most likely moves as the scene does (a camera pan moves every face):
        # predicted so, it is matched next frame even when it is small and the pan fast.
        self.velocity = np.concatenate([new_vel, scene_motion(self.scene, det[born])]).astype(np.float32)
        self.missed = np.concatenate([missed, np.zeros(n_born, np.int64)])
        self.ids = np.concatenate([self.ids, born_ids])
        self.score = np.concatenate([score, detections.score[born]])
        self.last_seen = np.concatenate([last_seen, det[born]])
        self.hits = np.concatenate([hits, np.ones(n_born, np.int64)])
        self.age = np.concatenate([age, np.zeros(n_born, np.int64)])
        self.first_box = np.concatenate([self.first_box, det[born]])
        self.painted = np.concatenate([self.painted, det[born]])
        # A birth lying mostly inside a live track is a split or duplicate of a known
        # face, not a face appearing: it owes no look-back. One that merely touches a
        # neighbour's box (a face entering beside another, common in crowds) does.
        known = np.zeros(n_born, bool)
        if n_born and len(new_box):
            i, j = meeting_pairs(det[born], new_box)
            known[i[covered_share(det[born][i], new_box[j]) >= 0.5]] = True
        self.backfill = np.concatenate([self.backfill, ~known])
        # A match by distance may be a different face that appeared where one was lost:
        # it keeps the track (and its bridge) but also owes the look-back of a new face,
        # from this box, once seen again.
        t_reached = track_of_det[reached]
        self.backfill[t_reached] = True
        self.first_box[t_reached] = det[reached]
        self.hits[t_reached] = 1
        self.age[t_reached] = 0
        self.painted[t_reached] = det[reached]

        out_detected = Faces(det.astype(np.float32), detections.score.astype(np.float32),
                             self.ids[track_of_det], np.zeros(len(det), bool))
        # Look-back waits for a second detection: a one-frame false positive (common at
        # crowd-grade thresholds) would otherwise be painted over the frames before it.
        confirmed = self.backfill & (self.hits >= self.config.confirm_hits)
        # A young face whose box outgrows the one its look-back was painted from (a face
        # sliding in from the frame edge is first seen as a sliver, then whole) is
        # painted back again from its new box, while its first frames are still held.
        seen_now = np.zeros(len(self.ids), bool)
        seen_now[track_of_det] = True
        young = seen_now & ~self.backfill & (self.age <= self.config.lookback_frames)
        if young.any():
            now, painted = self.last_seen[young], self.painted[young]
            outgrown = _area(now) > OUTGROWN * _area(painted)
            confirmed[np.flatnonzero(young)[outgrown]] = True
        births = Faces(self.first_box[confirmed], self.score[confirmed], self.ids[confirmed],
                       np.ones(int(confirmed.sum()), bool))
        births_age, births_now = self.age[confirmed], self.last_seen[confirmed]  # confirmed now: seen now
        births_velocity = _centre(births_now) - _centre(self.first_box[confirmed])
        births_velocity = np.where(births_age[:, None] > 0, births_velocity / np.maximum(births_age, 1)[:, None],
                                   _centre(scene_motion(self.scene, births_now))).astype(np.float32)
        self.backfill &= ~confirmed
        self.painted[confirmed] = births_now

        lost = (self.missed > 0) & (self.missed <= self.config.hold_frames)
        carried = self._carried(lost)
        # Forget tracks past their hold.
        alive = self.missed <= self.config.hold_frames
        self.box, self.velocity, self.missed = self.box[alive], self.velocity[alive], self.missed[alive]
        self.ids, self.score, self.last_seen = self.ids[alive], self.score[alive], self.last_seen[alive]
        self.hits, self.age, self.first_box = self.hits[alive], self.age[alive], self.first_box[alive]
        self.backfill, self.painted = self.backfill[alive], self.painted[alive]
        return TrackUpdate(Faces.concat([out_detected, carried]), births, births_age, births_now,
                           births_velocity, gap_from, gap_to, gaps, gap_ids, growth)

    def _carried(self, which: np.ndarray) -> Faces:
        """Boxes for the selected lost tracks: the union of where the face was last
        seen and where its motion predicts it, grown by the time unseen."""
        if not which.any():
            return Faces.empty()
        grow = 1.0 + self.config.growth_per_frame * np.maximum(self.missed[which], 1)
        pred, seen = self.box[which], self.last_seen[which]
        box = np.concatenate([np.minimum(pred[:, :2], seen[:, :2]), np.maximum(pred[:, 2:], seen[:, 2:])], axis=1)
        centre = (box[:, :2] + box[:, 2:]) / 2
        half = (box[:, 2:] - box[:, :2]) / 2 * grow[:, None]
        xyxy = np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
        return Faces(xyxy, self.score[which], self.ids[which], np.ones(int(which.sum()), bool))


def _area(xyxy: np.ndarray) -> np.ndarray:
    return (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])


def _centre(xyxy: np.ndarray) -> np.ndarray:
    return (xyxy[:, :2] + xyxy[:, 2:]) / 2


def fit_scene(points: np.ndarray, step: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The scene's motion (3,) as a zoom and a pan: a point p moves ``a * p + (tx, ty)``
    px per frame; least squares over faces at ``points`` (M, 2) px that moved ``step``
    (M, 2) px/frame, refitted without the worst outliers (faces walking against the
    pan). With fewer than six faces the ``previous`` estimate is kept, damped."""
    if len(points) < 6:
        return (previous * 0.85).astype(np.float32)
    points, step = points.astype(np.float64), step.astype(np.float64)
    use = np.ones(len(points), bool)
    for _ in range(2):
        # Least squares in closed form: about the mean point, the zoom is the step's
        # projection on the offset, and the pan what is left at the mean.
        p_mean, s_mean = points[use].mean(axis=0), step[use].mean(axis=0)
        dp, ds = points[use] - p_mean, step[use] - s_mean
        zoom = float((dp * ds).sum() / max(float((dp * dp).sum()), 1e-9))
        pan = s_mean - zoom * p_mean
        residual = np.abs(zoom * points + pan - step).max(axis=1)
        use = residual <= max(3 * float(np.median(residual)), 1.0)
    return np.array([zoom, *pan], np.float32)


def scene_motion(scene: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """Per-frame motion (N, 4) px/frame of each corner of boxes (N, 4) xyxy under the
    scene's motion (3,) from :func:`fit_scene` (a box grows as the camera zooms in)."""
    return (scene[0] * xyxy + np.tile(scene[1:], 2)).astype(np.float32)


def covered_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of each box of ``a``'s area inside the box of ``b`` it is broadcast against:
    (N, 4), (N, 4) -> (N,) row by row; (N, 1, 4), (1, M, 4) -> (N, M)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    return iw * ih / np.maximum((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]), 1e-9)


def _assign_greedy(rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, n_cols: int, out: np.ndarray) -> None:
    """Greedy one-to-one assignment over the allowed pairs (P,) ``rows``, ``cols`` with
    ``cost`` (P,) (each pair at most once; pairs not given are not allowed), cheapest
    first; writes the chosen column of each row into ``out`` (D,), leaving -1 for none.

    Allowed pairs are few (boxes that overlap or are near). Pairs are ranked once (cost,
    then row, then column, so no two tie); each round accepts every pair that is the
    best left for both its row and its column, which is what the cheapest-first walk
    would accept, in a few numpy rounds instead of a Python step per pair.
    """
    rank = np.empty(len(rows), np.int64)
    rank[np.lexsort((cols, rows, cost))] = np.arange(len(rows))
    none = len(rows)
    while len(rows):
        best_of_row = np.full(len(out), none, np.int64)
        best_of_col = np.full(n_cols, none, np.int64)
        np.minimum.at(best_of_row, rows, rank)
        np.minimum.at(best_of_col, cols, rank)
        take = (best_of_row[rows] == rank) & (best_of_col[cols] == rank)
        out[rows[take]] = cols[take]
        row_used, col_used = np.zeros(len(out), bool), np.zeros(n_cols, bool)
        row_used[rows[take]], col_used[cols[take]] = True, True
        left = ~(row_used[rows] | col_used[cols])
        rows, cols, rank = rows[left], cols[left], rank[left]


def bridge_boxes(gap_from: np.ndarray, gap_to: np.ndarray, gaps: np.ndarray, back: int,
                 growth_per_frame: float) -> np.ndarray:
    """Boxes for the frame ``back`` frames before a re-detection, for faces unseen for
    ``gaps`` (N,) frames between boxes ``gap_from`` and ``gap_to`` (N, 4): the straight
    path between the two sightings, grown by the distance to the nearer one. Only rows
    with ``gaps > back`` lie in the gap; returns those, (M, 4) float32.

    Carried boxes guess forward from the last sighting; once the face is seen again,
    the look-back buffer still holds the frames in between, and this fills them from
    both ends (what makes detecting every k-th frame safe).
    """
    inside = gaps > back
    start, end, gap = gap_from[inside], gap_to[inside], gaps[inside].astype(np.float32)
    t = ((gap - back) / gap)[:, None]  # 0 at the earlier sighting, 1 at this one
    box = start + (end - start) * t
    grow = 1.0 + growth_per_frame * np.minimum(gap - back, back)[:, None]
    centre, half = (box[:, :2] + box[:, 2:]) / 2, (box[:, 2:] - box[:, :2]) / 2 * grow
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def one_box_per_face(faces: Faces, regions: np.ndarray) -> Faces:
    """The faces of one frame, each once: detections, carried and look-back boxes of
    one face become one box, and no merge uncovers a pixel.

    ``regions`` (N, 4) int xyxy, x2/y2 exclusive, are the pixels redaction destroys for
    each of ``faces`` (padded and clipped as it pads and clips: containment is judged
    there, not on the raw boxes). Two steps:
    1. the carried and look-back boxes of one track (a box held forward and the path
       back-filled between two sightings, say) become their hull, which covers each;
    2. a carried box whose region lies inside another box's region is dropped, and so
       is one wholly outside the frame. Boxes are ranked (larger region first, then
       detections, then input order) and a box goes only into one ranked before it, so
       of equal regions one is kept and a chain of containments ends in a kept box.
    Detections are always kept, as they are. Safe on N = 0; order is kept. Candidate
    containers are the regions sharing a grid cell with a box's centre pixel, from
    :func:`~blurcam.boxes.meeting_pairs` (a grid of cells a third of a box across):
    O(N * boxes per cell), not O(N^2).
    """
    faces, regions = _hull_per_track(faces, np.asarray(regions, np.int64).reshape(-1, 4))
    n = len(faces)
    if n == 0:
        return faces
    r = regions
    w, h = r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]
    empty = (w <= 0) | (h <= 0)
    rank = np.empty(n, np.int64)
    rank[np.lexsort((np.arange(n), faces.carried, -(w * h)))] = np.arange(n)
    # Cells a third of the median box: a centre then shares its cell with fewer boxes
    # that do not hold it (stacked look-back boxes in a crowd), for a few more entries
    # per box (a dense crowd clip's 90 frames: 9.2 -> 6.8 ms per frame, same boxes kept).
    cell = int(max(8, np.median(np.maximum(w, h)[~empty]) // 3 if (~empty).any() else 8))
    # Candidate containers of each carried box: the boxes sharing the grid cell of its
    # centre pixel (a container holds it; containment below is the exact test).
    cand = np.flatnonzero(faces.carried & ~empty)
    centre = np.stack([(r[cand, 0] + r[cand, 2]) // 2, (r[cand, 1] + r[cand, 3]) // 2], axis=1)
    k, outer = meeting_pairs(np.concatenate([centre, centre], axis=1), r, cell, exact=False)
    inner = cand[k]
    # Column by column: .all(axis=1) over (P, 2) pairs cost more than the comparisons.
    inside = rank[outer] < rank[inner]
    for side, outer_holds in ((0, np.less_equal), (1, np.less_equal), (2, np.greater_equal), (3, np.greater_equal)):
        inside &= outer_holds(r[outer, side], r[inner, side])
    drop = faces.carried & empty
    drop[inner[inside]] = True
    return faces[~drop]


def _hull_per_track(faces: Faces, regions: np.ndarray) -> tuple[Faces, np.ndarray]:
    """Replace the carried boxes of each track (N, track_id >= 0) by one: their hull, at
    the place of the first, with the hull of their regions (the hull box's own padded
    region holds that hull, so judging containment on it errs on the safe side)."""
    which = np.flatnonzero(faces.carried & (faces.track_id >= 0))
    if len(which) < 2:
        return faces, regions
    order = which[np.argsort(faces.track_id[which], kind="stable")]
    ids = faces.track_id[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if len(starts) == len(order):
        return faces, regions
    first = order[starts]  # the first of each track's boxes in sorted order (input order within a track)
    xyxy, regions, score = faces.xyxy.copy(), regions.copy(), faces.score.copy()
    for arr in (xyxy, regions):
        arr[first, :2] = np.minimum.reduceat(arr[order, :2], starts)
        arr[first, 2:] = np.maximum.reduceat(arr[order, 2:], starts)
    score[first] = np.maximum.reduceat(score[order], starts)
    keep = np.ones(len(faces), bool)
    keep[order] = False
    keep[first] = True
    merged = Faces(xyxy, score, faces.track_id, faces.carried)
    return merged[keep], regions[keep]
