"""How much of a face's fine detail survives in a redacted image.

Eyes, mouth and nose live in a band of spatial frequencies set by the face's size.
Band-pass both images at that scale (a difference of Gaussians with sigma h/32 and
3h/32 for a face h px high) inside the face box, then project the output's band onto
the input's: the share of the input's band energy that the output still carries.
H.264 at crf 18-23 keeps about 0.9 of it; blurcam's cell means plus noise keep about
0 (the noise is independent of the input, so it projects to nothing on average).
This is the measure ../shared/tools/leakcheck.py uses; blurcam verify uses this
implementation of it. The tests keep their own copy on purpose (tests/leak.py: an
oracle that does not share the code it checks); tests/test_mechanisms.py checks that
the two give the same numbers. They differ only in when they abstain: this one returns
None under about 0.5 grey level of band contrast per pixel (verify does not report a
finding on a region with nothing to measure), the tests' copy measures down to nearly
flat regions, so that no test passes because its face was too plain to be measured.
"""
from __future__ import annotations

import cv2
import numpy as np


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 luma."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def detail_kept(original_gray: np.ndarray, redacted_gray: np.ndarray, face_xyxy, inner: float = 0.8) -> float | None:
    """Share of the feature-scale detail of ``original_gray`` inside the face box (its
    central ``inner`` share of width and height, clipped to the image) that
    ``redacted_gray`` still carries. The band's scale is set by the whole box's height.

    Both (H, W) float32, same size; ``face_xyxy``: x1, y1, x2, y2 in pixels. Returns
    about 1 for an untouched face, about 0 for a destroyed one, and None when the box
    is too small (under 4 px inside) or holds no detail to measure (a flat region).
    """
    measured = detail_measure(original_gray, redacted_gray, face_xyxy, inner)
    return None if measured is None else measured[0]


def detail_measure(original_gray: np.ndarray, redacted_gray: np.ndarray, face_xyxy,
                   inner: float = 0.8) -> tuple[float, float] | None:
    """(kept, aligned) for the face box, as :func:`detail_kept` measures it: ``kept`` is
    the share of the original's band-passed detail the redacted image carries (the
    projection), ``aligned`` the cosine between the two bands (-1 to 1). A face left as
    it was, compressed, gives about (0.9, 0.9); hard block edges laid over a coarse
    outline (one redacted region meeting another) can project strongly onto the
    original while most of their own band is not the original's: ``aligned`` stays low."""
    x1, y1, x2, y2 = (float(v) for v in face_xyxy[:4])
    w, h = x2 - x1, y2 - y1
    height, width = original_gray.shape[:2]
    # rounded: (1 - 0.8) / 2 is 0.0999..., which moved the crop a pixel in on boxes
    # whose 10 % falls on a whole pixel (a 50 px wide box at x=0 started at 4, not 5)
    margin = round((1.0 - inner) / 2, 9)
    ix1, iy1 = max(0, int(x1 + margin * w)), max(0, int(y1 + margin * h))
    ix2, iy2 = min(width, int(np.ceil(x2 - margin * w))), min(height, int(np.ceil(y2 - margin * h)))
    if ix2 - ix1 < 4 or iy2 - iy1 < 4:
        return None
    sigma = max(0.8, h / 32)
    a = original_gray[iy1:iy2, ix1:ix2]
    b = redacted_gray[iy1:iy2, ix1:ix2]
    band_a = cv2.GaussianBlur(a, (0, 0), sigma) - cv2.GaussianBlur(a, (0, 0), 3 * sigma)
    band_b = cv2.GaussianBlur(b, (0, 0), sigma) - cv2.GaussianBlur(b, (0, 0), 3 * sigma)
    energy = float((band_a * band_a).sum())
    # under ~0.5 grey level of band-passed contrast per pixel there is no face detail to keep
    if energy < 0.25 * band_a.size:
        return None
    shared = float((band_a * band_b).sum())
    energy_b = float((band_b * band_b).sum())
    return shared / energy, shared / max(np.sqrt(energy * energy_b), 1e-9)
