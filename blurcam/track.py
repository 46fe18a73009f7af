"""Temporal persistence for redaction: detections plus boxes of recently lost faces.

A detector blinks: a face found in frame t can be missed in t+1 and found again
in t+2. For redaction a miss is a leak, so persistence here only ever ADDS boxes
(unlike SORT or ByteTrack, which hold back unconfirmed or low-score boxes):

    output(t) = every detection of frame t
              + the carried box of every track lost less than ``hold_frames`` ago
                (the hull of its last detection and its predicted box, grown with
                every frame unseen)

Tracks are matched greedily by IoU against their predicted boxes, then what is
left by centre distance (a face unseen for frames can move out of IoU reach); a
track's velocity is a smoothed per-frame change of its box. The scene's motion (a
camera's pan and zoom, fitted to the faces matched each frame) moves new faces and
lost ones, so small faces in a pan keep their tracks.

Look-back. ``Persistence.update`` for frame t returns a :class:`TrackUpdate`: frame
t's faces, and the boxes it owes to earlier frames, for a caller that still buffers
them (a file buffers ``lookback_frames`` frames; a live stream buffers its delay's
worth, or none). ``TrackUpdate.owed_to(k)`` gives the boxes for frame t-k. Two kinds:

Births. A face first detected at frame b (box F) and confirmed at t (box N, its
``confirm_hits``-th detection), a = t - b frames later. Frame t-k gets:

    frame        b-3     b-2     b-1      b      b+1    ...    t-1      t
    detected                              F       *     ...     *       N
    owed_to(k)  fb(3)   fb(2)   fb(1)   fb(0)   hull    ...    hull     -
                [---- k >= a: fb(k - a) ----]   [----- k < a -----]

    *      confirm_hits - 2 of the frames between are detected (none by default);
           with confirm_hits 1, t = b and every earlier frame gets fb.
    hull   the box holding F and N (between its sightings the face is between them).
    fb(d)  :func:`follow_back`, d frames before b: F moved back d frames and N
           moved back k frames along the face's velocity v = (centre N - centre F)
           / a px/frame (the scene's motion when a = 0), their hull grown by
           (d + 1) / 2 * growth_per_frame of its size and by d * SPEED_DOUBT * |v|.
    Births reach back without bound (``reach`` is None): as far as the caller buffers.

A young face (at most ``lookback_frames`` old) whose box outgrows the N it was
painted back from (OUTGROWN; a face sliding in from the frame edge is first seen
as a sliver) is confirmed again, with its new box as N. A track matched by
distance (maybe a different face that appeared where one was lost) is born again
there: it owes the look-back of a new face once confirmed.

Gaps. A track detected at t-g (box P), unseen for the g-1 frames between, detected
again at t (box N):

    frame        t-g     t-g+1    ...    t-1       t
    detected      P        .      ...     .        N
    faces         P        C      ...     C        N     C: carried forward at the time
    owed_to(k)    -     br(g-1)   ...   br(1)      -     (``reach`` = g - 1)

    br(k)  :func:`bridge_boxes`: the point (g - k) / g of the straight path from P to N,
           grown by growth_per_frame * min(k, g - k) (the distance to the nearer sighting).

``one_box_per_face`` then merges a frame's detections, carried and look-back boxes
so each face is one box, never uncovering.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from .boxes import meeting_pairs, pair_hull, pair_iou, scale_about_centre
from .types import Faces


MAX_REACH = 1.5  # box sizes: the farthest a face unseen for frames is matched
MAX_SIZE_RATIO = 1.5  # a distance match needs boxes within this size ratio


@dataclass(frozen=True, kw_only=True)
class TrackConfig:
    """hold_frames: frames a lost face's box is carried forward after its last
        detection (0 = off).
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


OUTGROWN = 1.5  # a young face's box this much larger in area than its painted one is painted back again
DUPLICATE_INSIDE = 0.7  # share of a lost track's box inside a detection that makes it a duplicate
SPEED_DOUBT = 0.5  # share of a face's measured speed its look-back box widens by, per frame back


