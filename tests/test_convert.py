"""Pixel conversions between PyAV frames, 4:2:0 planes and detector views."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from blurcam.io.convert import (holds, owned_yuv420p, plane_arrays, planes_to_rgb, planes_to_videoframe,
                                planes_to_view, rgb_to_planes, shrink, videoframe_to_planes, view_size)


@pytest.mark.parametrize("size_wh", [(64, 48), (65, 47)])
def test_rgb_round_trip_through_planes(sprites, size_wh):
    w, h = size_wh
    rgb = np.ascontiguousarray(sprites[0].image[:h, :w])
    y, cb, cr = rgb_to_planes(rgb)
    assert y.shape == (h, w) and cb.shape == cr.shape == ((h + 1) // 2, (w + 1) // 2)
    back = planes_to_rgb((y, cb, cr))
    assert back.shape == rgb.shape
    assert np.abs(back.astype(int) - rgb).mean() < 4  # 4:2:0 chroma loss only


@pytest.mark.parametrize("fmt", ["yuv420p", "yuvj420p", "yuv444p", "yuv420p10le", "rgb24"])
def test_any_decoded_format_becomes_8_bit_planes(sprites, fmt):
    rgb = np.ascontiguousarray(sprites[0].image[:120, :160])
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)
    y, cb, cr = videoframe_to_planes(frame)
    assert y.dtype == np.uint8 and y.shape == (120, 160) and cb.shape == cr.shape == (60, 80)
    shown = planes_to_videoframe((y, cb, cr)).to_ndarray(format="rgb24")
    assert np.abs(shown.astype(int) - rgb).mean() < 6


def test_the_encoder_gets_the_planes_as_redacted_never_a_stale_copy(sprites):
    """Decoded frames are copied once into a frame the pipeline owns; redaction writes
    into its planes and the encoder takes that frame without another copy."""
    rgb = np.ascontiguousarray(sprites[0].image[:120, :160])
    decoded = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    owned = owned_yuv420p(decoded)
    planes = plane_arrays(owned)
    planes[0][:60] = 16  # "redact" the top half in place
    assert holds(owned, planes)
    assert (owned.to_ndarray(format="gray")[:60] <= 1).all()  # limited-range black: the frame has it
    assert not (decoded.to_ndarray(format="gray")[:60] <= 1).all()  # the decoder's frame never changes
    # Planes that are not views of the frame (copies, crops) are never taken for it.
    assert not holds(owned, tuple(p.copy() for p in planes))
    assert not holds(owned, (planes[0][:118, :158], planes[1][:59, :79], planes[2][:59, :79]))


def test_view_is_small_even_and_the_same_picture(sprites):
    rgb = np.ascontiguousarray(sprites[0].image)  # 300 x 300
    planes = rgb_to_planes(np.ascontiguousarray(np.pad(rgb, ((0, 1), (0, 61), (0, 0)), mode="edge")))  # 361 x 301
    w, h = view_size(361, 301, 160)
    assert (w, h) == (160, 134) and view_size(361, 301, None) == (360, 300)
    view = planes_to_view(planes, (w, h))
    assert view.shape == (134, 160, 3)
    expected = planes_to_rgb(planes)
    expected = cv2.resize(expected, (160, 134), interpolation=cv2.INTER_AREA)
    assert np.abs(view.astype(int) - expected).mean() < 4


def test_shrink_averages_instead_of_aliasing():
    """A 1-pixel checkerboard shrunk 3x is flat grey; sampling every 3rd pixel would not be."""
    board = (np.indices((1080, 1920)).sum(0) % 2 * 255).astype(np.uint8)
    small = shrink(board, (640, 360))
    assert small.shape == (360, 640)
    assert abs(float(small.mean()) - 127.5) < 2 and small.std() < 8
