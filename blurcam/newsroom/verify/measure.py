"""Measuring one frame pair: where INPUT shows faces, and how much of each OUTPUT keeps.

Faces are found in INPUT only: a face OUTPUT leaks is INPUT's face at INPUT's place, and
every face is judged against INPUT's pixels anyway. One CenterFace pass, at the scale
where the smallest face verify judges (``min_face_px``) is still ``detect_px`` high in
the network input: verify needs no smaller faces, so it pays for no larger image.

Each face is judged in its inner box (the central ``inner`` share of its width and
height: eyes, nose, mouth), the part every redaction must cover, so hair, chin, neck
and background beside a redacted region, and the block edges where regions meet, are
not read as facial detail. The measure is :func:`blurcam.detail.detail_measure`: the
referee's (``../shared/tools/leakcheck.py``), the share of INPUT's band-passed detail
that OUTPUT still carries there, and how alike the two bands are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class VerifyConfig:
    """threshold: CenterFace score from which a box is a candidate face.
    residual_score: score from which a candidate that keeps its detail is a residual
        face (exit 22); below it, down to ``threshold``, it is listed as doubtful
        (``strict`` fails on those too). Calibrated by bench/verify_calibration.py: on
        crowds, textures (clothing, flags, signs) kept by a clean redaction score up to
        ~0.2 when 24-40 px high but rarely over 0.15 at 48 px and more, while faces
        another tool missed score 0.05-0.3; so faces at least ``large_face_px`` high
        count from ``large_residual_score``.
    A box cut by the frame's edge (a face entering or leaving) is doubtful at most: too
    little of it is inside to tell a face from a texture (the referee does not score
    faces under 60 % inside either); the summary says so.
    detail_limit: share of a face's feature-scale detail (0-1) allowed to survive in
        OUTPUT; the referee's limit is 0.5 (compression keeps ~0.9, redaction ~0).
    min_aligned: and OUTPUT's band must look like INPUT's (cosine over this): the hard
        edges where redacted regions meet, laid over a coarse outline, project onto INPUT
        but are mostly not its detail (:func:`blurcam.detail.detail_measure`).
    min_face_px: faces less high than this (frame pixels) are not judged, only counted
        (those the detector finds at this scale): the summary says so. The referee's frame count starts at 24 px too.
    detect_px: network-input height of a ``min_face_px`` face (sets the detector's scale).
    inner: the share of a face box's width and height that is judged.
    every: check every k-th frame (1: all); None: match the blur's cost (see run.py).
    strict: every box that keeps its detail is residual (doubtful ones too).
    sheet_samples / max_residual_tiles: sheet tiles besides / of residual frames."""

    threshold: float = 0.1
    residual_score: float = 0.2
    large_face_px: int = 48
    large_residual_score: float = 0.15
    detail_limit: float = 0.5
    min_aligned: float = 0.6
    min_face_px: int = 24
    detect_px: int = 16
    inner: float = 0.6
    every: int | None = None
    strict: bool = False
    sheet_samples: int = 12
    max_residual_tiles: int = 120

    def __post_init__(self) -> None:
        if self.every is not None and self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if not 0.0 < self.detail_limit < 1.0:
            raise ValueError(f"detail_limit must be in (0, 1), got {self.detail_limit}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.min_face_px < 8:
            raise ValueError(f"min_face_px must be >= 8, got {self.min_face_px}")
        if not 0.2 <= self.inner <= 1.0:
            raise ValueError(f"inner must be in [0.2, 1], got {self.inner}")

    def detect_scale(self, width: int, height: int) -> float:
        """Network pixels per frame pixel: ``min_face_px`` -> ``detect_px``, never enlarged
        beyond the frame, nor shrunk below a 320 px long side."""
        return float(min(1.0, max(self.detect_px / self.min_face_px, 320 / max(width, height))))


@dataclass
class Finding:
    """One face looked at. box: x1, y1, x2, y2 in stored-frame pixels; score: the
    detector's confidence; detail: share of INPUT's detail kept in OUTPUT inside the inner
    box (None: nothing to measure there). residual: detail over the limit on a box scored
    at least ``residual_score``; doubtful: detail over the limit on a lower-scored box."""

    frame: int
    time_s: float | None
    box: list[float]
    score: float
    detail: float | None
    residual: bool
    doubtful: bool = False


@dataclass(frozen=True)
class PairMeasure:
    """What one checked pair gave: the faces judged, how many were too small to judge,
    and the share of the low-resolution picture alike (a redaction keeps most of it)."""

    faces: list[Finding]
    too_small: int
    alike: float


def judge(heights: np.ndarray, scores: np.ndarray, details: np.ndarray, aligned: np.ndarray,
          at_edge: np.ndarray, config: VerifyConfig) -> tuple[np.ndarray, np.ndarray]:
    """(residual, doubtful) bool arrays (N,) for faces of ``heights`` px (N,) with
    detector ``scores`` (N,) that keep ``details`` (N,) of INPUT's detail with bands
    ``aligned`` (N,) (NaN: nothing to measure); ``at_edge`` (N,): the box touches the
    frame's border."""
    leaked = ((np.nan_to_num(details, nan=0.0) > config.detail_limit)
              & (np.nan_to_num(aligned, nan=0.0) > config.min_aligned))
    if config.strict:  # every box that keeps its detail fails the check
        return leaked, np.zeros_like(leaked)
    needed = np.where(heights >= config.large_face_px, config.large_residual_score, config.residual_score)
    sure = (scores >= needed) & ~at_edge
    return leaked & sure, leaked & ~sure


def touches_edge(boxes: np.ndarray, size_wh: tuple[int, int], margin_px: float = 2.0) -> np.ndarray:
    """(N,) bool: the (N, 4) xyxy box reaches within ``margin_px`` of the image border."""
    w, h = size_wh
    return ((boxes[:, 0] <= margin_px) | (boxes[:, 1] <= margin_px)
            | (boxes[:, 2] >= w - margin_px) | (boxes[:, 3] >= h - margin_px))


class FaceFinder:
    """INPUT's faces for verify: one CenterFace pass at ``config.detect_scale``.

    ``find(rgb, k)``: rgb (H, W, 3) uint8 as stored, k quarter turns to show it upright;
    returns boxes (N, 4) float32 stored-frame pixels and scores (N,). Call ``close``."""

    def __init__(self, config: VerifyConfig) -> None:
        self.config = config
        self._by_scale: dict[float, object] = {}

    def _detector(self, scale: float):
        from ...detect.centerface import CenterFaceDetector

        if scale not in self._by_scale:
            # box_scale 0.93: CenterFace's boxes to the forehead-to-chin convention of
            # WIDER's (and the referee's) boxes, so face heights compare.
            self._by_scale[scale] = CenterFaceDetector(threshold=self.config.threshold, input_scale=scale,
                                                       box_scale=0.93)
        return self._by_scale[scale]

    def find(self, rgb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from ...view import boxes_to_stored

        upright = np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb
        h, w = upright.shape[:2]
        faces = self._detector(self.config.detect_scale(w, h)).detect(upright, 0)
        return boxes_to_stored(faces.xyxy, k, (rgb.shape[1], rgb.shape[0])), faces.score

    def close(self) -> None:
        for d in self._by_scale.values():
            d.close()


def measure_pair(gray_in: np.ndarray, gray_out: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                 config: VerifyConfig, frame: int, time_s: float | None) -> PairMeasure:
    """Judge every face ``boxes`` (N, 4) (scores (N,)) of INPUT in OUTPUT; both images
    (H, W) float32 luma of the same size. Faces under ``min_face_px`` are only counted."""
    import cv2

    from ...detail import detail_measure

    boxes = boxes.reshape(-1, 4)
    heights = boxes[:, 3] - boxes[:, 1]
    judged = heights >= config.min_face_px
    boxes, scores, heights = boxes[judged], scores[judged], heights[judged]
    measured = [detail_measure(gray_in, gray_out, box, inner=config.inner) for box in boxes]  # C calls per face
    details = np.array([np.nan if m is None else m[0] for m in measured], np.float64)
    aligned = np.array([np.nan if m is None else m[1] for m in measured], np.float64)
    residual, doubtful = judge(heights, scores, details, aligned, touches_edge(boxes, gray_in.shape[::-1]), config)
    faces = [Finding(frame, time_s, [round(float(v), 1) for v in box], round(float(score), 3),
                     None if np.isnan(k) else round(float(k), 3), bool(r), bool(d))
             for box, score, k, r, d in zip(boxes, scores, details, residual, doubtful)]
    small = (32, 18)
    a = cv2.resize(gray_in, small, interpolation=cv2.INTER_AREA)
    b = cv2.resize(gray_out, small, interpolation=cv2.INTER_AREA)
    return PairMeasure(faces, int((~judged).sum()), float((np.abs(a - b) < 16).mean()))