@dataclass(frozen=True, kw_only=True)
class Births:
    """Faces confirmed by one update (N rows), owed to the frames before it.

    faces: each face as first seen (box at birth, its score and track id; carried).
    age: (N,) int64 frames from its birth to this update.
    now_xyxy: (N, 4) float32 its box in this update.
    velocity: (N, 2) float32 centre motion in px/frame, measured from its own
        sightings (the scene's motion when it was born in this update).
    """

    faces: Faces
    age: np.ndarray
    now_xyxy: np.ndarray
    velocity: np.ndarray

    @classmethod
    def none(cls) -> Births:
        return cls(faces=Faces.empty(), age=np.zeros(0, np.int64), now_xyxy=np.zeros((0, 4), np.float32),
                   velocity=np.zeros((0, 2), np.float32))

    def __len__(self) -> int:
        return len(self.faces)

    def owed_to(self, back: int, growth_per_frame: float) -> Faces:
        """Each face's box on the frame ``back`` frames before this update (carried):
        inside its life the hull of its two boxes, before its birth :func:`follow_back`."""
        first, age = self.faces.xyxy, self.age
        before = follow_back(first, self.now_xyxy, self.velocity, np.maximum(back - age, 0), back, growth_per_frame)
        xyxy = np.where((back < age)[:, None], pair_hull(first, self.now_xyxy), before).astype(np.float32)
        return Faces(xyxy, self.faces.score, self.faces.track_id, np.ones(len(xyxy), bool))


@dataclass(frozen=True, kw_only=True)
class Gaps:
    """Tracks found again by one update after frames unseen (M rows).

    before_xyxy: (M, 4) float32 box at the earlier sighting; now_xyxy: (M, 4) at this one.
    frames: (M,) int64 frames from the earlier sighting to this one (>= 2).
    track_id: (M,) int64.
    """

    before_xyxy: np.ndarray
    now_xyxy: np.ndarray
    frames: np.ndarray
    track_id: np.ndarray

    @classmethod
    def none(cls) -> Gaps:
        return cls(before_xyxy=np.zeros((0, 4), np.float32), now_xyxy=np.zeros((0, 4), np.float32),
                   frames=np.zeros(0, np.int64), track_id=np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.frames)

    def owed_to(self, back: int, growth_per_frame: float) -> Faces:
        """The faces unseen on the frame ``back`` frames before this update, on the
        path between their sightings (:func:`bridge_boxes`; carried, score 1)."""
        xyxy = bridge_boxes(self.before_xyxy, self.now_xyxy, self.frames, back, growth_per_frame)
        return Faces(xyxy, np.ones(len(xyxy), np.float32), self.track_id[self.frames > back], np.ones(len(xyxy), bool))


@dataclass(frozen=True)
class TrackUpdate:
    """One ``Persistence.update``: this frame's faces, and boxes owed to earlier frames.

    faces: every detection (with track ids) plus carried boxes of lost tracks.
    born: the faces confirmed by this update, to paint back (:class:`Births`).
    refound: the tracks found again after a gap, to bridge (:class:`Gaps`).
    growth_per_frame: how fast a look-back box grows with its distance from a sighting.
    """

    faces: Faces
    born: Births = field(default_factory=Births.none)
    refound: Gaps = field(default_factory=Gaps.none)
    growth_per_frame: float = 0.0

    @property
    def reach(self) -> int | None:
        """How many frames back this update owes boxes: 0 none, None unbounded (a
        birth is painted over every earlier frame still buffered)."""
        if len(self.born):
            return None
        return int(self.refound.frames.max()) - 1 if len(self.refound) else 0

    def owed_to(self, back: int) -> Faces:
        """Carried boxes for the frame ``back`` (>= 1) frames before this one (the
        module docstring draws them): each birth's box, and the path between two
        sightings inside a gap. Boxes may reach past the frame edge (a face entering
        the frame): redaction clips them, nothing here drops them."""
        return Faces.concat([self.born.owed_to(back, self.growth_per_frame),
                             self.refound.owed_to(back, self.growth_per_frame)])


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
    box = pair_hull(first - shift * d, now - shift * np.float32(before_now))
    size = box[:, 2:] - box[:, :2]
    margin = size * growth_per_frame * (d + 1) / 2 + SPEED_DOUBT * np.abs(velocity) * d
    return np.concatenate([box[:, :2] - margin, box[:, 2:] + margin], axis=1).astype(np.float32)


