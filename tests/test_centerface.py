"""CenterFace adapter: map decoding with known answers, and the real model on real pixels."""
from __future__ import annotations

import numpy as np
import pytest

from blurcam.detect import CENTERFACE_MODELS
from blurcam.detect.centerface import CenterFaceDetector, decode
from blurcam.models import model_bytes


def maps(h=8, w=10):
    return np.zeros((h, w), np.float32), np.zeros((2, h, w), np.float32), np.zeros((2, h, w), np.float32)


def test_decode_one_cell_gives_box_at_stride_four():
    heatmap, log_size, offset = maps()
    heatmap[3, 5] = 0.9
    log_size[:, 3, 5] = np.log([6.0, 4.0])  # height 24 px, width 16 px
    offset[:, 3, 5] = (0.25, -0.5)  # centre y = (3.25 + 0.5) * 4 = 15, x = (4.5 + 0.5) * 4 = 20
    xyxy, score = decode(heatmap, log_size, offset, 0.5)
    np.testing.assert_allclose(xyxy, [[12, 3, 28, 27]], atol=1e-4)
    np.testing.assert_allclose(score, [0.9])


def test_decode_threshold_is_inclusive_and_empty_below():
    heatmap, log_size, offset = maps()
    heatmap[1, 1] = 0.5
    assert len(decode(heatmap, log_size, offset, 0.5)[0]) == 1
    xyxy, score = decode(heatmap, log_size, offset, 0.51)
    assert xyxy.shape == (0, 4) and score.shape == (0,)


def test_decode_merges_neighbouring_cells_of_one_face():
    heatmap, log_size, offset = maps()
    heatmap[4, 4], heatmap[4, 5] = 0.8, 0.6  # one 40 px face fires in two adjacent cells
    log_size[:, 4, 4:6] = np.log(10.0)
    xyxy, score = decode(heatmap, log_size, offset, 0.3)
    assert score.tolist() == pytest.approx([0.8])


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_shipped_models_take_any_input_size_and_list_no_weights_as_inputs(precision):
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes(CENTERFACE_MODELS[precision]), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()  # the export listed all 195 weights as inputs too
    assert inp.name == "input.1" and inp.shape[1] == 3 and not isinstance(inp.shape[2], int)
    assert [o.name for o in session.get_outputs()] == ["537", "538", "539"]
    for h, w in ((64, 96), (288, 512)):
        heatmap = session.run(["537"], {"input.1": np.zeros((1, 3, h, w), np.float32)})[0]
        assert heatmap.shape == (1, 1, h // 4, w // 4)


@pytest.mark.parametrize("input_scale", [1.0, 0.5])
def test_finds_the_astronaut_face_at_any_size(input_scale):
    from skimage import data

    image = np.ascontiguousarray(data.astronaut()[:500, :450])  # not a multiple of 32
    detector = CenterFaceDetector(threshold=0.3, input_scale=input_scale)
    try:
        faces = detector.detect(image, 0)
    finally:
        detector.close()
    # Her face spans roughly x 160..270, y 60..200 in the 512x512 photo.
    centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    hits = (np.abs(centres[:, 0] - 215) < 40) & (np.abs(centres[:, 1] - 130) < 50)
    assert hits.sum() == 1
    assert faces.xyxy.dtype == np.float32
    assert (faces.xyxy[:, 2] <= 450).all() and (faces.xyxy[:, 3] <= 500).all()


def test_blank_image_has_no_faces():
    detector = CenterFaceDetector(threshold=0.2)
    assert len(detector.detect(np.zeros((100, 130, 3), np.uint8), 0)) == 0


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="threshold"):
        CenterFaceDetector(threshold=1.5)
    with pytest.raises(ValueError, match="input_scale"):
        CenterFaceDetector(input_scale=0)


def test_decode_small_boxes_take_their_own_threshold():
    heatmap, log_size, offset = maps(16, 16)
    heatmap[2, 2], log_size[:, 2, 2] = 0.08, np.log(3.0)  # 12 px box, weak
    heatmap[10, 10], log_size[:, 10, 10] = 0.12, np.log(12.0)  # 48 px box, weak
    xyxy, score = decode(heatmap, log_size, offset, 0.15, small_threshold=0.05, small_px=32)
    assert score.tolist() == pytest.approx([0.08])  # the small one passes, the large one does not
    xyxy, score = decode(heatmap, log_size, offset, 0.05, min_px=20)
    assert score.tolist() == pytest.approx([0.12])  # min_px drops the 12 px box


def test_input_size_follows_long_side_not_source_resolution():
    detector = CenterFaceDetector(input_long_side=1024)
    try:
        assert detector.input_size(1280, 720) == (1024, 576)
        assert detector.input_size(1920, 1080) == (1024, 576)
        assert detector.input_size(480, 640) == (768, 1024)
    finally:
        detector.close()
    no_upscale = CenterFaceDetector(input_long_side=768, upscale=False)
    try:
        assert no_upscale.input_size(1280, 720) == (768, 432)
        assert no_upscale.input_size(640, 360) == (640, 360)  # run at its own size, not enlarged
    finally:
        no_upscale.close()
