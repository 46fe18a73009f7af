"""Detector views: each frame as the detector sees it, and its boxes back in frame pixels.

A detector gets an RGB *view*: the frame as displayed (rotation applied: detectors
expect upright faces), shrunk to the input size its network can use. Boxes it finds
are mapped back through the same rotation and scale to stored-frame pixels.
"""
from __future__ import annotations

import numpy as np

from .detect import Detector, view_side
from .io.convert import planes_to_view, view_size
from .types import Faces, Frame


def quarter_turns(rotation_deg: int) -> int:
    """Counter-clockwise quarter turns (0-3) that show a stored frame as displayed."""
    return round(rotation_deg / 90) % 4


def make_view(frame: Frame, long_side: int | None) -> np.ndarray:
    """The detector's input for ``frame``: (h, w, 3) uint8 RGB as displayed (detectors
    expect upright faces), its long side at most ``long_side`` (None: full size)."""
    view = planes_to_view(frame.planes, view_size(frame.width, frame.height, long_side))
    k = quarter_turns(frame.rotation_deg)
    return np.ascontiguousarray(np.rot90(view, k)) if k else view


def boxes_to_stored(xyxy: np.ndarray, k: int, stored_wh: tuple[int, int]) -> np.ndarray:
    """Map (N, 4) boxes found on ``np.rot90(image, k)`` back to the stored image,
    whose (width, height) is ``stored_wh``."""
    if k == 0 or len(xyxy) == 0:
        return xyxy
    w, h = stored_wh
    x1, y1, x2, y2 = xyxy.T
    if k == 1:  # display (xd, yd) <- stored (w - yd, xd)
        out = np.stack([w - y2, x1, w - y1, x2], axis=1)
    elif k == 2:
        out = np.stack([w - x2, h - y2, w - x1, h - y1], axis=1)
    else:  # k == 3: display (xd, yd) <- stored (yd, h - xd)
        out = np.stack([y1, h - x2, y2, h - x1], axis=1)
    return out.astype(np.float32)


def view_to_frame(faces: Faces, view_shape: tuple[int, ...], k: int, frame_wh: tuple[int, int]) -> Faces:
    """Boxes found on a view (display orientation, ``k`` quarter turns, scaled) -> frame pixels."""
    if len(faces) == 0:
        return faces
    vh, vw = view_shape[:2]
    stored_view_wh = (vw, vh) if k % 2 == 0 else (vh, vw)
    xyxy = boxes_to_stored(faces.xyxy, k, stored_view_wh)
    scale = np.array([frame_wh[0] / stored_view_wh[0], frame_wh[1] / stored_view_wh[1]] * 2, np.float32)
    return Faces((xyxy * scale).astype(np.float32), faces.score, faces.track_id, faces.carried)


def detect_frame(detector: Detector, frame: Frame, view: np.ndarray | None = None) -> Faces:
    """Run ``detector`` on ``view``, the frame's view as ``make_view`` made it for this
    detector (None: made now, from the planes); boxes come back in frame pixels."""
    if view is None:
        view = make_view(frame, view_side(detector))
    faces = detector.detect(view, frame.time_ms)
    return view_to_frame(faces, view.shape, quarter_turns(frame.rotation_deg), (frame.width, frame.height))


def detect_image(detector: Detector, rgb: np.ndarray, time_ms: int) -> Faces:
    """Run ``detector`` on a still (H, W, 3) uint8 RGB image through the same kind of view
    as video frames get (area-averaged to its ``max_side``); boxes in image pixels."""
    import cv2

    height, width = rgb.shape[:2]
    view_wh = view_size(width, height, view_side(detector), even=False)
    view = rgb if view_wh == (width, height) else cv2.resize(rgb, view_wh, interpolation=cv2.INTER_AREA)
    return view_to_frame(detector.detect(np.ascontiguousarray(view), time_ms), view.shape, 0, (width, height))
