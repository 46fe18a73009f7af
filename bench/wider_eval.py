"""Redaction-coverage evaluator for WIDER FACE style ground truth (pure numpy).

The metric is the one defined in shared/data/wider-dev/README.md, so numbers compare
across tools:

* each redaction box is scaled by 1.3 about its centre and the union of the boxes is
  rasterised as a mask of the image size (floor the start, ceil the end: every pixel
  a box touches, as blurcam's redaction does);
* a valid ground-truth face (invalid == 0, w >= 1, h >= 1) is covered when at least
  80% of its box pixels lie in the mask;
* report the covered share of all valid faces, of the official ``easy`` split, per
  face-height bucket, and the mean share of image area masked (over-redaction cost).

Two ground-truth formats load into the same :class:`ImageTruth` list:
``gt.json`` (the wider-dev folder) and the official ``wider_face_val_bbx_gt.txt``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blurcam.boxes import clip_to_pixels, scale_about_centre

BOX_SCALE = 1.3  # README: detector boxes grown 1.3x about their centre before masking
COVERED_SHARE = 0.8  # README: a face counts as covered at >= 80% of its pixels masked
# (label, lowest height, first height past the bucket) in GT pixels.
HEIGHT_BUCKETS = (("h<16", 0, 16), ("16-31", 16, 32), ("32-63", 32, 64), (">=64", 64, math.inf))


@dataclass(frozen=True)
class ImageTruth:
    """Ground truth of one image.

    name: path of the image relative to the images folder, "<category>/<file>.jpg".
    xywh: (N, 4) float32 GT boxes, pixel top-left corner, width and height.
    invalid: (N,) bool, True where the annotators flagged the box (never scored).
    easy: (N,) bool membership in the official easy split, or None when the source
        does not say (the official txt file carries no split membership).
    """

    name: str
    xywh: np.ndarray
    invalid: np.ndarray
    easy: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        """(N,) bool: the faces the metric scores (invalid == 0, w >= 1, h >= 1)."""
        return ~self.invalid & (self.xywh[:, 2] >= 1) & (self.xywh[:, 3] >= 1)


@dataclass(frozen=True)
class ImageScore:
    """One image's result: per valid GT face, whether it was covered.

    covered: (M,) bool for the M valid faces, in GT order.
    height_px: (M,) float32 GT heights, for bucketing.
    easy: (M,) bool, or None when the ground truth has no split membership.
    area_masked: share of the image's pixels inside the redaction mask, in [0, 1].
    """

    covered: np.ndarray
    height_px: np.ndarray
    easy: np.ndarray | None
    area_masked: float


def load_gt_json(path: str | Path) -> list[ImageTruth]:
    """Read wider-dev's ``gt.json``: {name: [[x, y, w, h, blur, invalid, occlusion, pose,
    expression, illumination, in_easy, in_medium, in_hard], ...]}. Sorted by name."""
    data = json.loads(Path(path).read_text())
    out = []
    for name in sorted(data):
        rows = np.asarray(data[name], np.float64).reshape(-1, 13)
        out.append(ImageTruth(name, rows[:, :4].astype(np.float32), rows[:, 5] != 0, rows[:, 10] != 0))
    return out


def load_wider_txt(path: str | Path) -> list[ImageTruth]:
    """Read the official ``wider_face_*_bbx_gt.txt``. Sorted by name.

    Each record is a file name, a face count, then one line per face:
    x1 y1 w h blur expression illumination invalid occlusion pose. A count of 0 is
    followed by one all-zero placeholder line, which is not a face.
    """
    lines = [line.strip() for line in Path(path).read_text().splitlines()]
    out, i = [], 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        name, count = lines[i], int(lines[i + 1])
        rows_text = lines[i + 2:i + 2 + max(count, 1)]
        i += 2 + max(count, 1)
        rows = np.asarray([r.split()[:10] for r in rows_text[:count]], np.float64).reshape(-1, 10)
        out.append(ImageTruth(name, rows[:, :4].astype(np.float32), rows[:, 7] != 0, None))
    out.sort(key=lambda t: t.name)
    return out


def find_dataset(root: str | Path) -> tuple[list[ImageTruth], Path]:
    """Ground truth and images folder of a WIDER-format folder.

    Accepts the wider-dev layout (``gt.json`` + ``images/``) and the official one
    (``wider_face_split/wider_face_val_bbx_gt.txt`` + ``WIDER_val/images/``), or any
    folder holding a ``*_bbx_gt.txt`` and an ``images`` folder somewhere below it.
    """
    root = Path(root)
    if (root / "gt.json").is_file():
        return load_gt_json(root / "gt.json"), root / "images"
    txts = sorted(root.rglob("wider_face_val_bbx_gt.txt")) or sorted(root.rglob("*_bbx_gt.txt"))
    if not txts:
        raise FileNotFoundError(f"no gt.json or *_bbx_gt.txt under {root}")
    images = [p for p in (root / "WIDER_val" / "images", root / "images") if p.is_dir()]
    images = images or sorted(p for p in root.rglob("images") if p.is_dir())
    if not images:
        raise FileNotFoundError(f"no images folder under {root}")
    return load_wider_txt(txts[0]), images[0]


def redaction_mask(xyxy: np.ndarray, resolution_wh: tuple[int, int], scale: float = BOX_SCALE) -> np.ndarray:
    """(H, W) bool union of (N, 4) pixel xyxy boxes, each grown ``scale`` about its centre.

    Safe on N = 0 (all False). Boxes are clipped to the image.
    """
    width, height = resolution_wh
    mask = np.zeros((height, width), bool)
    bounds = clip_to_pixels(scale_about_centre(xyxy, scale), resolution_wh)
    for x1, y1, x2, y2 in bounds:  # one slice assignment per box
        mask[y1:y2, x1:x2] = True
    return mask


def covered_faces(mask: np.ndarray, xywh: np.ndarray, share: float = COVERED_SHARE) -> np.ndarray:
    """(N,) bool: does ``mask`` hold at least ``share`` of each GT box's pixels?

    mask: (H, W) bool. xywh: (N, 4) pixel boxes; the pixels counted are those of the
    box inside the image (a face half out of frame is judged on its visible half).
    A box with no pixel inside the image is never covered.
    """
    xywh = np.asarray(xywh, np.float32).reshape(-1, 4)
    height, width = mask.shape
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    x1, y1, x2, y2 = clip_to_pixels(xyxy, (width, height)).T.astype(np.int64)
    # Summed-area table: one O(1) lookup per face, however big the box.
    sat = np.zeros((height + 1, width + 1), np.int64)
    sat[1:, 1:] = mask.cumsum(0, dtype=np.int64).cumsum(1)
    inside = sat[y2, x2] - sat[y1, x2] - sat[y2, x1] + sat[y1, x1]
    area = (x2 - x1) * (y2 - y1)
    if share == COVERED_SHARE:
        # Exact integer test, so a face at exactly 80% is covered (no float rounding).
        return (area > 0) & (5 * inside >= 4 * area)
    return (area > 0) & (inside >= share * area)


def score_image(truth: ImageTruth, det_xyxy: np.ndarray, resolution_wh: tuple[int, int]) -> ImageScore:
    """Score one image's redaction boxes (N, 4) pixel xyxy, before the 1.3 scaling."""
    mask = redaction_mask(det_xyxy, resolution_wh)
    valid = truth.valid
    return ImageScore(
        covered=covered_faces(mask, truth.xywh[valid]),
        height_px=truth.xywh[valid, 3].astype(np.float32),
        easy=None if truth.easy is None else truth.easy[valid],
        area_masked=float(mask.mean()) if mask.size else 0.0,
    )


def _share(covered: np.ndarray) -> float | None:
    return float(covered.mean()) if len(covered) else None


def summarise(scores: list[ImageScore]) -> dict:
    """Aggregate per-image scores into the README's report.

    Returns {"images", "faces", "all", "easy", "h<16", "16-31", "32-63", ">=64",
    "area_masked"}: shares in [0, 1], None where a group has no face (or, for
    "easy", where the ground truth has no split membership).
    """
    if not scores:
        return {"images": 0, "faces": 0, "all": None, "easy": None,
                **{label: None for label, _, _ in HEIGHT_BUCKETS}, "area_masked": None}
    covered = np.concatenate([s.covered for s in scores])
    height = np.concatenate([s.height_px for s in scores])
    report = {"images": len(scores), "faces": int(len(covered)), "all": _share(covered)}
    if any(s.easy is None for s in scores):
        report["easy"] = None
    else:
        report["easy"] = _share(covered[np.concatenate([s.easy for s in scores])])
    for label, low, high in HEIGHT_BUCKETS:
        report[label] = _share(covered[(height >= low) & (height < high)])
    report["area_masked"] = float(np.mean([s.area_masked for s in scores]))
    return report
