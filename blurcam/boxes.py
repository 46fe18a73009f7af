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
    out = scale_about_centre(xyxy, scale)
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


def scale_about_centre(xyxy: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    """Grow (N, 4) boxes about their centres by ``scale``: one number for every box,
    or (N,) one per box. Returns a new (N, 4) array: float32, or float64 when ``scale``
    is a float64 array or numpy scalar (a caller wanting float32 then rounds once)."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    if np.ndim(scale):
        scale = np.asarray(scale).reshape(-1, 1)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) / 2 * scale
    return np.concatenate([centre - half, centre + half], axis=1)


def pair_hull(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4), (N, 4) -> (N, 4): the smallest box holding both boxes, row by row."""
    return np.concatenate([np.minimum(a[:, :2], b[:, :2]), np.maximum(a[:, 2:], b[:, 2:])], axis=1)


def pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, 4), (P, 4) -> (P,) intersection over union row by row: the same float32
    sums as :func:`box_iou`, for pairs found by :func:`meeting_pairs`."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def meeting_pairs(a: np.ndarray, b: np.ndarray, cell: float | None = None,
                  exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of boxes ``a[i]``, ``b[j]`` ((N, 4), (M, 4) xyxy, any numeric type)
    whose closed extents meet (``a.x1 <= b.x2`` and ``b.x1 <= a.x2``, the same in y),
    each once: (i, j) int64 arrays of P pairs, in no set order. Any pair with a
    positive intersection is among them; a box of zero size (a point) meets the boxes
    that hold it. Boxes with a non-finite or inverted side meet nothing.

    Cost O(N + M + pairs in shared cells), not O(N * M): both sets are entered in a
    grid of ``cell`` px (default: the median box side, at least 8), joined cell by
    cell, and a pair is kept only in the cell holding the top-left corner of where
    the two meet (it lies in both, so each pair is found exactly once).
    ``exact=False`` skips the last test: pairs that share a cell come back too (a
    superset, still each pair once), for a caller whose own test is stricter.
    """
    a = np.asarray(a).reshape(-1, 4)
    b = np.asarray(b).reshape(-1, 4)
    ok_a = np.isfinite(a).all(axis=1) & (a[:, 2] >= a[:, 0]) & (a[:, 3] >= a[:, 1])
    ok_b = np.isfinite(b).all(axis=1) & (b[:, 2] >= b[:, 0]) & (b[:, 3] >= b[:, 1])
    ia, ib = np.flatnonzero(ok_a), np.flatnonzero(ok_b)
    if not len(ia) or not len(ib):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = np.ascontiguousarray(a[ia].T).T, np.ascontiguousarray(b[ib].T).T  # columns contiguous
    both = np.concatenate([a, b]).astype(np.float64)
    origin = both[:, :2].min(axis=0)
    if cell is None:
        cell = float(np.median((both[:, 2:] - both[:, :2]).max(axis=1)))
    cell = max(float(cell), 8.0)
    # Huge boxes (or a few far apart) would enter too many cells: widen the cell until
    # the grid holds a few entries per box.
    budget = 16 * len(both) + 4096
    while True:
        lo = np.floor((both[:, :2] - origin) / cell).astype(np.int64)
        hi = np.floor((both[:, 2:] - origin) / cell).astype(np.int64)
        span = hi - lo + 1
        if int((span[:, 0] * span[:, 1]).sum()) <= budget:
            break
        cell *= 2
    cols = int(hi[:, 0].max()) + 1

    def entries(lo: np.ndarray, span: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = span[:, 0] * span[:, 1]
        box = np.repeat(np.arange(len(lo)), count)
        local = np.arange(len(box)) - np.repeat(np.cumsum(count) - count, count)
        nx = span[box, 0]
        return (lo[box, 1] + local // nx) * cols + lo[box, 0] + local % nx, box

    cell_a, box_a = entries(lo[:len(a)], span[:len(a)])
    cell_b, box_b = entries(lo[len(a):], span[len(a):])
    order = np.argsort(cell_b, kind="stable")
    cell_b, box_b = cell_b[order], box_b[order]
    start, stop = np.searchsorted(cell_b, cell_a, "left"), np.searchsorted(cell_b, cell_a, "right")
    per = stop - start
    pa = np.repeat(box_a, per)
    pb = box_b[np.repeat(start - (np.cumsum(per) - per), per) + np.arange(int(per.sum()))]
    if len(cell_a) > len(a):  # some box of a is in more than one cell (points never are)
        # The meeting's top-left corner lies in cell (max of the two lo): floor is monotonic.
        lo_a, lo_b = lo[:len(a)], lo[len(a):]
        corner = np.maximum(lo_a[pa, 1], lo_b[pb, 1]) * cols + np.maximum(lo_a[pa, 0], lo_b[pb, 0])
        keep = corner == np.repeat(cell_a, per)
        pa, pb = pa[keep], pb[keep]
    if exact:
        ax1, ay1, ax2, ay2 = a.T
        bx1, by1, bx2, by2 = b.T
        keep = (ax1[pa] <= bx2[pb]) & (bx1[pb] <= ax2[pa]) & (ay1[pa] <= by2[pb]) & (by1[pb] <= ay2[pa])
        pa, pb = pa[keep], pb[keep]
    return (pa if len(ia) == len(ok_a) else ia[pa]), (pb if len(ib) == len(ok_b) else ib[pb])
