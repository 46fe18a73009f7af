"""Irreversible redaction of image regions, in place, O(pixels) per region.

Every mode first destroys the region's information, then styles what is left:

- ``blur`` (default): the region is reduced to at most ``max_cells`` (6) cell means
  across (cells at least ``min_cell_px`` wide), each mean gets random noise, and
  the grid is upsampled smoothly. The output is a function of at most
  max_cells x max_cells noisy numbers: it looks like a blur but no detail survives.
  A plain Gaussian blur would keep detail that deconvolution can partly recover,
  and a kernel fixed in pixels would leave large faces readable.
- ``pixelate``: the same noisy cell means, shown as hard-edged blocks.
- ``solid``: a flat black fill.
"""
from __future__ import annotations

from dataclasses import dataclass

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


def _cell_grid(w: int, h: int, config: RedactConfig) -> tuple[int, int]:
    """Cells across and down for a w x h region: square-ish cells, at most max_cells on the long side."""
    cell = max(config.min_cell_px, -(-max(w, h) // config.max_cells))  # ceil division
    return max(1, min(config.max_cells, round(w / cell))), max(1, min(config.max_cells, round(h / cell)))


Picture = np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]
"""What redaction writes into: an (H, W, C) uint8 image, or a frame's 4:2:0 planes
(Y (H, W), Cb, Cr (ceil(H/2), ceil(W/2)), see :class:`blurcam.types.Frame`)."""

# Solid fill: black. Y 16 and Cb = Cr = 128 is black in limited-range 4:2:0.
_BLACK_RGB, _BLACK_Y, _NEUTRAL_C = 0, 16, 128


def _destroy(roi: np.ndarray, cells_x: int, cells_y: int, config: RedactConfig,
             noise: np.ndarray | None, black: int) -> None:
    """Replace ``roi`` (h, w) or (h, w, C), in place, by its cells_x x cells_y area means
    plus ``noise`` (cells_y, cells_x), upsampled in the mode's style."""
    if config.mode == "solid":
        roi[...] = black
        return
    # INTER_AREA gives true cell means: the only information kept from the region.
    cells = cv2.resize(roi, (cells_x, cells_y), interpolation=cv2.INTER_AREA).astype(np.float32)
    cells = cells.reshape(cells_y, cells_x, -1)
    if noise is not None:
        cells += noise[:, :, None]  # one value per cell for all channels: brightness, not confetti
    cells = np.clip(cells, 0, 255).astype(np.uint8)
    style = cv2.INTER_NEAREST if config.mode == "pixelate" else cv2.INTER_CUBIC
    if config.mode == "blur" and (cells_x == 1 or cells_y == 1):
        style = cv2.INTER_LINEAR  # cubic on a 1-cell axis is the same flat colour
    roi[...] = cv2.resize(cells, (roi.shape[1], roi.shape[0]), interpolation=style).reshape(roi.shape)


def redact_regions(picture: Picture, regions: np.ndarray, config: RedactConfig,
                   rng: np.random.Generator | None = None) -> None:
    """Destroy ``[y1:y2, x1:x2]`` for every row of ``regions`` (N, 4) int, in place.

    Regions are in image (luma) pixels. For 4:2:0 planes the chroma region is every
    chroma sample that touches it, reduced to the same cell grid; the noise goes on
    luma. Empty regions are skipped; overlapping regions are fine (each pass only
    destroys more). Cost is O(region pixels): one area-average down and one resize
    up per plane, whatever the face size.
    """
    if rng is None:
        rng = np.random.default_rng()
    planes = isinstance(picture, tuple)
    for x1, y1, x2, y2 in np.asarray(regions, np.int64).reshape(-1, 4).tolist():
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            continue
        cells_x, cells_y = _cell_grid(w, h, config)
        noise = rng.normal(0.0, config.noise, (cells_y, cells_x)).astype(np.float32) if config.noise else None
        if not planes:
            _destroy(picture[y1:y2, x1:x2], cells_x, cells_y, config, noise, _BLACK_RGB)
            continue
        luma, cb, cr = picture
        _destroy(luma[y1:y2, x1:x2], cells_x, cells_y, config, noise, _BLACK_Y)
        cx1, cy1, cx2, cy2 = x1 // 2, y1 // 2, -(-x2 // 2), -(-y2 // 2)
        for chroma in (cb, cr):
            _destroy(chroma[cy1:cy2, cx1:cx2], min(cells_x, cx2 - cx1), min(cells_y, cy2 - cy1),
                     config, None, _NEUTRAL_C)


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
