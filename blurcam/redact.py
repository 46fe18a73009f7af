"""Irreversible redaction of image regions, in place, O(frame pixels) per frame.

Every mode first destroys the regions' information, then styles what is left:

- ``blur`` (default): each region gets a cell size of at least its longer side / ``max_cells``
  (6) and at least ``min_cell_px``, rounded up to one of a few sizes (steps of about
  sqrt(2)). For each cell size in use, one grid of square cells anchored at the frame's
  corner covers the regions; each cell is reduced to its mean and gets random noise. The
  noisy means are smoothed across neighbouring cells, interpolated back up and composited
  through the regions' mask. A plain Gaussian blur would keep detail that deconvolution
  can partly recover, and a kernel fixed in pixels would leave large faces readable.
- ``pixelate``: the same noisy cell means, shown as hard-edged blocks (cell sizes in
  steps of 2, so coarser blocks are whole multiples of finer ones).
- ``solid``: a flat black fill.

The guarantee, by construction: a cell that touches a region of cell size c takes its value
from cells of size >= c (its own noisy mean, or coarser noisy means interpolated when a
region with larger cells touches it too); smoothing and interpolation then only mix in
values of cells that hold none of the region's pixels. So what is inside a region reaches
its pixels only through noisy means of cells at least as large as its own: at most
(max_cells + 1) x (max_cells + 1) = 49 of its size overlap it (the grid is not aligned to
it), or fewer, larger ones. Overlapping regions are destroyed once, on one shared grid per
cell size, so they meet without block edges.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .boxes import clip_to_pixels, pad_boxes

MODES = ("blur", "pixelate", "solid")


@dataclass(frozen=True, kw_only=True)
class RedactConfig:
    """How a face box becomes a destroyed region.

    pad: box growth about its centre (1.5 = 50 % wider and taller).
    pad_top: extra growth upwards, as a share of the box height (hair, forehead).
    max_cells: most cell means across the longer side of a region.
    min_cell_px: smallest cell side in pixels (tiny faces get fewer cells).
    noise: standard deviation of the noise added to each cell mean, in 8-bit levels.
    """

    mode: str = "blur"
    pad: float = 1.5
    pad_top: float = 0.2
    max_cells: int = 6
    min_cell_px: int = 6
    noise: float = 8.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 1.0 <= self.pad <= 4.0:
            raise ValueError(f"pad must be in [1, 4], got {self.pad}")
        if not 0.0 <= self.pad_top <= 1.0:
            raise ValueError(f"pad_top must be in [0, 1], got {self.pad_top}")
        if not 1 <= self.max_cells <= 8:
            raise ValueError(f"max_cells must be in [1, 8], got {self.max_cells}")
        if self.min_cell_px < 1:
            raise ValueError(f"min_cell_px must be >= 1, got {self.min_cell_px}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")


def regions_for(xyxy: np.ndarray, resolution_wh: tuple[int, int], config: RedactConfig) -> np.ndarray:
    """Face boxes (N, 4) float xyxy -> padded pixel regions (N, 4) int32, clipped to the frame."""
    return clip_to_pixels(pad_boxes(xyxy, config.pad, config.pad_top), resolution_wh)


@lru_cache(maxsize=8)
def cell_sizes(mode: str, min_cell_px: int) -> np.ndarray:
    """The cell sides a region's cell is rounded up to: even luma pixels, increasing.

    Steps of about sqrt(2) for ``blur`` (6, 8, 12, 16, 24, 34, ...), of 2 for ``pixelate``
    (6, 12, 24, ...) so that coarser blocks are whole multiples of finer ones. Few sizes
    mean few grids per frame; rounding up only ever makes cells larger.
    """
    smallest = 2 * -(-min_cell_px // 2)  # even, so a cell is whole chroma samples
    step = 2.0 if mode == "pixelate" else 2.0 ** 0.5
    sizes = {2 * round(smallest * step ** k / 2) for k in range(64) if smallest * step ** k <= 1 << 17}
    return np.array(sorted(sizes), np.int64)


def region_cell_px(regions: np.ndarray, config: RedactConfig) -> np.ndarray:
    """Cell side in pixels for each region (N, 4) int: at least its longer side / max_cells
    and min_cell_px, rounded up to :func:`cell_sizes`. (N,) int64."""
    regions = np.asarray(regions, np.int64).reshape(-1, 4)
    longest = np.maximum(regions[:, 2] - regions[:, 0], regions[:, 3] - regions[:, 1])
    wanted = np.maximum(config.min_cell_px, -(-longest // config.max_cells))
    sizes = cell_sizes(config.mode, config.min_cell_px)
    return sizes[np.searchsorted(sizes, wanted)]


Picture = np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]
"""What redaction writes into: an (H, W, C) uint8 image, or a frame's 4:2:0 planes
(Y (H, W), Cb, Cr (ceil(H/2), ceil(W/2)), see :class:`blurcam.types.Frame`)."""

# Blur: each noisy cell mean mixed with its neighbours' across and down, [1 6 1] / 8.
_CELL_SMOOTHING = np.array([1, 6, 1], np.float32) / 8

# Solid fill: black. Y 16 and Cb = Cr = 128 is black in limited-range 4:2:0.
_BLACK_RGB, _BLACK_Y, _NEUTRAL_C = 0, 16, 128


class _Scratch(threading.local):
    """Frame-sized temporaries kept per thread and reused, by role.

    The CLI's allocator maps every allocation of 1 MiB or more and unmaps it on free
    (:func:`blurcam.memory.tune_allocator`): a fresh frame-sized buffer costs page faults
    that took longer than the redaction itself (1,000 regions on 720p: 5-15 ms). About
    12 MB per redacting thread at 720p, 26 MB at 1080p, for the life of the thread.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def take(self, role: str, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
        """An uninitialised C-contiguous array; valid until ``role`` is taken again."""
        dtype = np.dtype(dtype)
        size = int(np.prod(shape)) * dtype.itemsize
        buffer = self.buffers.get(role)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[role] = np.empty(size, np.uint8)
        return buffer[:size].view(dtype).reshape(shape)


_scratch = _Scratch()


def _paint(boxes: np.ndarray, shape: tuple[int, int], pooled: bool = False) -> np.ndarray:
    """How many of ``boxes`` (N, 4) int xyxy, inside (0, 0, w, h), cover each pixel:
    (h, w) float32 counts, from one difference image and one integral (O(N + pixels)).
    ``pooled``: in this thread's scratch buffers (roles "edges" and "integral")."""
    h, w = shape
    if pooled:
        edges = _scratch.take("edges", (h + 1, w + 1), np.float32)
        edges.fill(0)
        counts = _scratch.take("integral", (h + 2, w + 2), np.float32)
    else:
        edges, counts = np.zeros((h + 1, w + 1), np.float32), None
    x1, y1, x2, y2 = boxes.T
    np.add.at(edges, (np.concatenate([y1, y1, y2, y2]), np.concatenate([x1, x2, x1, x2])),
              np.repeat(np.array([1, -1, -1, 1], np.float32), len(boxes)))
    return cv2.integral(edges, counts, sdepth=cv2.CV_32F)[1:h + 1, 1:w + 1]


def _mask(boxes: np.ndarray, shape: tuple[int, int], role: str) -> np.ndarray:
    """(h, w) uint8 mask, 255 on every pixel of any of ``boxes``, in scratch buffer ``role``."""
    return cv2.compare(_paint(boxes, shape, pooled=True), 0.5, cv2.CMP_GT, _scratch.take(role, shape))


def _cell_means(sums: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Means of the cells between edges ``ys`` (ny + 1,) and ``xs`` (nx + 1,) (increasing,
    in pixels) from an integral image ``sums`` (h + 1, w + 1, C) int32: (ny, nx, C) float32."""
    # int32 wraps in the middle of the differences, but each cell's total fits: exact
    total = np.diff(np.diff(sums[np.ix_(ys, xs)], axis=0), axis=1).astype(np.float32)
    total /= (np.diff(ys)[:, None] * np.diff(xs)[None, :]).astype(np.float32)[..., None]
    return total


def _resample(grid: np.ndarray, origin: tuple[int, int], ratio: float, fine_origin: tuple[int, int],
              fine_shape: tuple[int, int], smooth: bool) -> np.ndarray:
    """A coarser cell grid (NY, NX, C) float32 seen on a finer one: cells ``ratio`` times
    smaller, grids' first cells at cell indices ``origin`` and ``fine_origin`` on their
    frame-wide lattices (both lattices start at the frame's corner). Bilinear between coarse
    cell centres if ``smooth``, else the coarse cell that holds each fine cell's centre."""
    # fine cell i's centre, in coarse cells from the coarse grid's first centre: ratio * i + shift
    shift = [(f + 0.5) * ratio - 0.5 - o for f, o in zip(fine_origin, origin)]
    to_coarse = np.array([[ratio, 0, shift[1]], [0, ratio, shift[0]]], np.float64)
    style = cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST
    out = cv2.warpAffine(grid, to_coarse, fine_shape[::-1], flags=style | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(*fine_shape, grid.shape[2])


@dataclass(frozen=True)
class _Grid:
    """Noisy cell means (ny, nx, C) float32 of ``cell`` x ``cell`` luma-pixel squares; the first
    cell is cell (``origin``) of the frame-wide lattice that starts at the frame's corner."""

    means: np.ndarray
    cell: int
    origin: tuple[int, int]


def _noisy_grid(sums: list[np.ndarray], window_xy: tuple[int, int], regions: np.ndarray, cell_px: np.ndarray,
                config: RedactConfig, rng: np.random.Generator, noise_channels: int) -> _Grid:
    """Destroy: the noisy cell means the regions are drawn from.

    ``sums``: integral images of a luma window whose corner is ``window_xy`` (even) and,
    for 4:2:0, of the chroma pair under it; ``regions`` (N, 4) in frame pixels with
    ``cell_px`` (N,) their cell sides. For each cell size, coarsest first, one grid over the
    window on the frame-wide lattice of that size; noise (first ``noise_channels`` channels)
    on every mean. A cell that touches a region with larger cells takes the coarser grid's
    value instead. Returns the finest grid.
    """
    x0, y0 = window_xy
    h, w = sums[0].shape[0] - 1, sums[0].shape[1] - 1
    coarse = None
    for cell in np.unique(cell_px)[::-1].tolist():
        origin = (y0 // cell, x0 // cell)
        ny, nx = -(-(y0 + h) // cell) - origin[0], -(-(x0 + w) // cell) - origin[1]
        means = []
        for scale, s in zip((1, 2), sums):  # luma, then chroma at half resolution
            ys = np.clip((np.arange(ny + 1) + origin[0]) * cell // scale - y0 // scale, 0, s.shape[0] - 1)
            xs = np.clip((np.arange(nx + 1) + origin[1]) * cell // scale - x0 // scale, 0, s.shape[1] - 1)
            means.append(_cell_means(s, ys, xs))
        means = np.concatenate(means, axis=2) if len(means) > 1 else means[0]
        if config.noise:
            means[..., :noise_channels] += config.noise * rng.standard_normal((ny, nx), np.float32)[..., None]
        if coarse is not None:
            larger = regions[cell_px > cell]
            touched = np.concatenate([larger[:, :2] // cell, -(-larger[:, 2:] // cell)], axis=1)
            touched -= np.array([origin[1], origin[0], origin[1], origin[0]])
            inherit = _paint(touched, (ny, nx)) > 0.5
            np.copyto(means, _resample(coarse.means, coarse.origin, cell / coarse.cell, origin, (ny, nx),
                                       config.mode != "pixelate"), where=inherit[..., None])
        if config.mode == "blur":
            # Smoothed across cells after the coarser values are in, so it mixes only values that
            # may reach these pixels anyway; takes the edges off the bilinear tents. On crowd
            # clips, no smoothing left more small faces readable than per-region redaction did;
            # [1 2 1] / 4 leaked no less than [1 6 1] / 8 and damaged more background.
            means = cv2.sepFilter2D(means, -1, _CELL_SMOOTHING, _CELL_SMOOTHING,
                                    borderType=cv2.BORDER_REPLICATE).reshape(means.shape)
        coarse = _Grid(means, cell, origin)
    return coarse


def _render(grid: _Grid, channels: int | slice, box: tuple[int, int, int, int], scale: int, style: int) -> np.ndarray:
    """``channels`` of the grid on the pixels of ``box`` (x1, y1, x2, y2, in pixels of a plane
    ``scale`` times smaller than luma): (y2 - y1, x2 - x1[, C]) uint8, upsampled in ``style``,
    in scratch buffer "render". Only the cells under the box and one around it are
    upsampled (bilinear needs no more)."""
    x1, y1, x2, y2 = box
    step = grid.cell // scale
    oy, ox = grid.origin
    ny, nx = grid.means.shape[:2]
    ky1, kx1 = max(oy, y1 // step - 1), max(ox, x1 // step - 1)
    ky2, kx2 = min(oy + ny, -(-y2 // step) + 1), min(ox + nx, -(-x2 // step) + 1)
    cells = np.clip(np.rint(grid.means[ky1 - oy:ky2 - oy, kx1 - ox:kx2 - ox, channels]), 0, 255).astype(np.uint8)
    shape = ((ky2 - ky1) * step, (kx2 - kx1) * step) + cells.shape[2:]
    up = cv2.resize(cells, shape[1::-1], _scratch.take("render", shape), interpolation=style)
    return up.reshape(shape)[y1 - ky1 * step:y2 - ky1 * step, x1 - kx1 * step:x2 - kx1 * step]


# Far-apart groups of regions are redacted in windows of their own (a sparse frame costs what
# its faces cost), at most this many; more groups than that is a crowd: one window.
_MAX_WINDOWS = 6
_GROUP_BLOCK_PX = 16


def _groups(regions: np.ndarray, cell_px: np.ndarray, resolution_wh: tuple[int, int]) -> list[np.ndarray]:
    """Indices of regions (N, 4) that can be redacted apart from the others: regions grown
    by three of their cells (all that their cells and their smoothing reach) that touch, on a
    16 px block grid, are one group. One group holding all when there are more than
    _MAX_WINDOWS, or when separate windows would not save half of the pixels."""
    everything = [np.arange(len(regions))]
    if len(regions) < 2:
        return everything
    w, h = resolution_wh
    grown = regions + 3 * cell_px[:, None] * np.array([-1, -1, 1, 1])
    blocks = np.concatenate([np.maximum(grown[:, :2], 0) // _GROUP_BLOCK_PX,
                             -(-np.minimum(grown[:, 2:], [w, h]) // _GROUP_BLOCK_PX)], axis=1)
    shape = (-(-h // _GROUP_BLOCK_PX), -(-w // _GROUP_BLOCK_PX))
    occupied = (_paint(blocks, shape) > 0.5).astype(np.uint8)
    count, labels = cv2.connectedComponents(occupied, connectivity=8)
    if count - 1 > _MAX_WINDOWS or count <= 2:
        return everything
    label = labels[blocks[:, 1], blocks[:, 0]]
    groups = [np.flatnonzero(label == k) for k in range(1, count)]
    if sum(_bounding_area(grown[g]) for g in groups) > 0.5 * _bounding_area(grown):
        return everything
    return groups


def _bounding_area(boxes: np.ndarray) -> float:
    """Area of the bounding box of (N, 4) xyxy boxes."""
    return float(np.prod(boxes[:, 2:].max(axis=0) - boxes[:, :2].min(axis=0)))


def redact_regions(picture: Picture, regions: np.ndarray, config: RedactConfig,
                   rng: np.random.Generator | None = None) -> None:
    """Destroy ``[y1:y2, x1:x2]`` for every row of ``regions`` (N, 4) int, in place.

    Regions are in image (luma) pixels; empty ones are skipped; any number may overlap.
    For 4:2:0 planes the chroma region is every chroma sample that touches it, on the same
    cells; the noise goes on luma (on all channels of an RGB image). Cost is O(pixels of the
    regions' bounding box, grown by three of the largest cells) plus O(N), whatever N and
    the overlap: one mask and one integral image per plane, one grid of cells per cell size
    in use (a handful), one resize up per plane. Far-apart groups of regions (at most
    six) get bounding boxes of their own.
    """
    regions = np.asarray(regions, np.int64).reshape(-1, 4)
    regions = regions[(regions[:, 2] > regions[:, 0]) & (regions[:, 3] > regions[:, 1])]
    if not len(regions):
        return
    if rng is None:
        rng = np.random.default_rng()
    cell_px = region_cell_px(regions, config)
    for group in _groups(regions, cell_px, picture_size(picture)):
        _redact_window(picture, regions[group], cell_px[group], config, rng)


def _redact_window(picture: Picture, regions: np.ndarray, cell_px: np.ndarray, config: RedactConfig,
                   rng: np.random.Generator) -> None:
    """:func:`redact_regions` on non-empty ``regions`` with their ``cell_px``, in one window."""
    planes = isinstance(picture, tuple)
    image = picture[0] if planes else picture
    height, width = image.shape[:2]
    box = (*regions[:, :2].min(axis=0).tolist(), *regions[:, 2:].max(axis=0).tolist())  # all regions
    x1, y1, x2, y2 = box
    local = regions - np.array([x1, y1, x1, y1])
    targets = [(image[y1:y2, x1:x2], local, box, 1)]  # plane window, regions in it, window, scale
    if planes:  # every chroma sample a region touches
        cbox = (x1 // 2, y1 // 2, -(-x2 // 2), -(-y2 // 2))
        halved = np.concatenate([regions[:, :2] // 2, -(-regions[:, 2:] // 2)], axis=1) - np.array(cbox[:2] * 2)
        targets += [(p[cbox[1]:cbox[3], cbox[0]:cbox[2]], halved, cbox, 2) for p in picture[1:]]
    if config.mode == "solid":
        for i, (target, boxes, _, _) in enumerate(targets):
            fill = _scratch.take("render", target.shape)
            fill.fill(_NEUTRAL_C if i else _BLACK_Y if planes else _BLACK_RGB)
            if i < 2:  # Cb and Cr share one mask
                mask = _mask(boxes, target.shape[:2], "mask")
            cv2.copyTo(fill, mask, target)
        return
    # Values reaching a region come from cells within three cells of it (a partly covered
    # cell, bilinear, smoothing): read that much around the regions.
    margin = 3 * int(cell_px.max())
    wx1, wy1 = max(0, x1 - margin) & ~1, max(0, y1 - margin) & ~1
    wx2, wy2 = min(width, x2 + margin), min(height, y2 + margin)
    window = image[wy1:wy2, wx1:wx2]
    channels = window.shape[2] if window.ndim == 3 else 1
    shape = (wy2 - wy1 + 1, wx2 - wx1 + 1) + ((channels,) if channels > 1 else ())
    sums = [cv2.integral(window, _scratch.take("integral", shape, np.int32)).reshape(*shape[:2], channels)]
    if planes:
        cy1, cy2, cx1, cx2 = wy1 // 2, -(-wy2 // 2), wx1 // 2, -(-wx2 // 2)
        pair = cv2.merge([p[cy1:cy2, cx1:cx2] for p in picture[1:]], _scratch.take("chroma", (cy2 - cy1, cx2 - cx1, 2)))
        sums.append(cv2.integral(pair, _scratch.take("chroma_integral", (cy2 - cy1 + 1, cx2 - cx1 + 1, 2), np.int32)))
    grid = _noisy_grid(sums, (wx1, wy1), regions, cell_px, config, rng, 1 if planes else channels)
    # Style: smooth (or blocky) upsampling of the noisy means, composited through the masks.
    style = cv2.INTER_NEAREST if config.mode == "pixelate" else cv2.INTER_LINEAR
    if planes:
        for i, (target, boxes, target_box, scale) in enumerate(targets):
            if i < 2:  # Cb and Cr share one mask
                mask = _mask(boxes, target.shape, "mask")
            cv2.copyTo(_render(grid, i, target_box, scale, style), mask, target)
        return
    target, boxes, target_box, _ = targets[0]  # an image: all channels at once
    cv2.copyTo(_render(grid, slice(None), target_box, 1, style).reshape(target.shape),
               _mask(boxes, target.shape[:2], "mask"), target)


def picture_size(picture: Picture) -> tuple[int, int]:
    """(width, height) in pixels of an image or of 4:2:0 planes."""
    shape = picture[0].shape if isinstance(picture, tuple) else picture.shape
    return shape[1], shape[0]


def redact_faces(picture: Picture, xyxy: np.ndarray, config: RedactConfig,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Pad, clip and destroy every face box (N, 4) float xyxy in ``picture``, in place.

    Returns the (N, 4) int32 regions that were destroyed.
    """
    regions = regions_for(xyxy, picture_size(picture), config)
    redact_regions(picture, regions, config, rng)
    return regions


WHOLE_FRAME_CELLS = 4


def obscure_whole(picture: Picture, config: RedactConfig, rng: np.random.Generator | None = None) -> None:
    """Destroy the whole frame (fail-closed path), in place: at most 4 cells across,
    so even a face filling half the frame keeps no structure."""
    w, h = picture_size(picture)
    coarse = RedactConfig(mode=config.mode, pad=1.0, pad_top=0.0, noise=config.noise,
                          max_cells=min(config.max_cells, WHOLE_FRAME_CELLS), min_cell_px=config.min_cell_px)
    redact_regions(picture, np.array([[0, 0, w, h]]), coarse, rng)
