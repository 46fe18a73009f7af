"""CenterFace model files head to head: wall and CPU ms per inference, one process, one run.

    python bench/model_speed.py [FILE.onnx ...] [--size 1024x576] [--threads 2] [--runs 10]
                                [--runtime onnxruntime --runtime openvino]

Default files: models/centerface.onnx (fp32) and models/centerface_int8.onnx. Each file is
loaded in each runtime asked for (OpenVINO only if installed), warmed up once, then timed
on the same random 0..255 input; prints the median of ``--runs`` calls. For comparing
quantization formats, pass other files built from the same fp32 graph.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load(path: Path, runtime: str, threads: int):
    """A callable running the model on a (1, 3, H, W) float32 blob."""
    data = path.read_bytes()
    if runtime == "openvino":
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(data), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": False})
        request = compiled.create_infer_request()
        return lambda blob: request.infer({0: blob})
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return lambda blob: session.run(None, {"input.1": blob})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path,
                    default=[ROOT / "models" / "centerface.onnx", ROOT / "models" / "centerface_int8.onnx"])
    ap.add_argument("--size", default="1024x576")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--runtime", action="append", choices=("onnxruntime", "openvino"))
    args = ap.parse_args()
    from blurcam.detect import installed_runtimes

    w, h = map(int, args.size.split("x"))
    blob = (np.random.default_rng(0).random((1, 3, h, w)) * 255).astype(np.float32)
    print("| file | runtime | wall ms | CPU ms |\n|---|---|---|---|")
    for runtime in args.runtime or installed_runtimes():
        for path in args.files:
            run = load(path, runtime, args.threads)
            run(blob)
            wall, cpu = [], []
            for _ in range(args.runs):
                t0, c0 = time.perf_counter(), time.process_time()
                run(blob)
                wall.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            print(f"| {path.name} | {runtime} | {statistics.median(wall):.1f} | {statistics.median(cpu):.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
