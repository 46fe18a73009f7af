"""Pixels between PyAV frames, the pipeline's 4:2:0 planes, and detector views.

Frames stay in 8-bit 4:2:0 YCbCr from decoder to encoder: redaction writes into the
planes, so the full frame is never converted to RGB and back (at 1080p that round
trip cost about 3 ms a frame and doubled the memory of every buffered frame). Only
the detector's view is RGB, and it is made at the detector's input size: the planes
are downscaled first, then converted, so its cost follows the view, not the frame.
``pytest bench/test_hotloop.py --benchmark-only -k "planes or view"`` times each step.
"""
from __future__ import annotations

import av
import cv2
import numpy as np

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]
COLOR_TAGS = ("color_range", "colorspace", "color_primaries", "color_trc")


def owned_yuv420p(frame: av.VideoFrame) -> av.VideoFrame:
    """A yuv420p VideoFrame with ``frame``'s picture that the pipeline owns and may write into.

    yuv420p is copied as is (the decoder still references its buffers for later
    frames); any other format (10-bit, 4:2:2, 4:4:4, full-range yuvj420p, RGB) is
    converted by swscale to limited-range yuv420p, a new frame already (see
    :func:`color_tags` for how it is then tagged).
    """
    if frame.format.name != "yuv420p":
        full = frame.color_range == 2 or frame.format.name.startswith("yuvj")  # 2: JPEG (full) range
        return frame.reformat(format="yuv420p", src_color_range="JPEG" if full else "MPEG", dst_color_range="MPEG")
    owned = av.VideoFrame(frame.width, frame.height, "yuv420p")
    for src, dst in zip(plane_arrays(frame), plane_arrays(owned)):
        dst[...] = src
    return owned


def plane_arrays(frame: av.VideoFrame) -> Planes:
    """Writable numpy views (no copy) of a yuv420p VideoFrame's Y, Cb, Cr planes: Y (H, W),
    Cb, Cr (ceil(H/2), ceil(W/2)) uint8, rows possibly padded (strided views)."""
    out = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        out.append(rows[:, :plane.width])
    return out[0], out[1], out[2]


def videoframe_to_planes(frame: av.VideoFrame) -> Planes:
    """Decoded frame -> (Y, Cb, Cr) uint8 arrays of a new yuv420p copy (see :func:`owned_yuv420p`)."""
    return plane_arrays(owned_yuv420p(frame))


def holds(frame: av.VideoFrame, planes: Planes) -> bool:
    """Whether ``planes`` are exactly the views :func:`plane_arrays` gives of ``frame``
    (so encoding ``frame`` encodes ``planes`` as they are now)."""
    return all(arr.__array_interface__["data"][0] == plane.buffer_ptr and arr.shape == (plane.height, plane.width)
               for arr, plane in zip(planes, frame.planes))


_UNSPECIFIED = {"color_range": 0, "colorspace": 2, "color_primaries": 2, "color_trc": 2}  # FFmpeg enums


def color_tags(frame: av.VideoFrame) -> tuple[tuple[str, int], ...]:
    """The colour tags that describe ``frame``'s pixels once made into planes by
    :func:`videoframe_to_planes`, as (name, FFmpeg enum value) pairs.

    yuv420p passes through, so do its tags. A converted YUV format keeps its matrix,
    primaries and transfer but is now limited range (1). RGB sources were converted
    with swscale's default matrix, so nothing is claimed (unspecified).
    """
    tags = {name: int(getattr(frame, name, None) or _UNSPECIFIED[name]) for name in COLOR_TAGS}
    if frame.format.name != "yuv420p":
        tags = dict(_UNSPECIFIED) if frame.format.is_rgb else {**tags, "color_range": 1}
    return tuple(tags.items())


def planes_to_videoframe(planes: Planes, pix_fmt: str = "yuv420p") -> av.VideoFrame:
    """(Y, Cb, Cr) -> new VideoFrame in ``pix_fmt`` (for an encoder)."""
    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, "yuv420p")
    for dst, src in zip(plane_arrays(frame), planes):
        dst[...] = src
    return frame if pix_fmt == "yuv420p" else frame.reformat(format=pix_fmt)


def rgb_to_planes(rgb: np.ndarray) -> Planes:
    """(H, W, 3) uint8 RGB -> (Y, Cb, Cr), BT.601 limited range (OpenCV's I420)."""
    h, w = rgb.shape[:2]
    even = cv2.copyMakeBorder(rgb, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE) if (h | w) % 2 else rgb
    eh, ew = even.shape[:2]
    i420 = cv2.cvtColor(np.ascontiguousarray(even), cv2.COLOR_RGB2YUV_I420).reshape(-1)
    y = i420[:eh * ew].reshape(eh, ew)[:h, :w]
    cb = i420[eh * ew:eh * ew * 5 // 4].reshape(eh // 2, ew // 2)
    cr = i420[eh * ew * 5 // 4:].reshape(eh // 2, ew // 2)
    return np.ascontiguousarray(y), cb.copy(), cr.copy()


def planes_to_rgb(planes: Planes) -> np.ndarray:
    """(Y, Cb, Cr) -> new (H, W, 3) uint8 RGB (BT.601 limited range)."""
    y, cb, cr = planes
    h, w = y.shape
    ch, cw = cb.shape
    if (h, w) != (2 * ch, 2 * cw):
        y = cv2.copyMakeBorder(y, 0, 2 * ch - h, 0, 2 * cw - w, cv2.BORDER_REPLICATE)
    i420 = np.concatenate([y.reshape(-1), cb.reshape(-1), cr.reshape(-1)]).reshape(-1, 2 * cw)
    return np.ascontiguousarray(cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)[:h, :w])


def view_size(width: int, height: int, long_side: int | None, *, even: bool = True) -> tuple[int, int]:
    """(w, h) of a detector view of a width x height frame: the long side at most
    ``long_side`` (None: full size), aspect kept; both even when ``even`` (views made
    from 4:2:0 planes), else a picture that needs no shrinking keeps its size."""
    scale = 1.0 if long_side is None else min(1.0, long_side / max(width, height))
    if not even:
        return max(1, round(width * scale)), max(1, round(height * scale))
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def shrink(plane: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Resize a plane down to ``size_wh`` without aliasing, cheaply: exact 2x2 means
    while it is at least twice too large, then bilinear for the rest (under 2x).

    A single area resize by a non-integer factor is 8-30x slower in OpenCV (1080p to
    1024 px: 2.0 ms against 0.3 ms), and bilinear alone aliases beyond 2x.
    """
    w, h = size_wh
    while plane.shape[1] >= 2 * w and plane.shape[0] >= 2 * h:
        plane = cv2.resize(plane, (plane.shape[1] // 2, plane.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if (plane.shape[1], plane.shape[0]) != (w, h):
        plane = cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR)
    return plane


def planes_to_view(planes: Planes, size_wh: tuple[int, int]) -> np.ndarray:
    """(Y, Cb, Cr) -> (h, w, 3) uint8 RGB at ``size_wh`` (w and h even): each plane is
    shrunk, then the small picture is converted to RGB."""
    w, h = size_wh
    y, cb, cr = planes
    if (w, h) != (y.shape[1], y.shape[0]):  # an odd-sized frame always takes this branch
        y, cb, cr = shrink(y, (w, h)), shrink(cb, (w // 2, h // 2)), shrink(cr, (w // 2, h // 2))
    i420 = np.concatenate([y.reshape(-1), cb.reshape(-1), cr.reshape(-1)]).reshape(-1, w)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
