"""Speed of the per-frame hot loop on fixed inputs (pytest-benchmark).

    pytest bench/test_hotloop.py --benchmark-only

Each bench also asserts its output, so a fast wrong answer fails.
"""
from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from blurcam.detect import make_detector
from blurcam.io.convert import frame_to_rgb, rgb_to_frame
from blurcam.redact import RedactConfig, redact_faces
from blurcam.synth import background
from blurcam.track import Persistence
from blurcam.types import Faces

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def face_grid(n: int, size_wh: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """n face boxes 24-160 px high scattered over the frame, (n, 4) float32 xyxy."""
    w, h = size_wh
    side = rng.uniform(24, 160, n)
    x = rng.uniform(0, w - side)
    y = rng.uniform(0, h - side)
    return np.stack([x, y, x + side, y + side], axis=1).astype(np.float32)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("n_faces", [1, 10, 50])
def test_redact(benchmark, size, n_faces):
    rng = np.random.default_rng(0)
    w, h = SIZES[size]
    frame = rng.integers(0, 256, (h, w, 3), np.uint8)
    boxes = face_grid(n_faces, (w, h), rng)
    config = RedactConfig()
    work = frame.copy()

    def run():
        work[...] = frame
        return redact_faces(work, boxes, config, rng)

    regions = benchmark(run)
    x1, y1, x2, y2 = regions[0]
    assert (work[y1:y2, x1:x2] != frame[y1:y2, x1:x2]).mean() > 0.9


def test_persistence_update_50_boxes(benchmark):
    rng = np.random.default_rng(1)
    boxes = face_grid(50, (1920, 1080), rng)
    tracker = Persistence()
    tracker.update(Faces.from_xyxy(boxes))
    step = [0]

    def run():
        step[0] += 1
        moved = boxes + np.float32(step[0] % 3)
        keep = np.ones(50, bool)
        keep[step[0] % 50] = False  # one face blinks each frame
        return tracker.update(Faces.from_xyxy(moved[keep]))

    out = benchmark(run)
    assert len(out) == 50 and out.carried.sum() == 1


def _yuv_frame(size):
    """A real decoded H.264 frame of a photo (decoder output carries colour tags)."""
    w, h = SIZES[size]
    photo = cv2.resize(background((w, h)), (w, h))
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, "yuv420p"
    codec.time_base = Fraction(1, 30)
    packets = codec.encode(av.VideoFrame.from_ndarray(photo, format="rgb24")) + codec.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for p in packets for f in decoder.decode(p)] + decoder.decode(None)
    return frames[0]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ["swscale", "opencv"])
def test_decoded_frame_to_rgb(benchmark, size, route):
    """Both routes in one run; blurcam uses swscale here (equal once warm)."""
    frame = _yuv_frame(size)
    if route == "swscale":
        rgb = benchmark(frame_to_rgb, frame)
    else:
        rgb = benchmark(lambda: cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420))
    reference = frame.to_ndarray(format="rgb24").astype(np.int16)
    assert rgb.shape == reference.shape
    assert np.abs(rgb.astype(np.int16) - reference).mean() < 2


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ["swscale", "blurcam"])
def test_rgb_to_encoder_frame(benchmark, size, route):
    """Before (swscale) and after (blurcam.io.convert: OpenCV I420) in one run."""
    rgb = _yuv_frame(size).to_ndarray(format="rgb24")
    if route == "swscale":
        out = benchmark(lambda: av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
    else:
        out = benchmark(lambda: rgb_to_frame(rgb).reformat(format="yuv420p"))
    back = out.to_ndarray(format="rgb24").astype(np.int16)
    assert np.abs(back - rgb).mean() < 3


@pytest.fixture(scope="module")
def frame_720p():
    """A fixed 1280x720 frame: the astronaut's face about 110 px high on the coffee background."""
    from blurcam.synth import Placement, registry_sprites, render

    (frame, boxes), = render([Placement(registry_sprites()[0], 300, (200, 150), (200, 150))], background((1280, 720)), 1)
    return frame, boxes[0]


@pytest.mark.parametrize("name, build", [
    ("mediapipe-full", lambda: __import__("blurcam.detect.mediapipe", fromlist=["x"]).MediaPipeDetector("full")),
    ("centerface@512", lambda: _centerface(512)),
    ("centerface@1024", lambda: _centerface(1024)),
    ("preset-live", lambda: make_detector("live", centerface_every=1)),
    ("preset-balanced", lambda: make_detector("balanced", centerface_every=1)),
])
def test_detector_per_frame(benchmark, frame_720p, name, build):
    frame, face = frame_720p
    detector = build()
    try:
        faces = benchmark(detector.detect, frame, 0)
    finally:
        detector.close()
    from blurcam.boxes import box_iou

    assert len(faces) and box_iou(faces.xyxy, face[None]).max() > 0.3  # it found the face


def _centerface(side):
    from blurcam.detect.centerface import CenterFaceDetector

    return CenterFaceDetector(input_long_side=side, threshold=0.2)
