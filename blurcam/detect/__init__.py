"""Face detectors behind one protocol, and the factory the pipeline and CLI use.

Every backend converts its own output to :class:`blurcam.types.Faces` (pixel xyxy)
in its adapter; nothing downstream knows which backend ran.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import UsageError
from ..types import Faces


@runtime_checkable
class Detector(Protocol):
    """Finds faces in one RGB image.

    ``detect`` takes an (H, W, 3) uint8 RGB C-contiguous array, which it must not
    modify or keep, and the frame's time in milliseconds (strictly increasing within
    one stream; images use their index). It returns every face at or above the
    detector's threshold, possibly none. It raises on failure: the pipeline then
    obscures the whole frame, it never passes it through.
    """

    name: str

    def detect(self, image: np.ndarray, timestamp_ms: int) -> Faces: ...

    def close(self) -> None: ...


DETECTORS = ("mediapipe", "mediapipe-full", "mediapipe-short")


def make_detector(name: str = "mediapipe", *, threshold: float = 0.5) -> Detector:
    """Build a detector by CLI name; ``threshold`` is the minimum score kept, in [0, 1].

    ``mediapipe``: full-range and short-range BlazeFace together (far and near faces).
    ``mediapipe-full`` / ``mediapipe-short``: one model alone.
    """
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"threshold must be in [0, 1], got {threshold}")
    from .mediapipe import MediaPipeDetector
    from .ensemble import Ensemble

    if name == "mediapipe":
        return Ensemble([MediaPipeDetector("full", threshold=threshold),
                         MediaPipeDetector("short", threshold=threshold)], name=name)
    if name == "mediapipe-full":
        return MediaPipeDetector("full", threshold=threshold)
    if name == "mediapipe-short":
        return MediaPipeDetector("short", threshold=threshold)
    raise UsageError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