@dataclass(frozen=True)
class _Tracks:
    """The live tracks as parallel arrays, one row per track (T rows), like ``Faces``.

    ids: (T,) int64 track id.
    box: (T, 4) float32 xyxy at the last detection, or predicted since.
    velocity: (T, 4) float32 per-frame change of ``box``, px/frame.
    missed: (T,) int64 frames since the last detection.
    score: (T,) score of the last detection.
    last_seen: (T, 4) float32 box at the last detection.
    hits: (T,) int64 detections since birth.
    age: (T,) int64 updates since birth.
    first_box: (T, 4) float32 box at birth.
    owes_lookback: (T,) bool a new face whose look-back is not painted yet.
    painted: (T, 4) float32 the latest box its look-back was painted from.

    The owning ``Persistence`` writes into the columns of a table it made this update;
    indexing and ``concat`` make new tables.
    """

    ids: np.ndarray
    box: np.ndarray
    velocity: np.ndarray
    missed: np.ndarray
    score: np.ndarray
    last_seen: np.ndarray
    hits: np.ndarray
    age: np.ndarray
    first_box: np.ndarray
    owes_lookback: np.ndarray
    painted: np.ndarray

    @classmethod
    def empty(cls) -> _Tracks:
        box = np.zeros((0, 4), np.float32)
        count = np.zeros(0, np.int64)
        return cls(ids=count, box=box, velocity=box, missed=count, score=np.zeros(0, np.float32), last_seen=box,
                   hits=count, age=count, first_box=box, owes_lookback=np.zeros(0, bool), painted=box)

    @classmethod
    def concat(cls, parts: list[_Tracks]) -> _Tracks:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index) -> _Tracks:
        """Select rows with a boolean mask or integer index array."""
        return _Tracks(*(getattr(self, f.name)[index] for f in fields(self)))


