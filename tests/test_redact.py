import cv2
import numpy as np
import pytest

from blurcam.redact import RedactConfig, obscure_whole, redact_faces, redact_regions, regions_for
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


@pytest.mark.parametrize("mode", ["blur", "pixelate"])
@pytest.mark.parametrize("max_cells, size", [(8, 160), (6, 162)])
def test_output_is_a_function_of_at_most_8x8_cell_means(mode, max_cells, size):
    """Irreversibility by construction: two regions with equal cell means give identical
    output (same noise), so nothing finer than the cells can be recovered."""
    rng = np.random.default_rng(2)
    config = RedactConfig(mode=mode, pad=1.0, pad_top=0.0, max_cells=max_cells)
    region = np.array([[0, 0, size, size]])
    a = rng.integers(0, 256, (size, size, 3), np.uint8)
    cells = cv2.resize(a, (max_cells, max_cells), interpolation=cv2.INTER_AREA)
    b = cv2.resize(cells, (size, size), interpolation=cv2.INTER_NEAREST)  # same means, no detail
    assert not np.array_equal(a, b)
    redact_regions(a, region, config, np.random.default_rng(7))
    redact_regions(b, region, config, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


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
