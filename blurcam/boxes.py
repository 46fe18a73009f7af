"""Vectorised box maths on (N, 4) float arrays in pixel xyxy. Safe on N = 0."""
from __future__ import annotations

import numpy as np


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """(N, 4) x, y, w, h -> (N, 4) x1, y1, x2, y2 as float32."""
    xywh = np.asarray(xywh, np.float32).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def pad_boxes(xyxy: np.ndarray, scale: float = 1.5, extra_top: float = 0.15) -> np.ndarray:
    """Grow boxes about their centre by ``scale``, then raise the top by ``extra_top``
    of the original height (hair and forehead sit above detector boxes).

    Returns a new (N, 4) float32 array; scale 1 and extra_top 0 is the identity.
    """
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) * (scale / 2)
    out = np.concatenate([centre - half, centre + half], axis=1)
    out[:, 1] -= (xyxy[:, 3] - xyxy[:, 1]) * extra_top
    return out


def clip_to_pixels(xyxy: np.ndarray, resolution_wh: tuple[int, int]) -> np.ndarray:
    """Round boxes outward (floor the start, ceil the end) and clip to the whole frame.

    The result is (N, 4) int32 slice bounds: ``image[y1:y2, x1:x2]`` covers every pixel
    the float box touches, up to and including the last row and column of the frame.
    Boxes entirely outside the frame come back empty (x1 == x2 or y1 == y2).
    """
    w, h = resolution_wh
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    out = np.empty(xyxy.shape, np.int32)
    out[:, :2] = np.floor(xyxy[:, :2])
    out[:, 2:] = np.ceil(xyxy[:, 2:])
    out[:, 0] = np.clip(out[:, 0], 0, w)
    out[:, 2] = np.clip(out[:, 2], 0, w)
    out[:, 1] = np.clip(out[:, 1], 0, h)
    out[:, 3] = np.clip(out[:, 3], 0, h)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4), (M, 4) -> (N, M) intersection over union."""
    a = np.asarray(a, np.float32).reshape(-1, 1, 4)
    b = np.asarray(b, np.float32).reshape(1, -1, 4)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def scale_about_centre(xyxy: np.ndarray, scale: float) -> np.ndarray:
    """Grow (N, 4) boxes by ``scale`` about their centres."""
    return pad_boxes(xyxy, scale, 0.0)
