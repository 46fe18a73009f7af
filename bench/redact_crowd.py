"""Redaction of a crowd frame: this tree's blurcam.redact beside another revision's, one run.

    python bench/redact_crowd.py [--before main] [--regions 1000 50 10 1] [--repeat 30]

Both implementations redact the same 1280x720 4:2:0 frame (scikit-image's coffee photo) with
the same N random face boxes 16-120 px (overlapping when many), for each N, in every mode, alternating before and
after so load on a shared machine falls on both alike. The "before" module is read with
``git show REV:blurcam/redact.py``. The allocator is tuned as the CLI tunes it (frame-sized
buffers mapped and unmapped each time). Prints median and best wall ms per frame, median CPU
ms (all threads), CPU flags and the load average.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from blurcam import redact as after  # noqa: E402
from blurcam.io.convert import rgb_to_planes  # noqa: E402
from blurcam.memory import tune_allocator  # noqa: E402
from blurcam.synth import background  # noqa: E402


def load_revision(rev: str) -> types.ModuleType:
    """blurcam/redact.py as it is at ``rev``, imported as a module of the blurcam package."""
    source = subprocess.run(["git", "show", f"{rev}:blurcam/redact.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("blurcam._redact_before", f"blurcam/redact.py at {rev}")
    module.__package__ = "blurcam"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:blurcam/redact.py", "exec"), module.__dict__)
    return module


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = set(re.findall(r"\b(avx512_vnni|avx512f|avx2)\b", text))
    model = re.search(r"model name\s*:\s*(.*)", text)
    return f"{model.group(1) if model else '?'}; {os.cpu_count()} CPUs; " + (" ".join(sorted(flags)) or "no AVX2")


def crowd_boxes(n: int, size_wh: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """n square face boxes 16-120 px anywhere in the frame: (n, 4) float32 xyxy."""
    w, h = size_wh
    side = rng.uniform(16, 120, n)
    x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
    return np.stack([x, y, x + side, y + side], axis=1).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="main", help="git revision to compare with (default main)")
    ap.add_argument("--regions", type=int, nargs="+", default=[1000, 50, 10, 1])
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    tune_allocator()
    before = load_revision(args.before)
    planes = rgb_to_planes(background((1280, 720)))
    print(f"cpu: {cpu_flags()}")
    print(f"load average before: {os.getloadavg()}")
    print(f"face boxes 16-120 px (padded 1.5x) on 1280x720 yuv420p; ms per frame, median (best) of {args.repeat}; "
          f"OpenCV threads {cv2.getNumThreads()}")
    for n in args.regions:
        boxes = crowd_boxes(n, (1280, 720), np.random.default_rng(0))
        for mode in after.MODES:
            times, cpu = {"before": [], "after": []}, {"before": [], "after": []}
            for _ in range(args.repeat):
                for name, module in (("before", before), ("after", after)):
                    work = tuple(p.copy() for p in planes)
                    config = module.RedactConfig(mode=mode)
                    started, started_cpu = time.perf_counter(), time.process_time()
                    module.redact_faces(work, boxes, config, np.random.default_rng(1))
                    times[name].append((time.perf_counter() - started) * 1e3)
                    cpu[name].append((time.process_time() - started_cpu) * 1e3)
            b, a = np.array(times["before"]), np.array(times["after"])
            print(f"  {n:5d} {mode:9s} wall: before ({args.before}) {np.median(b):7.2f} ({b.min():.2f})  "
                  f"after {np.median(a):6.2f} ({a.min():.2f})  {np.median(b) / np.median(a):5.1f}x   "
                  f"CPU (all threads): before {np.median(cpu['before']):7.2f}  after {np.median(cpu['after']):6.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
