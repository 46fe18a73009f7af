import cv2
import numpy as np
import pytest

from blurcam.io.convert import planes_to_rgb, rgb_to_planes
from blurcam.redact import RedactConfig, obscure_whole, redact_faces, redact_regions, region_cell_px, regions_for
from blurcam.synth import Placement, background, render
from leak import detail_kept


@pytest.fixture(scope="module")
def portrait(sprites):
    """The astronaut crop at 300 px high: face box (96, 62, 204, 178)."""
    return sprites[0].image, np.array([sprites[0].face_xyxy], np.float32)


@pytest.mark.parametrize("mode", ["blur", "pixelate", "solid"])
@pytest.mark.parametrize("scale", [0.25, 0.5, 1.0, 2.0])
def test_face_detail_destroyed_at_every_size(portrait, mode, scale):
    image, face = portrait
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    face = face * scale
    out = image.copy()
    redact_faces(out, face, RedactConfig(mode=mode))
    kept = detail_kept(image, out, face[0])
    # leakcheck.py counts a leak above 0.5; compression alone keeps ~0.9
    assert kept is not None and kept < 0.4, f"{mode} at {scale}x keeps {kept:.2f} of the face detail"


def test_whole_padded_box_covered_and_nothing_else(portrait):
    image, face = portrait
    out = image.copy()
    config = RedactConfig()
    (x1, y1, x2, y2), = regions_for(face, (image.shape[1], image.shape[0]), config)
    redact_faces(out, face, config, np.random.default_rng(0))
    changed = np.any(out != image, axis=2)
    outside = changed.copy()
    outside[y1:y2, x1:x2] = False
    assert not outside.any(), "pixels outside the padded box changed"
    # Padded box is 1.5x the face plus hair room, and almost every pixel in it changed.
    assert (x2 - x1) >= 1.5 * (face[0, 2] - face[0, 0]) - 1
    assert changed[y1:y2, x1:x2].mean() > 0.95


def test_box_at_frame_edge_covers_last_row_and_column():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (100, 120, 3), np.uint8)
    out = image.copy()
    regions = redact_faces(out, np.array([[90.3, 70.6, 119.2, 99.1]]), RedactConfig(pad=1.0, pad_top=0.0))
    np.testing.assert_array_equal(regions[0], [90, 70, 120, 100])
    assert (out[99, 90:120] != image[99, 90:120]).any(axis=1).mean() > 0.9  # last row redacted
    assert (out[70:100, 119] != image[70:100, 119]).any(axis=1).mean() > 0.9  # last column redacted


def _shuffle_within_cells(image: np.ndarray, cell: int, rng: np.random.Generator) -> np.ndarray:
    """The image with its pixels shuffled inside every cell x cell square of the lattice
    from its corner: every cell mean kept, all finer detail gone."""
    out = image.copy()
    for y in range(0, image.shape[0], cell):
        for x in range(0, image.shape[1], cell):
            block = out[y:y + cell, x:x + cell]
            flat = block.reshape(-1, *block.shape[2:])
            block[...] = flat[rng.permutation(len(flat))].reshape(block.shape)
    return out


@pytest.mark.parametrize("mode", ["blur", "pixelate"])
@pytest.mark.parametrize("max_cells, size, corner", [(8, 160, (0, 0)), (6, 162, (17, 9)), (6, 40, (31, 5))])
def test_output_is_a_function_of_noisy_cell_means(mode, max_cells, size, corner):
    """Irreversibility by construction: two images with equal means on the region's cell
    lattice give identical output (same noise), so nothing finer than the cells can be
    recovered; and the cells are at least 1/max_cells of the region, so at most
    max_cells + 1 of them span it."""
    rng = np.random.default_rng(2)
    config = RedactConfig(mode=mode, pad=1.0, pad_top=0.0, max_cells=max_cells)
    x, y = corner
    region = np.array([[x, y, x + size, y + size]])
    cell = int(region_cell_px(region, config)[0])
    assert cell >= size / max_cells and cell >= config.min_cell_px
    assert -(-(x + size) // cell) - x // cell <= max_cells + 1
    a = rng.integers(0, 256, (size + 60, size + 50, 3), np.uint8)
    b = _shuffle_within_cells(a, cell, rng)
    assert not np.array_equal(a, b)
    redact_regions(a, region, config, np.random.default_rng(7))
    redact_regions(b, region, config, np.random.default_rng(7))
    np.testing.assert_array_equal(a[y:y + size, x:x + size], b[y:y + size, x:x + size])


def test_overlapping_regions_use_only_cells_as_coarse_as_the_largest():
    """Pixelate cell sizes nest (6, 12, 24 ...), so shuffling inside the finest cells keeps
    every mean of every grid: overlapping regions of many sizes, one output."""
    rng = np.random.default_rng(5)
    config = RedactConfig(mode="pixelate")
    a = rng.integers(0, 256, (240, 320, 3), np.uint8)
    side = rng.uniform(8, 150, 40)
    corner = rng.uniform(0, 1, (40, 2)) * (np.array([320, 240]) - side[:, None])
    regions = np.concatenate([corner, corner + side[:, None]], axis=1).astype(np.int64)
    assert len(np.unique(region_cell_px(regions, config))) >= 3
    b = _shuffle_within_cells(a, config.min_cell_px, rng)
    redact_regions(a, regions, config, np.random.default_rng(7))
    redact_regions(b, regions, config, np.random.default_rng(7))
    covered = _covered(regions, a.shape[:2])
    np.testing.assert_array_equal(a[covered], b[covered])


def test_overlapping_regions_of_one_cell_size_meet_without_a_seam():
    """Regions of one cell size are cut from one frame-wide grid: redacted together, each
    looks exactly as it does alone (noise 0), so where they overlap there is no block edge.
    (Before, each region had its own grid and the later one cut a hard edge into the other.)"""
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (200, 300, 3), np.uint8)
    image = cv2.GaussianBlur(image, (0, 0), 6)
    config = RedactConfig(noise=0.0)
    a, b = np.array([[40, 30, 130, 130]]), np.array([[95, 61, 185, 161]])
    assert region_cell_px(a, config) == region_cell_px(b, config)
    together, alone_a, alone_b = image.copy(), image.copy(), image.copy()
    redact_regions(together, np.concatenate([a, b]), config)
    redact_regions(alone_a, a, config)
    redact_regions(alone_b, b, config)
    np.testing.assert_array_equal(together[30:130, 40:130], alone_a[30:130, 40:130])
    np.testing.assert_array_equal(together[61:161, 95:185], alone_b[61:161, 95:185])


