import numpy as np

from blurcam.detect.ensemble import Ensemble, EveryNth
from blurcam.types import Faces


class Fixed:
    """A detector that always returns the same boxes and counts its calls."""

    def __init__(self, *boxes, name="fixed"):
        self.faces = Faces.from_xyxy(np.array(boxes, np.float32).reshape(-1, 4))
        self.name, self.calls, self.closed = name, 0, False

    def detect(self, image, timestamp_ms):
        self.calls += 1
        return self.faces

    def close(self):
        self.closed = True


IMAGE = np.zeros((100, 100, 3), np.uint8)


def test_secondary_duplicates_dropped_new_faces_kept():
    primary = Fixed([10, 10, 40, 50])
    secondary = Fixed([12, 12, 42, 48], [60, 60, 90, 90])  # same face as primary; a face primary missed
    out = Ensemble([primary], secondary=[secondary]).detect(IMAGE, 0)
    np.testing.assert_array_equal(out.xyxy, [[10, 10, 40, 50], [60, 60, 90, 90]])


def test_primary_boxes_are_never_merged():
    out = Ensemble([Fixed([10, 10, 40, 50]), Fixed([11, 11, 41, 51])]).detect(IMAGE, 0)
    assert len(out) == 2


def test_every_nth_runs_on_frame_zero_then_every_k():
    inner = Fixed([1, 1, 5, 5])
    sched = EveryNth(inner, 3)
    counts = [len(sched.detect(IMAGE, t)) for t in range(7)]
    assert counts == [1, 0, 0, 1, 0, 0, 1] and inner.calls == 3
    ens = Ensemble([sched])
    ens.close()
    assert inner.closed
