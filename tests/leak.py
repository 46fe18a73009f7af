"""Does a redacted image still carry the input's facial-feature detail?

The same measure as ../shared/tools/leakcheck.py, written for the tests: band-pass
both images at the scale of eyes and mouth (difference of Gaussians, sigma h/32 and
3h/32 for a face h px high), then ask what share of the input's band-passed energy
projects onto the output. Compression keeps ~90 %; smoothed cell means keep ~0.

blurcam.detail implements the same measure for ``blurcam verify``. This copy is kept
apart on purpose: the tests' leak oracle must not be the code it checks (a bug there
would pass every privacy test). test_mechanisms.py checks that the two agree. The one
difference is deliberate: this copy abstains (None) only on a flat region (band energy
under 1e-3), the library under about 0.5 grey level per pixel, so a plain face is still
measured here.
"""
from __future__ import annotations

import cv2
import numpy as np


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def detail_kept(original: np.ndarray, redacted: np.ndarray, face_xyxy) -> float | None:
    """Share of the input's feature-scale detail inside the face box (inner 80 %) that
    survives in ``redacted``; None when the box holds no detail to measure."""
    x1, y1, x2, y2 = (float(v) for v in face_xyxy[:4])
    w, h = x2 - x1, y2 - y1
    height, width = original.shape[:2]
    # clipped to the image: a box partly outside it must not wrap to the other side
    ix1, iy1 = max(0, int(x1 + 0.1 * w)), max(0, int(y1 + 0.1 * h))
    ix2, iy2 = min(width, int(np.ceil(x2 - 0.1 * w))), min(height, int(np.ceil(y2 - 0.1 * h)))
    if ix2 - ix1 < 4 or iy2 - iy1 < 4:
        return None
    a = _gray(original[iy1:iy2, ix1:ix2])
    b = _gray(redacted[iy1:iy2, ix1:ix2])
    s1 = max(0.8, h / 32)

    def band(z):
        return cv2.GaussianBlur(z, (0, 0), s1) - cv2.GaussianBlur(z, (0, 0), 3 * s1)

    la, lb = band(a), band(b)
    energy = float((la * la).sum())
    if energy < 1e-3:
        return None
    return float((la * lb).sum() / energy)


def background_psnr(original: np.ndarray, redacted: np.ndarray, face_boxes, margin: float = 1.0) -> float:
    """PSNR (dB) between the images outside every face box grown by ``margin`` of its size."""
    keep = np.ones(original.shape[:2], bool)
    for x1, y1, x2, y2 in np.asarray(face_boxes).reshape(-1, 4)[:, :4]:
        w, h = x2 - x1, y2 - y1
        keep[max(0, int(y1 - margin * h)):int(y2 + margin * h), max(0, int(x1 - margin * w)):int(x2 + margin * w)] = False
    diff = original[keep].astype(np.float32) - redacted[keep].astype(np.float32)
    mse = float((diff * diff).mean()) if diff.size else 0.0
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def match_input(clip, image: np.ndarray) -> int:
    """Index of the input frame an output frame shows (frames may be dropped)."""
    small = cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32)
    diffs = [np.abs(cv2.resize(f, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32) - small).mean()
             for f in clip.frames]
    return int(np.argmin(diffs))


def assert_no_face_leaks(clip, images: list[np.ndarray]) -> None:
    """Every face of the input frame each image shows (``clip``: frames and exact boxes)
    keeps under 40 % of its feature detail; images may be a subset (dropped frames)."""
    assert images, "no frame arrived"
    for image in images:
        i = match_input(clip, image)
        for box in clip.boxes[i]:
            kept = detail_kept(clip.frames[i], image, box)
            assert kept is None or kept < 0.4, f"input frame {i}: face {box.round()} keeps {kept:.2f}"
