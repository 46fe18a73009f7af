"""Manual regions: boxes a person adds (a face the detector missed) or marks as not a
face (a poster, a sign), each over a span of time, moving linearly between keyframes.

File format (``blurcam blur IN OUT --regions FILE.json``), schema version 1:

    {"schema": "blurcam-regions", "version": 1,
     "size": [width, height],            # optional: the picture the boxes were drawn on
     "regions": [
       {"id": "r1",                      # unique, non-empty string
        "kind": "face" | "not-a-face",   # default "face"
        "start": 1.0, "end": 3.5,        # optional: seconds; default first/last keyframe
        "keyframes": [{"t": 1.0, "box": [x1, y1, x2, y2]},
                      {"t": 3.5, "box": [x1, y1, x2, y2]}]}]}

Times are seconds from the first frame of the video (what a player shows). Boxes are
pixels of the picture as displayed (rotation applied), x2/y2 exclusive. Between two
keyframes a box moves linearly; before the first and after the last it stays where
that keyframe put it, within the region's span.

A "face" region is always redacted, on top of what the detector finds (and of
persistence: these boxes are added after tracking and never feed it). A "not-a-face"
region takes effect only when the caller asks for it (``apply_exclusions``): it
removes boxes whose centre lies inside it and whose detector score is under 0.5;
boxes the detector is at least 0.5 sure of, and manual face regions, always stay.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UsageError
from .types import Faces

SCHEMA = "blurcam-regions"
SCHEMA_VERSION = 1
KINDS = ("face", "not-a-face")
KEEP_SCORE = 0.5  # an exclusion never removes a box the detector is this sure of
REGION_TRACK_BASE = -1000  # Faces.track_id of region i's box: REGION_TRACK_BASE - i


class RegionsError(UsageError):
    """A regions file that cannot be read or breaks the schema (exit 2)."""


@dataclass(frozen=True)
class Regions:
    """Parsed regions as padded arrays (R regions, K keyframes at most, K >= 2).

    ids: (R,) names; face: (R,) bool, False for not-a-face; start_s, end_s: (R,) span
    in seconds from the first frame; key_t: (R, K) keyframe times, ascending, padded by
    repeating the last; key_xyxy: (R, K, 4) float32 display-pixel boxes, padded alike.
    size_wh: the picture the boxes were drawn on, if the file says.
    """

    ids: tuple[str, ...]
    face: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    key_t: np.ndarray
    key_xyxy: np.ndarray
    size_wh: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def boxes_at(self, t_s: float, slack_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Regions active at ``t_s`` seconds (span widened by ``slack_s`` each side) and
        their boxes there: (indices (M,) int, xyxy (M, 4) float32 display pixels)."""
        active = np.flatnonzero((self.start_s - slack_s <= t_s) & (t_s <= self.end_s + slack_s))
        if len(active) == 0:
            return active, np.zeros((0, 4), np.float32)
        kt, kb = self.key_t[active], self.key_xyxy[active]
        k = kt.shape[1]
        rows = np.arange(len(active))
        after = np.clip((kt <= t_s).sum(axis=1), 1, k - 1)  # index of the keyframe after t
        t0, t1 = kt[rows, after - 1], kt[rows, after]
        span = t1 - t0
        weight = np.where(span > 0, np.clip((t_s - t0) / np.where(span > 0, span, 1.0), 0.0, 1.0),
                          (t_s >= t1).astype(np.float64))
        b0, b1 = kb[rows, after - 1], kb[rows, after]
        return active, (b0 + weight[:, None].astype(np.float32) * (b1 - b0)).astype(np.float32)

    def to_json(self) -> dict:
        """The file form (version 1) of these regions."""
        out = []
        for i, rid in enumerate(self.ids):
            keys, last = [], None
            for t, box in zip(self.key_t[i].tolist(), self.key_xyxy[i].tolist()):
                if last is not None and t == last[0] and box == last[1]:
                    continue  # padding
                keys.append({"t": t, "box": [round(v, 2) for v in box]})
                last = (t, box)
            out.append({"id": rid, "kind": "face" if self.face[i] else "not-a-face",
                        "start": float(self.start_s[i]), "end": float(self.end_s[i]), "keyframes": keys})
        doc = {"schema": SCHEMA, "version": SCHEMA_VERSION, "regions": out}
        if self.size_wh is not None:
            doc["size"] = list(self.size_wh)
        return doc