class Persistence:
    """Carries lost faces for ``hold_frames``; call ``update`` once per frame, in
    order, even when the detector found nothing (pass ``Faces.empty()``).

    The live tracks are one table of parallel arrays (:class:`_Tracks`). An update is
    five steps over it: match detections to tracks, advance every track (to its
    detection, or predicted on), start tracks for unmatched detections, confirm new
    faces (what is owed to earlier frames), forget tracks carried past their hold.

    Cost per update O(D + T + pairs of boxes that meet), not O(D * T): matching,
    distance matching (boxes widened by their reach), duplicates and known births all
    score only the pairs :func:`~blurcam.boxes.meeting_pairs` finds, with the same
    result as scoring every pair (tests/test_track_sparse.py).
    """

    def __init__(self, config: TrackConfig | None = None) -> None:
        self.config = config or TrackConfig()
        self._tracks = _Tracks.empty()
        # The scene's motion (a camera panning and zooming moves every face): a point p
        # moves scene[0] * p + scene[1:] px per frame. Fitted to the faces matched each frame.
        self.scene = np.zeros(3, np.float32)
        self._next_id = 0

    @property
    def ids(self) -> np.ndarray:
        """(T,) ids of the live tracks."""
        return self._tracks.ids

    def update(self, detections: Faces | None) -> TrackUpdate:
        """This frame's :class:`TrackUpdate`: ``faces`` are all ``detections`` (with
        track ids) plus carried boxes of tracks lost less than ``hold_frames`` ago
        (``carried=True``); births and gaps are what it owes earlier frames.

        ``detections=None`` means the detector had no answer for this frame (failure):
        tracks are predicted forward but not aged, and nothing is born.
        """
        growth = self.config.growth_per_frame
        tracks = self._tracks
        predicted = tracks.box + tracks.velocity
        # A prediction is a guess that worsens with time: damp a face's own velocity
        # towards the scene's motion there, so a jittery velocity cannot carry a box off a
        # face that has stopped, while a face in a pan keeps moving with the pan.
        motion = scene_motion(self.scene, tracks.box)
        tracks = replace(tracks, velocity=motion + (tracks.velocity - motion) * np.float32(self.config.velocity_decay))
        if detections is None:
            self._tracks = replace(tracks, box=predicted)
            return TrackUpdate(self._carried(self._tracks, np.ones(len(tracks), bool)), growth_per_frame=growth)
        track_of_det, by_distance = self._match(detections.xyxy, predicted, tracks)
        refound = _refound(tracks, detections.xyxy, track_of_det)
        tracks, duplicate = self._advance(tracks, predicted, detections, track_of_det)
        tracks, track_of_det = self._start(tracks, detections, track_of_det, by_distance)
        detected = Faces(detections.xyxy.astype(np.float32), detections.score.astype(np.float32),
                         tracks.ids[track_of_det], np.zeros(len(detections), bool))
        born = self._confirm(tracks, track_of_det)
        # Forget: duplicates now (a detection covers their face), the rest once carried past their hold.
        ended = np.concatenate([duplicate, np.zeros(len(tracks) - len(duplicate), bool)])
        alive = (tracks.missed <= self.config.hold_frames) & ~ended
        carried = self._carried(tracks, alive & (tracks.missed > 0))
        self._tracks = tracks[alive]
        return TrackUpdate(Faces.concat([detected, carried]), born, refound, growth)

    def _match(self, det: np.ndarray, predicted: np.ndarray, tracks: _Tracks) -> tuple[np.ndarray, np.ndarray]:
        """Match detections ``det`` (D, 4) to tracks at ``predicted`` (T, 4): the track
        row of each detection (D,) int64, -1 none, and (D,) bool matched by distance."""
        track_of_det = np.full(len(det), -1, np.int64)
        by_distance = np.zeros(len(det), bool)
        if not len(det) or not len(predicted):
            return track_of_det, by_distance
        # Only boxes that meet can overlap: pairs from a grid, O(pairs), not O(D * T).
        d, t = meeting_pairs(det, predicted)
        iou = pair_iou(det[d], predicted[t])
        close = iou >= self.config.match_iou
        _assign_greedy(d[close], t[close], -iou[close], len(predicted), track_of_det)
        # A face unseen for a few frames (a detector run on every k-th frame, a blink)
        # can move out of IoU reach: match what is left by centre distance, within a
        # radius that grows with the frames unseen, between boxes of similar size.
        free_d, free_t = np.flatnonzero(track_of_det < 0), np.setdiff1d(np.arange(len(predicted)), track_of_det)
        if not len(free_d) or not len(free_t):
            return track_of_det, by_distance
        seen = tracks.last_seen[free_t]
        size_t = (seen[:, 2:] - seen[:, :2]).max(axis=1)
        size_d = (det[free_d, 2:] - det[free_d, :2]).max(axis=1)
        centre_t, centre_d = _centre(predicted[free_t]), _centre(det[free_d])
        radius = np.minimum(self.config.reach_per_frame * (tracks.missed[free_t] + 1), MAX_REACH)
        # Candidates: detection centres inside a square about each track's centre
        # a little wider than its reach; the exact test below decides.
        reach_px = (radius * np.maximum(size_t, 1)) * 1.001 + 0.01
        i, j = meeting_pairs(np.concatenate([centre_d, centre_d], axis=1),
                             np.concatenate([centre_t - reach_px[:, None], centre_t + reach_px[:, None]], axis=1))
        dist = np.linalg.norm(centre_d[i] - centre_t[j], axis=1) / np.maximum(size_t, 1)[j]
        ratio = size_d[i] / np.maximum(size_t, 1)[j]
        ok = (dist <= radius[j]) & (ratio > 1 / MAX_SIZE_RATIO) & (ratio < MAX_SIZE_RATIO)
        sub = np.full(len(free_d), -1, np.int64)
        _assign_greedy(i[ok], j[ok], dist[ok], len(free_t), sub)
        track_of_det[free_d[sub >= 0]] = free_t[sub[sub >= 0]]
        by_distance[free_d[sub >= 0]] = True
        return track_of_det, by_distance

    def _advance(self, tracks: _Tracks, predicted: np.ndarray, detections: Faces,
                 track_of_det: np.ndarray) -> tuple[_Tracks, np.ndarray]:
        """Move every track on one frame: a matched one to its detection (its velocity
        smoothed, the scene's motion refitted), the others to their prediction, one
        more frame missed. Returns the new table and (T,) bool the tracks found to be
        duplicates of a detection, which end now."""
        det, matched = detections.xyxy, track_of_det >= 0
        rows = track_of_det[matched]
        hit = np.zeros(len(tracks), bool)
        hit[rows] = True
        # Per-frame motion since the last sighting: a face re-found after k frames unseen
        # (a detector run on every k-th frame) moved k frames' worth.
        step = (det[matched] - tracks.last_seen[rows]) / (tracks.missed[rows] + 1)[:, None].astype(np.float32)
        velocity = tracks.velocity.copy()
        velocity[rows] = 0.5 * tracks.velocity[rows] + 0.5 * step
        self.scene = fit_scene(_centre(tracks.last_seen[rows]), _centre(step), self.scene)
        box, score, last_seen, hits = predicted.copy(), tracks.score.copy(), tracks.last_seen.copy(), tracks.hits.copy()
        box[rows], score[rows], last_seen[rows] = det[matched], detections.score[matched], det[matched]
        hits[rows] += 1
        # An unmatched track whose prediction lies mostly inside a detection of this frame
        # (and overlaps it as a match would) is a duplicate (two detectors, or a split
        # box, on one face): that detection covers the face, so the track ends instead of
        # adding a carried box. Overlap alone is not enough: in a crowd, a missed face
        # overlaps its detected neighbour.
        duplicate = np.zeros(len(tracks), bool)
        if len(det) and (~hit).any():
            lost = predicted[~hit]
            i, j = meeting_pairs(lost, det)
            dup = (pair_iou(lost[i], det[j]) >= self.config.match_iou) & (covered_share(lost[i], det[j]) >= DUPLICATE_INSIDE)
            duplicate[np.flatnonzero(~hit)[i[dup]]] = True
        advanced = replace(tracks, box=box, velocity=velocity, missed=np.where(hit, 0, tracks.missed + 1), score=score,
                           last_seen=last_seen, hits=hits, age=tracks.age + 1)
        return advanced, duplicate

    def _start(self, tracks: _Tracks, detections: Faces, track_of_det: np.ndarray,
               by_distance: np.ndarray) -> tuple[_Tracks, np.ndarray]:
        """Start a track for every unmatched detection, and start a track matched
        ``by_distance`` over as a new face. Returns the table and each detection's row."""
        det, born = detections.xyxy, track_of_det < 0
        n_born = int(born.sum())
        # A birth lying mostly inside a live track is a split or duplicate of a known
        # face, not a face appearing: it owes no look-back. One that merely touches a
        # neighbour's box (a face entering beside another, common in crowds) does.
        known = np.zeros(n_born, bool)
        if n_born and len(tracks):
            i, j = meeting_pairs(det[born], tracks.box)
            known[i[covered_share(det[born][i], tracks.box[j]) >= 0.5]] = True
        new = det[born]
        # A new face most likely moves as the scene does (a camera pan moves every face):
        # predicted so, it is matched next frame even when it is small and the pan fast.
        started = _Tracks(ids=np.arange(self._next_id, self._next_id + n_born, dtype=np.int64), box=new,
                          velocity=scene_motion(self.scene, new), missed=np.zeros(n_born, np.int64),
                          score=detections.score[born], last_seen=new, hits=np.ones(n_born, np.int64),
                          age=np.zeros(n_born, np.int64), first_box=new, owes_lookback=~known, painted=new)
        self._next_id += n_born
        track_of_det = track_of_det.copy()
        track_of_det[born] = np.arange(len(tracks), len(tracks) + n_born)
        tracks = _Tracks.concat([tracks, started])
        # A match by distance may be a different face that appeared where one was lost:
        # it keeps the track (and its bridge) but also owes the look-back of a new face,
        # from this box, once seen again.
        rows = track_of_det[by_distance]
        tracks.owes_lookback[rows] = True
        tracks.first_box[rows] = det[by_distance]
        tracks.hits[rows] = 1
        tracks.age[rows] = 0
        tracks.painted[rows] = det[by_distance]
        return tracks, track_of_det

    def _confirm(self, tracks: _Tracks, track_of_det: np.ndarray) -> Births:
        """The faces whose look-back is due now, as :class:`Births`; ``tracks`` marks it paid."""
        # Look-back waits for a second detection: a one-frame false positive (common at
        # crowd-grade thresholds) would otherwise be painted over the frames before it.
        confirmed = tracks.owes_lookback & (tracks.hits >= self.config.confirm_hits)
        # A young face whose box outgrows the one its look-back was painted from (a face
        # sliding in from the frame edge is first seen as a sliver, then whole) is
        # painted back again from its new box, while its first frames are still buffered.
        seen_now = np.zeros(len(tracks), bool)
        seen_now[track_of_det] = True
        young = seen_now & ~tracks.owes_lookback & (tracks.age <= self.config.lookback_frames)
        if young.any():
            outgrown = _area(tracks.last_seen[young]) > OUTGROWN * _area(tracks.painted[young])
            confirmed[np.flatnonzero(young)[outgrown]] = True
        first, age, now = tracks.first_box[confirmed], tracks.age[confirmed], tracks.last_seen[confirmed]  # seen now
        velocity = np.where(age[:, None] > 0, (_centre(now) - _centre(first)) / np.maximum(age, 1)[:, None],
                            _centre(scene_motion(self.scene, now))).astype(np.float32)
        tracks.owes_lookback[confirmed] = False
        tracks.painted[confirmed] = now
        faces = Faces(first, tracks.score[confirmed], tracks.ids[confirmed], np.ones(len(first), bool))
        return Births(faces=faces, age=age, now_xyxy=now, velocity=velocity)

    def _carried(self, tracks: _Tracks, which: np.ndarray) -> Faces:
        """Boxes for the selected lost tracks: the union of where the face was last
        seen and where its motion predicts it, grown by the time unseen."""
        if not which.any():
            return Faces.empty()
        grow = 1.0 + self.config.growth_per_frame * np.maximum(tracks.missed[which], 1)
        xyxy = scale_about_centre(pair_hull(tracks.box[which], tracks.last_seen[which]), grow).astype(np.float32)
        return Faces(xyxy, tracks.score[which], tracks.ids[which], np.ones(int(which.sum()), bool))


def _refound(tracks: _Tracks, det: np.ndarray, track_of_det: np.ndarray) -> Gaps:
    """The tracks that ``det`` (D, 4) find again after frames unseen, before they advance."""
    d = np.flatnonzero(track_of_det >= 0)
    d = d[tracks.missed[track_of_det[d]] > 0]
    rows = track_of_det[d]
    return Gaps(before_xyxy=tracks.last_seen[rows], now_xyxy=det[d].astype(np.float32),
                frames=tracks.missed[rows] + 1, track_id=tracks.ids[rows])


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
    return scale_about_centre(box, 1.0 + growth_per_frame * np.minimum(gap - back, back)).astype(np.float32)


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