def test_noise_is_added_to_cell_means():
    flat = np.full((64, 64, 3), 128, np.uint8)
    redact_regions(flat, np.array([[0, 0, 64, 64]]), RedactConfig(mode="pixelate", noise=8.0), np.random.default_rng(3))
    assert len(np.unique(flat[..., 0])) > 1


def test_cells_never_smaller_than_min_cell():
    # A 12 px face region gets 2 cells across, not 8 cells of 1.5 px that would keep its shape.
    rng = np.random.default_rng(4)
    tiny = rng.integers(0, 256, (12, 12, 3), np.uint8)
    redact_regions(tiny, np.array([[0, 0, 12, 12]]), RedactConfig(mode="pixelate", noise=0.0))
    assert len(np.unique(tiny.reshape(-1, 3), axis=0)) <= 4


def test_obscure_whole_destroys_every_pixel_region(portrait):
    image, face = portrait
    out = image.copy()
    obscure_whole(out, RedactConfig())
    assert detail_kept(image, out, face[0]) < 0.1


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="mode"):
        RedactConfig(mode="gaussian")
    with pytest.raises(ValueError, match="max_cells"):
        RedactConfig(max_cells=32)


def _covered(regions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: pixels inside any region, painted one region at a time (the reference)."""
    covered = np.zeros(shape, bool)
    for x1, y1, x2, y2 in np.asarray(regions).reshape(-1, 4):
        covered[y1:y2, x1:x2] = True
    return covered


def _crowd(sprites, size_wh: tuple[int, int], seed: int):
    """Real faces (astronaut, cameraman) 30-220 px high in rows over a photo, each whole and
    in view: (Y, Cb, Cr) 4:2:0 planes and the exact face boxes (N, 4) float32."""
    rng = np.random.default_rng(seed)
    w, h = size_wh
    placements, x, y, row = [], 0, 0, 0
    while True:
        side = int(rng.uniform(30, 220))
        if x + side > w:
            x, y, row = 0, y + row, 0
        if y + side > h:
            break
        placements.append(Placement(sprites[len(placements) % 2], side, (x, y), (x, y)))
        x, row = x + side, max(row, side)
    (frame, faces), = render(placements, background(size_wh), 1)
    return rgb_to_planes(frame), faces


def _copy(planes):
    return tuple(p.copy() for p in planes)


def _assert_only_regions_changed(before, after, regions):
    """Luma outside the regions and chroma outside the chroma samples they touch are untouched."""
    halved = np.concatenate([regions[:, :2] // 2, -(-regions[:, 2:] // 2)], axis=1)
    outside = ~_covered(regions, before[0].shape)
    np.testing.assert_array_equal(after[0][outside], before[0][outside])
    outside = ~_covered(halved, before[1].shape)
    for b, a in zip(before[1:], after[1:]):
        np.testing.assert_array_equal(a[outside], b[outside])


@pytest.mark.parametrize("mode", ["blur", "pixelate", "solid"])
@pytest.mark.parametrize("seed", range(8))
def test_face_detail_gone_whatever_the_overlap(sprites, mode, seed):
    """Property: real faces on 4:2:0 planes, their boxes plus random face-shaped boxes of 6-400 px
    that overlap them and each other (nested, straddling, covering several faces): the detail of
    every face and of every box is gone, and nothing outside the boxes changed."""
    rng = np.random.default_rng(100 + seed)
    planes, faces = _crowd(sprites, (640, 360), seed)
    n = int(rng.integers(5, 80))
    side = np.exp(rng.uniform(np.log(6), np.log(400), n))[:, None] * rng.uniform(0.7, 1.4, (n, 2))  # face-shaped
    corner = rng.uniform(-40, 1, (n, 2)) + rng.uniform(0, 1, (n, 2)) * [640, 360]
    carried = faces + rng.normal(0, 0.15, faces.shape) * (faces[:, 2:3] - faces[:, :1])  # the tracker's jittered copies
    boxes = np.concatenate([faces, carried, np.concatenate([corner, corner + side], axis=1)]).astype(np.float32)
    out = _copy(planes)
    regions = redact_faces(out, boxes, RedactConfig(mode=mode), rng)
    _assert_only_regions_changed(planes, out, regions)
    before, after = planes_to_rgb(planes), planes_to_rgb(out)
    kept = [detail_kept(before, after, np.clip(face, 0, [640, 360, 640, 360])) for face in faces]
    assert sum(k is not None for k in kept) >= len(faces) // 2
    for face, k in zip(faces, kept):
        assert k is None or k < 0.4, f"face {face.round()} keeps {k:.2f} of its detail"


@pytest.fixture(scope="module")
def thousand_boxes(sprites):
    """A 1280x720 crowd on 4:2:0 planes, its face boxes first among 1,000 boxes; the
    rest random 16-120 px boxes over it. Returns planes, boxes, number of faces."""
    planes, faces = _crowd(sprites, (1280, 720), 11)
    rng = np.random.default_rng(12)
    side = rng.uniform(16, 120, 1000 - len(faces))
    x, y = rng.uniform(0, 1280 - side), rng.uniform(0, 720 - side)
    boxes = np.concatenate([faces, np.stack([x, y, x + side, y + side], axis=1)]).astype(np.float32)
    return planes, boxes, len(faces)


@pytest.mark.parametrize("mode", ["blur", "pixelate", "solid"])
def test_thousand_box_frame_redacted_completely(thousand_boxes, mode):
    """No region skipped: every pixel outside the padded boxes is untouched, and every one of
    the 1,000 boxes is destroyed as redacting it alone must: solid regions are exactly the
    fill; in blur and pixelate at least 3/4 of every region's pixels changed (the rest equal
    by chance on smooth background; a skipped region would have none) and no face keeps
    its detail."""
    planes, boxes, n_faces = thousand_boxes
    out = _copy(planes)
    regions = redact_faces(out, boxes, RedactConfig(mode=mode), np.random.default_rng(0))
    assert len(regions) == 1000 and n_faces >= 20
    _assert_only_regions_changed(planes, out, regions)
    if mode == "solid":
        halved = np.concatenate([regions[:, :2] // 2, -(-regions[:, 2:] // 2)], axis=1)
        assert (out[0][_covered(regions, out[0].shape)] == 16).all()
        for chroma in out[1:]:
            assert (chroma[_covered(halved, chroma.shape)] == 128).all()
        return
    changed = cv2.integral((out[0] != planes[0]).astype(np.uint8))
    x1, y1, x2, y2 = regions.T
    share = (changed[y2, x2] - changed[y1, x2] - changed[y2, x1] + changed[y1, x1]) / ((x2 - x1) * (y2 - y1))
    assert share.min() > 0.75, f"region {regions[share.argmin()]} only {share.min():.2f} changed"
    before, after = planes_to_rgb(planes), planes_to_rgb(out)
    kept = [detail_kept(before, after, face) for face in boxes[:n_faces]]
    assert all(k is None or k < 0.4 for k in kept), f"a face keeps {max(k for k in kept if k is not None):.2f}"


@pytest.mark.parametrize("mode", ["blur", "pixelate", "solid"])
def test_odd_sized_planes_covered_to_the_last_row_and_column(mode):
    """A 4:2:0 frame of odd size (chroma ceil(H/2) x ceil(W/2)): regions at the corners and
    over the last row and column are covered there in every plane, nothing else changes."""
    rng = np.random.default_rng(8)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (75, 101, 3), np.uint8), (0, 0), 1.0)
    planes = rgb_to_planes(rgb)
    assert planes[1].shape == (38, 51)
    regions = np.array([[0, 0, 13, 11], [88, 60, 101, 75], [40, 69, 55, 75], [95, 30, 101, 41]])
    out = _copy(planes)
    redact_regions(out, regions, RedactConfig(mode=mode, noise=20.0), rng)
    _assert_only_regions_changed(planes, out, regions)
    assert (out[0][74, 88:101] != planes[0][74, 88:101]).mean() > 0.7  # last row
    assert (out[0][30:41, 100] != planes[0][30:41, 100]).mean() > 0.7  # last column
    assert (out[1][37, 44:51] != planes[1][37, 44:51]).any()  # last chroma row (half a luma row)
