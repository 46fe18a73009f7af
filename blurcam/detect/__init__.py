"""Face detectors behind one protocol, the quality presets, and the factory.

Every backend converts its own output to :class:`blurcam.types.Faces` (pixel xyxy)
in its adapter; nothing downstream knows which backend ran.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
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


# CenterFace's two model files (models/README.md), by precision: int8 is the default,
# fp32 the reference. Kept here, not in centerface.py, so that a config can be checked
# without loading OpenCV.
CENTERFACE_MODELS = {"int8": "centerface_int8.onnx", "fp32": "centerface.onnx"}
PRECISIONS = tuple(CENTERFACE_MODELS)
RUNTIMES = ("onnxruntime", "openvino")
# onnxruntime, whether or not OpenVINO is installed (``--runtime openvino`` opts in).
# Measured on a 2-core AVX2 machine, int8: OpenVINO runs CenterFace@1024 alone 6 % faster
# (37.8 vs 40.3 ms, hot loop), but end to end it was faster on one clip and slower on
# another (balanced, 720p: 15.4 vs 13.8 fps on a street clip, 16.4 vs 20.3 on the sample
# clip), equal live (326 vs 332 frames dropped of 1800), and it costs ~90 MB more peak RSS
# and ~0.5 s more startup. So it is kept as an option, not chosen for the user.
DEFAULT_RUNTIME = "onnxruntime"
# The MediaPipe model every preset runs (see PRESETS), and those each single backend runs
# (``centerface``: none, CenterFace alone).
PRESET_MEDIAPIPE = "full"
BACKENDS = {"mediapipe": ("full", "short"), "mediapipe-full": ("full",), "mediapipe-short": ("short",),
            "centerface": ()}
DEFAULT_FILE_PRESET = "balanced"
DEFAULT_LIVE_PRESET = "live"


def installed_runtimes() -> list[str]:
    """The runtimes in RUNTIMES that can be imported here (onnxruntime is a dependency)."""
    import importlib.util

    return [r for r in RUNTIMES if importlib.util.find_spec(r) is not None]


@dataclass(frozen=True, kw_only=True)
class CenterFacePass:
    """One CenterFace pass of a preset: the arguments of
    :class:`blurcam.detect.centerface.CenterFaceDetector` that size and filter it
    (network input long side in pixels, thresholds in [0, 1], box heights in network-input
    pixels; see there)."""

    input_long_side: int
    threshold: float
    small_threshold: float | None = None
    small_px: float = 32
    min_px: float = 0
    upscale: bool = True
    box_scale: float = 1.0

    def __post_init__(self) -> None:
        for label, value in (("threshold", self.threshold), ("small_threshold", self.small_threshold)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must be in [0, 1], got {value}")
        if not 32 <= self.input_long_side <= 8192:
            raise ValueError(f"input_long_side must be in [32, 8192], got {self.input_long_side}")


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A quality preset: MediaPipe full range plus CenterFace passes sized for crowds.

    mediapipe_threshold: MediaPipe's minimum score, in [0, 1] (its boxes that duplicate
        a CenterFace box are dropped, see Ensemble).
    centerface: the CenterFace passes (none: MediaPipe alone).
    every: CenterFace runs on every k-th frame; persistence carries its boxes between.
    encode_threads: give the encoder the cores onnxruntime does not use, at least one
        (for the detector-bound CenterFace presets); False keeps FFmpeg's choice.
    blur_ms: wall ms per 1280x720 frame once started, on 2 cores (README speed table,
        bench/e2e.py: 1000 / "fps after startup"): ``blurcam verify`` checks as many
        frames as cost about what the blur did (blurcam.newsroom.verify.run.default_every).
    """

    name: str
    mediapipe_threshold: float
    centerface: tuple[CenterFacePass, ...] = ()
    every: int = 1
    encode_threads: bool = False
    blur_ms: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.mediapipe_threshold <= 1.0:
            raise ValueError(f"mediapipe_threshold must be in [0, 1], got {self.mediapipe_threshold}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.blur_ms <= 0:
            raise ValueError(f"blur_ms must be > 0, got {self.blur_ms}")


# Quality presets. Each CenterFace pass: network input long side (px), threshold for
# faces at least small_px tall in the network input, a lower threshold below that (a
# false small box costs little area; a missed small face is a leak), and min_px to leave
# small faces to a finer pass. Numbers from bench/accuracy.py on WIDER (README).
# MediaPipe full range runs in every preset (close, large faces; 5 ms a frame). Short
# range does not: on WIDER it found no face CenterFace missed, and below 0.75 it puts
# boxes 3-4x too large on faces it was not made for (0.60 on a 72 px face in tests).
# encode_threads for the CenterFace presets: 2 cores, 1080p balanced, one run: 14.8 ->
# 15.9 fps, peak RSS -60 MB; fast and live keep FFmpeg's choice.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    # MediaPipe alone: close-up faces only (interviews, a speaker); misses crowds.
    Preset(name="fast", mediapipe_threshold=0.5, blur_ms=14.9),
    # Crowd-grade at real time: int8 CenterFace at 768 px on every frame (a stream has no
    # look-back, so a face that appears on a frame CenterFace skipped would be sent
    # unredacted). WIDER, int8: all 0.878, easy 0.967 (448 px fp32 was 0.543 / 0.939).
    # Sources smaller than 768 px run at their own size: enlarging costs real time.
    Preset(name="live", mediapipe_threshold=0.6, blur_ms=30.4, centerface=(
        CenterFacePass(input_long_side=768, threshold=0.1, small_threshold=0.05, small_px=32, upscale=False),)),
    # The default for files: crowd-grade recall (WIDER targets), CenterFace every 2nd frame.
    # Thresholds re-tuned for the int8 model, whose scores run a little lower than fp32's
    # (fp32's 0.1/0.06 + 0.15 lost 0.005-0.007 of coverage in four columns with int8).
    Preset(name="balanced", mediapipe_threshold=0.6, every=2, encode_threads=True, blur_ms=69.0, centerface=(
        CenterFacePass(input_long_side=1024, threshold=0.09, small_threshold=0.05, small_px=32, box_scale=0.92),
        CenterFacePass(input_long_side=512, threshold=0.13, min_px=16, box_scale=0.92))),
    # Faces under 16 px too; about 3x balanced's detection cost. Thresholds lowered for
    # int8 as balanced's were (fp32's 0.1/0.05 + 0.15 lost 0.005-0.009 per column).
    Preset(name="thorough", mediapipe_threshold=0.6, encode_threads=True, blur_ms=244.0, centerface=(
        CenterFacePass(input_long_side=1536, threshold=0.09, small_threshold=0.045, small_px=32),
        CenterFacePass(input_long_side=768, threshold=0.13, min_px=24))),
)}


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """Which detector a run uses and how: every detection setting that changes the output.

    name: a quality preset (see PRESETS) or one backend (see BACKENDS).
    threshold: None keeps the preset's (a backend's own default: MediaPipe 0.5,
        CenterFace 0.2). For a preset it replaces the threshold of the CenterFace passes
        for faces above their small-face size (the small-face threshold is capped at it);
        MediaPipe keeps the preset's, except in ``fast`` (MediaPipe alone), where it is
        MediaPipe's. In [0, 1].
    centerface_every: run a preset's CenterFace passes on every k-th frame only
        (MediaPipe runs on every frame); None: the preset's ``every``.
    precision: CenterFace's model, int8 (faster) or fp32 (the reference).
    runtime: CenterFace's runtime, onnxruntime or openvino (must be installed).

    Unknown names, precisions and runtimes, a runtime that is not installed and a
    threshold outside [0, 1] are UsageErrors, as from the command line.
    """

    name: str = DEFAULT_FILE_PRESET
    threshold: float | None = None
    centerface_every: int | None = None
    precision: str = PRECISIONS[0]
    runtime: str = DEFAULT_RUNTIME

    def __post_init__(self) -> None:
        if self.name not in PRESETS and self.name not in BACKENDS:
            raise UsageError(f"unknown detector {self.name!r}; choose a preset ({', '.join(PRESETS)}) "
                             f"or a backend ({', '.join(BACKENDS)})")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.centerface_every is not None and self.centerface_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.centerface_every}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.runtime not in RUNTIMES:
            raise UsageError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.runtime not in installed_runtimes():
            extra = " (pip install 'blurcam[openvino]')" if self.runtime == "openvino" else ""
            raise UsageError(f"runtime {self.runtime} is not installed{extra}")

    @property
    def preset(self) -> Preset | None:
        """The preset named, or None for a single backend."""
        return PRESETS.get(self.name)

    @property
    def model_files(self) -> tuple[str, ...]:
        """The model files (models/manifest.json names) the detector made from this
        config loads, sorted: what a report or a folder run's fingerprint names."""
        from .mediapipe import MODELS as MEDIAPIPE_MODELS

        preset = self.preset
        mediapipe = (PRESET_MEDIAPIPE,) if preset else BACKENDS[self.name]
        centerface = bool(preset.centerface) if preset else self.name == "centerface"
        files = [MEDIAPIPE_MODELS[m] for m in mediapipe]
        if centerface:
            files.append(CENTERFACE_MODELS[self.precision])
        return tuple(sorted(files))


