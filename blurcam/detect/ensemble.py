"""Run several detectors on the same image and merge their boxes."""
from __future__ import annotations

import cv2
import numpy as np

from ..types import Faces
from . import Detector


def merge_duplicates(faces: Faces, iou: float = 0.5) -> Faces:
    """Drop boxes that overlap a higher-scoring box by more than ``iou``.

    Only for reporting and cost: a box is dropped only when a kept box nearly
    covers the same face, so the redacted area barely changes.
    """
    if len(faces) < 2:
        return faces
    xywh = faces.xyxy.copy()
    xywh[:, 2:] -= xywh[:, :2]
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), faces.score.tolist(), 0.0, iou)
    return faces[np.sort(np.asarray(keep, np.int64).reshape(-1))]


class Ensemble:
    """Union of several detectors' faces, near-duplicates merged."""

    def __init__(self, detectors: list[Detector], name: str = "ensemble") -> None:
        if not detectors:
            raise ValueError("an ensemble needs at least one detector")
        self.detectors = detectors
        self.name = name

    def detect(self, image: np.ndarray, timestamp_ms: int) -> Faces:
        return merge_duplicates(Faces.concat([d.detect(image, timestamp_ms) for d in self.detectors]))

    def close(self) -> None:
        for d in self.detectors:
            d.close()
