"""A local preview window of the redacted stream (what viewers will see)."""
from __future__ import annotations

import os
import sys

from ..errors import SinkError
from .convert import planes_to_rgb
from ..types import Frame


class PreviewSink:
    """Shows each frame it is given with OpenCV's ``imshow``; the pipeline only hands it
    redacted frames. Call from one thread (the pipeline's caller thread)."""

    def __init__(self, title: str = "blurcam: redacted output") -> None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("--preview needs a display (DISPLAY or WAYLAND_DISPLAY is not set)")
        import cv2

        self._cv2 = cv2
        self.title = title
        self.frames_sent = 0

    def write_frame(self, frame: Frame) -> None:
        self._cv2.imshow(self.title, planes_to_rgb(frame.planes)[:, :, ::-1])
        self._cv2.waitKey(1)  # lets the window draw; key presses are ignored
        self.frames_sent += 1

    def write_audio(self, packet) -> None:
        pass

    def commit(self) -> None:
        self.abort()

    def abort(self) -> None:
        try:
            self._cv2.destroyWindow(self.title)
        except Exception:  # the window may already be gone
            pass