def make_detector(config: DetectorConfig | str = DEFAULT_FILE_PRESET, *, adaptive: bool = False,
                  **settings) -> Detector:
    """Build the detector ``config`` describes: a preset (MediaPipe full range and the
    preset's CenterFace passes, see PRESETS) or one backend.

    config: a DetectorConfig; or a preset or backend name, with DetectorConfig's other
        fields as keywords (``make_detector("live", centerface_every=1)``).
    adaptive: a preset's CenterFace passes can have their cadence changed while running
        (``ensemble.set_every``; a delayed live stream does).
    """
    if isinstance(config, str):
        config = DetectorConfig(name=config, **settings)
    elif settings:
        config = replace(config, **settings)
    from .centerface import CenterFaceDetector
    from .ensemble import Ensemble, EveryNth
    from .mediapipe import MediaPipeDetector

    threshold, preset = config.threshold, config.preset
    inference = {"precision": config.precision, "runtime": config.runtime}
    if preset is not None:
        if not preset.centerface:
            return MediaPipeDetector(PRESET_MEDIAPIPE,
                                     threshold=preset.mediapipe_threshold if threshold is None else threshold)
        members: list[Detector] = []
        every = config.centerface_every or preset.every
        for centerface_pass in preset.centerface:
            if threshold is not None:
                small = centerface_pass.small_threshold
                centerface_pass = replace(centerface_pass, threshold=threshold,
                                          small_threshold=threshold if small is None else min(small, threshold))
            cf = CenterFaceDetector(**asdict(centerface_pass), **inference)
            members.append(EveryNth(cf, every) if every > 1 or adaptive else cf)
        return Ensemble(members, name=config.name,
                        secondary=[MediaPipeDetector(PRESET_MEDIAPIPE, threshold=preset.mediapipe_threshold)])
    if config.name == "centerface":
        return CenterFaceDetector(threshold=0.2 if threshold is None else threshold, **inference)
    mp_threshold = 0.5 if threshold is None else threshold
    single = [MediaPipeDetector(model, threshold=mp_threshold) for model in BACKENDS[config.name]]
    return single[0] if len(single) == 1 else Ensemble(single, name=config.name)