def parse_regions(doc, where: str = "regions") -> Regions:
    """Validate a regions document (parsed JSON) and build :class:`Regions`; raises
    RegionsError with a one-line message naming ``where`` and the bad entry."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise RegionsError(f"{where}: not a blurcam regions file (expected \"schema\": \"{SCHEMA}\")")
    version = doc.get("version")
    if version != SCHEMA_VERSION:
        raise RegionsError(f"{where}: regions schema version {version!r} is not supported (this blurcam reads "
                           f"version {SCHEMA_VERSION})")
    size = doc.get("size")
    if size is not None and not (isinstance(size, list) and len(size) == 2
                                 and all(_is_int(v) and v > 0 for v in size)):
        raise RegionsError(f"{where}: \"size\" must be [width, height] in pixels, got {size!r}")
    entries = doc.get("regions")
    if not isinstance(entries, list):
        raise RegionsError(f"{where}: \"regions\" must be a list")
    ids, face, starts, ends, keys = [], [], [], [], []
    for n, entry in enumerate(entries):
        at = f"{where}: region {n + 1}"
        if not isinstance(entry, dict):
            raise RegionsError(f"{at}: must be an object")
        rid = entry.get("id")
        if not isinstance(rid, str) or not rid.strip():
            raise RegionsError(f"{at}: \"id\" must be a non-empty string")
        if rid in ids:
            raise RegionsError(f"{at}: id {rid!r} is used twice")
        at = f"{where}: region {rid!r}"
        kind = entry.get("kind", "face")
        if kind not in KINDS:
            raise RegionsError(f"{at}: \"kind\" must be one of {', '.join(KINDS)}, got {kind!r}")
        frames = entry.get("keyframes")
        if not isinstance(frames, list) or not frames:
            raise RegionsError(f"{at}: needs at least one keyframe")
        times, boxes = [], []
        for key in frames:
            if not isinstance(key, dict) or not _is_number(key.get("t")) or key["t"] < 0:
                raise RegionsError(f"{at}: each keyframe needs \"t\", seconds >= 0")
            box = key.get("box")
            if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
                raise RegionsError(f"{at}: keyframe at {key['t']} s: \"box\" must be [x1, y1, x2, y2]")
            if not (box[2] > box[0] and box[3] > box[1]):
                raise RegionsError(f"{at}: keyframe at {key['t']} s: box {box} is empty (x2 <= x1 or y2 <= y1)")
            times.append(float(key["t"]))
            boxes.append([float(v) for v in box])
        if len(set(times)) != len(times):
            raise RegionsError(f"{at}: two keyframes at the same time")
        order = np.argsort(times)
        times, boxes = [times[i] for i in order], [boxes[i] for i in order]
        start, end = entry.get("start", times[0]), entry.get("end", times[-1])
        if not (_is_number(start) and _is_number(end)) or start < 0 or end < start:
            raise RegionsError(f"{at}: needs 0 <= start <= end (seconds), got {start!r}..{end!r}")
        ids.append(rid)
        face.append(kind == "face")
        starts.append(float(start))
        ends.append(float(end))
        keys.append((times, boxes))
    k = max([2] + [len(t) for t, _ in keys])
    key_t = np.zeros((len(keys), k), np.float64)
    key_xyxy = np.zeros((len(keys), k, 4), np.float32)
    for i, (times, boxes) in enumerate(keys):
        pad = k - len(times)
        key_t[i] = times + [times[-1]] * pad
        key_xyxy[i] = boxes + [boxes[-1]] * pad
    return Regions(tuple(ids), np.array(face, bool), np.array(starts), np.array(ends), key_t, key_xyxy,
                   tuple(size) if size is not None else None)


def load_regions(path: str | Path) -> Regions:
    """Read and validate a regions file; RegionsError (exit 2) if it is missing or bad."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegionsError(f"{path}: no such regions file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegionsError(f"{path}: cannot read the regions file: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegionsError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return parse_regions(doc, str(path))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class RegionTally:
    """What regions did in one run: frames each region was applied to (first, last,
    count) and every box an exclusion removed. Filled by :class:`RegionPass`."""

    applied: dict[str, list[int]] = field(default_factory=dict)  # id -> [first, last, frames]
    excluded: list[dict] = field(default_factory=list)

    def to_json(self, regions: Regions, apply_exclusions: bool) -> dict:
        listed = []
        for i, rid in enumerate(regions.ids):
            first, last, count = self.applied.get(rid, [None, None, 0])
            listed.append({"id": rid, "kind": "face" if regions.face[i] else "not-a-face",
                           "start": float(regions.start_s[i]), "end": float(regions.end_s[i]),
                           "applied": bool(count) and (bool(regions.face[i]) or apply_exclusions),
                           "frames": count, "first_frame": first, "last_frame": last})
        return {"schema_version": SCHEMA_VERSION, "apply_exclusions": apply_exclusions,
                "regions": listed, "excluded_boxes": self.excluded}


class RegionPass:
    """Adds a run's manual regions to each frame's boxes, just before redaction.

    Call :meth:`apply` once per frame, in order, with the frame's final boxes
    (detections, carried and look-back ones). Times are taken from the first frame
    seen; ``slack_s`` (about half a frame; None until the video job sets it) widens
    each span so a span drawn on a paused player, between two frames' timestamps,
    still covers both ends."""

    def __init__(self, regions: Regions, *, apply_exclusions: bool = False, slack_s: float | None = 1 / 120) -> None:
        self.regions, self.apply_exclusions, self.slack_s = regions, apply_exclusions, slack_s
        self.tally = RegionTally()
        self._origin_s: float | None = None

    def apply(self, frame, faces: Faces) -> Faces:
        """``faces`` of ``frame`` (a types.Frame) with exclusions and regions applied."""
        from .view import boxes_to_stored, quarter_turns

        t = frame.time_s()
        if self._origin_s is None:
            self._origin_s = t
        active, xyxy = self.regions.boxes_at(t - self._origin_s, self.slack_s or 0.0)
        if len(active) == 0:
            return faces
        k = quarter_turns(frame.rotation_deg)
        wh = (frame.width, frame.height)
        display_wh = wh if k % 2 == 0 else wh[::-1]
        if self.regions.size_wh is not None and self.regions.size_wh != display_wh:  # drawn at another size
            sw, sh = self.regions.size_wh
            xyxy = xyxy * np.array([display_wh[0] / sw, display_wh[1] / sh] * 2, np.float32)
        xyxy = np.clip(boxes_to_stored(xyxy, k, wh), 0, [wh[0], wh[1], wh[0], wh[1]]).astype(np.float32)
        is_face = self.regions.face[active]
        if self.apply_exclusions and (~is_face).any() and len(faces):
            faces = self._exclude(frame.index, faces, active[~is_face], xyxy[~is_face])
        for i in active if self.apply_exclusions else active[is_face]:
            self._count(self.regions.ids[i], frame.index)
        added = Faces(xyxy[is_face], np.ones(int(is_face.sum()), np.float32),
                      (REGION_TRACK_BASE - active[is_face]).astype(np.int64), np.zeros(int(is_face.sum()), bool))
        return Faces.concat([faces, added])

    def _exclude(self, index: int, faces: Faces, which: np.ndarray, xyxy: np.ndarray) -> Faces:
        cx = (faces.xyxy[:, 0] + faces.xyxy[:, 2]) / 2
        cy = (faces.xyxy[:, 1] + faces.xyxy[:, 3]) / 2
        inside = ((xyxy[None, :, 0] <= cx[:, None]) & (cx[:, None] < xyxy[None, :, 2])
                  & (xyxy[None, :, 1] <= cy[:, None]) & (cy[:, None] < xyxy[None, :, 3]))  # (N, E)
        drop = inside.any(axis=1) & (faces.score < KEEP_SCORE) & (faces.track_id > REGION_TRACK_BASE)
        for n in np.flatnonzero(drop):
            rid = self.regions.ids[which[int(np.argmax(inside[n]))]]
            self.tally.excluded.append({"frame": index, "region": rid,
                                        "box": [round(v, 1) for v in faces.xyxy[n].tolist()],
                                        "score": round(float(faces.score[n]), 3)})
        return faces[~drop]

    def _count(self, rid: str, index: int) -> None:
        entry = self.tally.applied.setdefault(rid, [index, index, 0])
        entry[1], entry[2] = index, entry[2] + 1
