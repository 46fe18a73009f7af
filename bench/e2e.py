"""End-to-end speed in one run: transcode floor, blurcam per preset, deface.

    python bench/e2e.py [CLIP ...] [--quality fast --quality balanced ...] [--deface PATH] [--before DIR]

Without CLIP, uses the same 10 s 720p clip as ``blurcam bench`` (made from
samples/faces.mp4), a 1080p version of it, and the crowd clips (``--no-crowd`` to skip
them): a dense crowd generated from registry photos (``blurcam.benchmark.crowd_clip``,
about 320 faces 12-60 px per frame, moving camera, exact GT written beside it) and a
sparse clip of the same scene, size, length and camera (40 people, about 10 in a
frame). It then prints CPU per frame, dense over sparse, for each run (target: <= 1.25x
for default ``blur``).

deface conflicts with blurcam's OpenCV (it depends on opencv-python), so install it in
its own venv and pass its command:

    python -m venv /tmp/deface-venv && /tmp/deface-venv/bin/pip install deface==1.5.0 onnxruntime
    python bench/e2e.py --deface /tmp/deface-venv/bin/deface

To measure a change before and after in one run, check out the earlier commit beside
this one and pass it: ``git worktree add /tmp/before HEAD~1 && python bench/e2e.py
--before /tmp/before``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blurcam.benchmark import (CROWD_SPARSE_FACES, crowd_clip, crowd_ratio, format_table,  # noqa: E402
                               run_benchmark, sample_clip)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--quality", action="append", help="preset (repeatable); default fast, balanced")
    ap.add_argument("--deface", help="deface command (default: deface on PATH, if any)")
    ap.add_argument("--no-deface", action="store_true", help="skip deface")
    ap.add_argument("--before", help="a checkout of an earlier blurcam to run each preset from too")
    ap.add_argument("--size", action="append", default=[], metavar="WxH",
                    help="sample clip size (repeatable; default 1280x720 and 1920x1080)")
    ap.add_argument("--no-crowd", action="store_true", help="skip the crowd clips")
    ap.add_argument("--crowd-only", action="store_true", help="only the crowd clips (dense and sparse)")
    ap.add_argument("--crowd-frames", type=int, default=90, help="length of the crowd clips (default 90)")
    args = ap.parse_args()
    import os

    print(f"CPU flags: {' '.join(sorted(_cpu_flags())) or 'neither avx2 nor avx512_vnni'}; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [tuple(map(int, s.split("x"))) for s in args.size or ["1280x720", "1920x1080"]]
        clips = args.clips or ([] if args.crowd_only else
                               [sample_clip(Path(tmp) / f"{h}p.mp4", size_wh=(w, h)) for w, h in sizes])
        crowd = {}
        if (not args.clips or args.crowd_only) and not args.no_crowd:
            crowd = {"sparse": crowd_clip(Path(tmp) / "crowd_sparse.mp4", frames=args.crowd_frames,
                                          faces=CROWD_SPARSE_FACES),
                     "dense": crowd_clip(Path(tmp) / "crowd_dense.mp4", frames=args.crowd_frames)}
        measured = {}
        for clip in [*clips, *crowd.values()]:
            results = run_benchmark(clip, args.quality or ["fast", "balanced"], deface_exe=args.deface,
                                    include_deface=not args.no_deface, before=args.before)
            measured[clip] = results
            print(f"\n{clip.name}\n{format_table(results)}", flush=True)
        if crowd:
            print(f"\ncrowd, dense over sparse (load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}):\n"
                  + crowd_ratio(measured[crowd["sparse"]], measured[crowd["dense"]]), flush=True)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for flag in ("avx2", "avx512_vnni") if f" {flag}" in text}


if __name__ == "__main__":
    main()
