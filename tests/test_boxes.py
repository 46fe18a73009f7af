import numpy as np
import pytest

from blurcam.boxes import box_iou, clip_to_pixels, pad_boxes, pair_hull, scale_about_centre, xywh_to_xyxy


@pytest.mark.parametrize("xywh, xyxy", [
    ([[0, 0, 10, 20]], [[0, 0, 10, 20]]),
    ([[5.5, 2, 1, 1]], [[5.5, 2, 6.5, 3]]),
    (np.zeros((0, 4)), np.zeros((0, 4))),
])
def test_xywh_to_xyxy(xywh, xyxy):
    np.testing.assert_allclose(xywh_to_xyxy(xywh), np.asarray(xyxy).reshape(-1, 4))


@pytest.mark.parametrize("box, scale, top, expected", [
    ([10, 10, 20, 20], 1.0, 0.0, [10, 10, 20, 20]),
    ([10, 10, 20, 20], 2.0, 0.0, [5, 5, 25, 25]),
    ([10, 10, 20, 20], 1.0, 0.5, [10, 5, 20, 20]),  # hair room above only
])
def test_pad_boxes(box, scale, top, expected):
    np.testing.assert_allclose(pad_boxes(np.array([box]), scale, top)[0], expected)


@pytest.mark.parametrize("box, expected", [
    ([10.2, 10.7, 20.1, 20.9], [10, 10, 21, 21]),  # floor start, ceil end: every touched pixel
    ([-5, -5, 3, 3], [0, 0, 3, 3]),
    ([630.5, 350.5, 700, 400], [630, 350, 640, 360]),  # reaches the last row and column
    ([700, 400, 800, 500], [640, 360, 640, 360]),  # outside: empty
])
def test_clip_to_pixels_covers_edges(box, expected):
    np.testing.assert_array_equal(clip_to_pixels(np.array([box]), (640, 360))[0], expected)


@pytest.mark.parametrize("scale, expected", [
    (2.0, [[-5, -5, 15, 15], [0, 20, 40, 28]]),  # one scale for every box
    (np.array([2.0, 0.5]), [[-5, -5, 15, 15], [15, 23, 25, 25]]),  # one per box (the tracker's growth)
    (np.array([1.0, 1.0], np.float32), [[0, 0, 10, 10], [10, 22, 30, 26]]),
])
def test_scale_about_centre(scale, expected):
    boxes = np.array([[0, 0, 10, 10], [10, 22, 30, 26]], np.float32)
    np.testing.assert_array_equal(scale_about_centre(boxes, scale), expected)


def test_pair_hull_holds_both_boxes_row_by_row():
    a = np.array([[0, 0, 10, 10], [5, 5, 6, 6]], np.float32)
    b = np.array([[5, -2, 8, 20], [0, 0, 1, 1]], np.float32)
    np.testing.assert_array_equal(pair_hull(a, b), [[0, -2, 10, 20], [0, 0, 6, 6]])


def test_box_maths_empty_input():
    empty = np.zeros((0, 4), np.float32)
    assert pad_boxes(empty).shape == (0, 4)
    assert scale_about_centre(empty, np.zeros(0)).shape == (0, 4)
    assert pair_hull(empty, empty).shape == (0, 4)
    assert clip_to_pixels(empty, (10, 10)).shape == (0, 4)
    assert box_iou(empty, np.array([[0, 0, 1, 1]])).shape == (0, 1)


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0], rtol=1e-6)
