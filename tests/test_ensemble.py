import numpy as np
import pytest

from blurcam.detect.ensemble import merge_overlapping
from blurcam.types import Faces


@pytest.mark.parametrize("boxes, expected", [
    ([], []),
    ([[0, 0, 10, 10]], [[0, 0, 10, 10]]),
    ([[0, 0, 10, 10], [1, 1, 11, 11]], [[0, 0, 11, 11]]),  # same face from two detectors: enclosing box
    ([[0, 0, 10, 10], [50, 50, 60, 60]], [[0, 0, 10, 10], [50, 50, 60, 60]]),  # two faces stay two
    ([[0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10]], [[0, 0, 14, 10]]),  # chains merge
])
def test_merge_overlapping_never_uncovers_a_pixel(boxes, expected):
    faces = Faces.from_xyxy(np.array(boxes, np.float32).reshape(-1, 4), np.linspace(0.5, 0.9, len(boxes)))
    merged = merge_overlapping(faces)
    np.testing.assert_array_equal(np.sort(merged.xyxy, axis=0), np.sort(np.array(expected, np.float32).reshape(-1, 4), axis=0))
    for box in faces.xyxy:  # every input box lies inside some merged box
        inside = (merged.xyxy[:, :2] <= box[:2]).all(1) & (merged.xyxy[:, 2:] >= box[2:]).all(1)
        assert inside.any()
