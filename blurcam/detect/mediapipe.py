"""MediaPipe Tasks FaceDetector (BlazeFace) adapter, VIDEO running mode."""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

import numpy as np

from ..errors import DetectorError
from ..models import model_bytes
from ..quiet import native_quiet
from ..types import Faces

# glog/absl and LiteRT print INFO lines on stderr at model load; keep the CLI's stderr for users.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# BlazeFace letterboxes the whole image into its 128 or 192 px square input, so a
# 640 px view loses nothing it could use, and is 4-9x cheaper to make and pass
# than a 720p or 1080p frame.
VIEW_SIDE = 640

MODELS = {
    "short": "face_detection_short_range.tflite",  # 128x128 input: faces within ~2 m, large in frame
    "full": "face_detection_full_range.tflite",  # 192x192 dense: faces up to ~5 m
    "full_sparse": "face_detection_full_range_sparse.tflite",  # same task, sparse weights
}


# Modules that ``import mediapipe`` runs for every task but face detection never uses: the
# drawing helpers pull in matplotlib.pyplot, the audio tasks sounddevice. Together 0.4 s of
# the 0.46 s import, paid on every run (python -X importtime, this machine).
_UNUSED = ("mediapipe.tasks.python.vision.drawing_utils", "mediapipe.tasks.python.vision.drawing_styles",
           "mediapipe.tasks.python.audio")


class _Deferred(importlib.abc.MetaPathFinder):
    """Finds ``names`` where the normal finders would, but with a loader that runs
    each module's code on its first attribute access (importlib.util.LazyLoader)."""

    def __init__(self, names: tuple[str, ...], package_dir: str) -> None:
        self.names, self.package_dir = names, package_dir

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        parts = name.split(".")  # mediapipe.x.y -> <package_dir>/x/y(.py | /__init__.py)
        spec = importlib.machinery.PathFinder.find_spec(name, [os.path.join(self.package_dir, *parts[1:-1])])
        if spec is None or spec.loader is None:
            return None
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def _import_mediapipe():
    """``import mediapipe``, with the modules in _UNUSED loaded only if something uses them."""
    if "mediapipe" in sys.modules:
        return sys.modules["mediapipe"]
    # MediaPipe's C++ (glog, and TFLite/LiteRT) writes warnings straight to stderr, such
    # as "Logging before InitGoogle()" and "Input tensor memory is not aligned" in about
    # one run in six. Both read these at load time; the user's own settings win.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    spec = importlib.util.find_spec("mediapipe")  # locates the package without running it
    if spec is None:
        raise ImportError("No module named 'mediapipe'")
    finder = _Deferred(_UNUSED, (spec.submodule_search_locations or [""])[0])
    sys.meta_path.insert(0, finder)
    try:
        import mediapipe
    finally:
        sys.meta_path.remove(finder)
    return mediapipe


class MediaPipeDetector:
    """BlazeFace through ``mediapipe.tasks.vision.FaceDetector`` in VIDEO mode.

    model: "short", "full" or "full_sparse" (see MODELS).
    threshold: minimum detection confidence in [0, 1].
    The model file is read once and checked against its SHA-256 before loading.
    """

    def __init__(self, model: str = "full", *, threshold: float = 0.5) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
        self.name = f"mediapipe-{model}"
        self.max_side = VIEW_SIDE
        self.model_file = MODELS[model]
        data = model_bytes(self.model_file)
        try:
            mp = _import_mediapipe()
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:
            raise DetectorError(f"mediapipe is not installed: {exc}") from None
        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=data),
            running_mode=vision.RunningMode.VIDEO,
            min_detection_confidence=threshold,
            min_suppression_threshold=0.3,
        )
        with native_quiet(always=True):  # loading: blurcam's own moment
            try:
                self._task = vision.FaceDetector.create_from_options(options)
            except Exception as exc:
                raise DetectorError(f"cannot load {self.model_file}: {exc}") from None
            # The first call logs allocation warnings; make it here, on a blank image.
            self._task.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                 data=np.zeros((64, 64, 3), np.uint8)), 0)
        self._last_ms = 0

    def detect(self, image: np.ndarray, timestamp_ms: int) -> Faces:
        # MediaPipe demands strictly increasing timestamps; pts can repeat or start at 0.
        self._last_ms = max(self._last_ms + 1, int(timestamp_ms) + 1)
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=image)
        with native_quiet():  # its rare native log line (blurcam.quiet)
            result = self._task.detect_for_video(mp_image, self._last_ms)
        n = len(result.detections)
        if n == 0:
            return Faces.empty()
        xyxy = np.empty((n, 4), np.float32)
        score = np.empty(n, np.float32)
        for i, d in enumerate(result.detections):  # a handful per frame: a Python loop is fine here
            b = d.bounding_box
            xyxy[i] = (b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height)
            score[i] = d.categories[0].score if d.categories else 1.0
        return Faces.from_xyxy(xyxy, score)

    def close(self) -> None:
        task, self._task = getattr(self, "_task", None), None
        if task is not None:
            with native_quiet(always=True):
                task.close()
