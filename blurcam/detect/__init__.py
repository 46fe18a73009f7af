"""Face detectors behind one protocol, the quality presets, and the factory.

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

    ``max_side`` (optional): the longest image side, in pixels, the detector makes use
    of (its network input size), or None (or absent) for full resolution. The pipeline
    gives it a view of each frame scaled to that size (never larger than the frame,
    apart from rounding to even sizes): a smaller view is cheaper to make and to pass.
    """

    name: str
    max_side: int | None

    def detect(self, image: np.ndarray, timestamp_ms: int) -> Faces: ...

    def close(self) -> None: ...


def view_side(detector: Detector) -> int | None:
    """The long side, in pixels, of the views to give ``detector`` (None: full size).
    A detector that does not say gets full-size views."""
    return getattr(detector, "max_side", None)


def largest_side(detectors) -> int | None:
    """The view size that serves all of ``detectors``: the largest any asks for."""
    sides = [view_side(d) for d in detectors]
    return None if not sides or None in sides else max(sides)


# Quality presets: MediaPipe BlazeFace (near faces) plus CenterFace passes sized for
# crowds. Each CenterFace pass: network input long side (px), threshold for faces at
# least small_px tall in the network input, a lower threshold below that (a false
# small box costs little area; a missed small face is a leak), and min_px to leave
# small faces to a finer pass. Numbers from bench/accuracy.py on WIDER (README).
# MediaPipe full range runs in every preset (close, large faces; 5 ms a frame). Short
# range does not: on WIDER it found no face CenterFace missed, and below 0.75 it puts
# boxes 3-4x too large on faces it was not made for (0.60 on a 72 px face in tests).
# Its boxes that duplicate a CenterFace box are dropped (see Ensemble).
# "every": CenterFace runs on every k-th frame, persistence carries its boxes between.
# "encode_threads": True for the detector-bound CenterFace presets: the encoder gets the
# cores onnxruntime does not use, at least one (2 cores, 1080p balanced, one run: 14.8
# -> 15.9 fps, peak RSS -60 MB); fast and live keep FFmpeg's choice.
PRESETS: dict[str, dict] = {
    # MediaPipe alone: close-up faces only (interviews, a speaker); misses crowds.
    "fast": {"mediapipe": 0.5, "every": 1, "encode_threads": False, "centerface": []},
    # Crowd-grade at real time: int8 CenterFace at 768 px on every frame (a stream has no
    # look-back, so a face that appears on a frame CenterFace skipped would be sent
    # unredacted). WIDER, int8: all 0.878, easy 0.967 (448 px fp32 was 0.543 / 0.939).
    # Sources smaller than 768 px run at their own size: enlarging costs real time.
    "live": {"mediapipe": 0.6, "every": 1, "encode_threads": False, "centerface": [
        dict(input_long_side=768, threshold=0.1, small_threshold=0.05, small_px=32, upscale=False)]},
    # The default for files: crowd-grade recall (WIDER targets), CenterFace every 2nd frame.
    # Thresholds re-tuned for the int8 model, whose scores run a little lower than fp32's
    # (fp32's 0.1/0.06 + 0.15 lost 0.005-0.007 of coverage in four columns with int8).
    "balanced": {"mediapipe": 0.6, "every": 2, "encode_threads": True, "centerface": [
        dict(input_long_side=1024, threshold=0.09, small_threshold=0.05, small_px=32, box_scale=0.92),
        dict(input_long_side=512, threshold=0.13, min_px=16, box_scale=0.92)]},
    # Faces under 16 px too; about 3x balanced's detection cost. Thresholds lowered for
    # int8 as balanced's were (fp32's 0.1/0.05 + 0.15 lost 0.005-0.009 per column).
    "thorough": {"mediapipe": 0.6, "every": 1, "encode_threads": True, "centerface": [
        dict(input_long_side=1536, threshold=0.09, small_threshold=0.045, small_px=32),
        dict(input_long_side=768, threshold=0.13, min_px=24)]},
}
BACKENDS = ("mediapipe", "mediapipe-full", "mediapipe-short", "centerface")
DEFAULT_FILE_PRESET = "balanced"
DEFAULT_LIVE_PRESET = "live"


def make_detector(name: str = DEFAULT_FILE_PRESET, *, threshold: float | None = None,
                  centerface_every: int | None = None, adaptive: bool = False) -> Detector:
    """Build a detector by CLI name: a preset (live, fast, balanced, thorough) or one backend.

    threshold: for a single backend, its minimum score in [0, 1] (default: MediaPipe
    0.5, CenterFace 0.2). For a preset, it replaces the threshold of the CenterFace
    passes for faces above their small-face size (the small-face threshold is capped
    at it); MediaPipe keeps the preset's.
    centerface_every: run the CenterFace passes on every k-th frame only (MediaPipe
    runs on every frame); None takes the preset's ``every`` (default 1).
    adaptive: a preset's CenterFace passes can have their cadence changed while running
    (``ensemble.set_every``; a delayed live stream does).
    """
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UsageError(f"threshold must be in [0, 1], got {threshold}")
    from .centerface import CenterFaceDetector
    from .ensemble import Ensemble, EveryNth
    from .mediapipe import MediaPipeDetector

    if name in PRESETS:
        preset = PRESETS[name]
        if not preset["centerface"]:
            return MediaPipeDetector("full", threshold=preset["mediapipe"] if threshold is None else threshold)
        members: list[Detector] = []
        every = centerface_every or preset.get("every", 1)
        for options in preset["centerface"]:
            options = dict(options)
            if threshold is not None:
                options["threshold"] = threshold
                options["small_threshold"] = min(options.get("small_threshold", threshold), threshold)
            cf = CenterFaceDetector(**options)
            members.append(EveryNth(cf, every) if every > 1 or adaptive else cf)
        return Ensemble(members, name=name, secondary=[MediaPipeDetector("full", threshold=preset["mediapipe"])])
    mp_threshold = 0.5 if threshold is None else threshold
    if name == "mediapipe":
        return Ensemble([MediaPipeDetector("full", threshold=mp_threshold),
                         MediaPipeDetector("short", threshold=mp_threshold)], name=name)
    if name == "mediapipe-full":
        return MediaPipeDetector("full", threshold=mp_threshold)
    if name == "mediapipe-short":
        return MediaPipeDetector("short", threshold=mp_threshold)
    if name == "centerface":
        return CenterFaceDetector(threshold=0.2 if threshold is None else threshold)
    raise UsageError(f"unknown detector {name!r}; choose a preset ({', '.join(PRESETS)}) "
                     f"or a backend ({', '.join(BACKENDS)})")
