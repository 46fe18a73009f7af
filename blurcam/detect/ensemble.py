"""Run several detectors on the same image and keep every box any of them found."""
from __future__ import annotations

import numpy as np

from ..boxes import box_iou
from ..types import Faces
from . import Detector, largest_side, view_side


class Ensemble:
    """Union of several detectors' faces.

    ``detectors`` all count in full. A box from a ``secondary`` detector is dropped
    when it overlaps a primary box by IoU > ``duplicate_iou``: it is the same face,
    already covered (the redaction pads every box 1.5x), and MediaPipe's square
    boxes only add background around it (WIDER: 0.115 -> 0.109 of the image masked,
    no coverage lost). Primary boxes are never merged: scores of different models
    are not comparable, and NMS between them swapped covering boxes for tighter
    ones (-0.001 easy recall on WIDER).
    """

    def __init__(self, detectors: list[Detector], name: str = "ensemble", *,
                 secondary: list[Detector] = (), duplicate_iou: float = 0.5) -> None:
        if not detectors:
            raise ValueError("an ensemble needs at least one detector")
        self.detectors = list(detectors)
        self.secondary = list(secondary)
        self.duplicate_iou = duplicate_iou
        self.name = name
        # Views sized for the primary detectors: a secondary (MediaPipe, which squeezes any
        # view into its 192 px input) works on whatever they get; a view made bigger for it
        # would be shrunk twice for CenterFace (WIDER, live preset: 16-31 px 0.706 -> 0.681).
        self.max_side = largest_side(self.detectors)

    def detect(self, image: np.ndarray, timestamp_ms: int) -> Faces:
        primary = Faces.concat([d.detect(image, timestamp_ms) for d in self.detectors])
        if not self.secondary:
            return primary
        extra = Faces.concat([d.detect(image, timestamp_ms) for d in self.secondary])
        if len(extra) and len(primary):
            extra = extra[box_iou(extra.xyxy, primary.xyxy).max(axis=1) <= self.duplicate_iou]
        return Faces.concat([primary, extra])

    def close(self) -> None:
        for d in (*self.detectors, *self.secondary):
            d.close()


class EveryNth:
    """Runs ``detector`` on every ``every``-th call only, returning no faces between.

    For detection scheduling: an expensive detector every k frames, cheap ones every
    frame, persistence carrying its boxes in between (predicted by their motion and
    grown with time unseen). Frame 0 is always detected. ``every`` may be changed
    between calls (a live run adapts it, see ``set_every``); ``ran`` says whether the
    last call ran the detector.
    """

    def __init__(self, detector: Detector, every: int) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector, self.every = detector, every
        self.name = f"{detector.name}/{every}"
        self.max_side = view_side(detector)
        self._calls = 0
        self.ran = False

    def detect(self, image: np.ndarray, timestamp_ms: int) -> Faces:
        call, self._calls = self._calls, self._calls + 1
        self.ran = call % self.every == 0
        if not self.ran:
            return Faces.empty()
        return self.detector.detect(image, timestamp_ms)

    def close(self) -> None:
        self.detector.close()


def cadenced(detector: Detector) -> list[EveryNth]:
    """The ``EveryNth`` members of ``detector`` (itself, or an Ensemble's primaries):
    the detectors whose cadence a run may change. Empty when it has none."""
    if isinstance(detector, EveryNth):
        return [detector]
    return [d for d in getattr(detector, "detectors", ()) if isinstance(d, EveryNth)]


def set_every(members: list[EveryNth], every: int) -> None:
    """Run ``members`` (from ``cadenced``) on every ``every``-th frame from now on."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    for member in members:
        member.every = every
