"""End-to-end speed in one run: transcode floor, blurcam per preset, deface.

    python bench/e2e.py [CLIP ...] [--quality fast --quality balanced ...] [--deface PATH] [--before DIR]

Without CLIP, uses the same 10 s 720p clip as ``blurcam bench`` (made from
samples/faces.mp4) and a 1080p version of it. deface conflicts with blurcam's OpenCV
(it depends on opencv-python), so install it in its own venv and pass its command:

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

from blurcam.benchmark import format_table, run_benchmark, sample_clip  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--quality", action="append", help="preset (repeatable); default fast, balanced")
    ap.add_argument("--deface", help="deface command (default: deface on PATH, if any)")
    ap.add_argument("--no-deface", action="store_true", help="skip deface")
    ap.add_argument("--before", help="a checkout of an earlier blurcam to run each preset from too")
    ap.add_argument("--size", action="append", default=[], metavar="WxH",
                    help="sample clip size (repeatable; default 1280x720 and 1920x1080)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [tuple(map(int, s.split("x"))) for s in args.size or ["1280x720", "1920x1080"]]
        clips = args.clips or [sample_clip(Path(tmp) / f"{h}p.mp4", size_wh=(w, h)) for w, h in sizes]
        for clip in clips:
            results = run_benchmark(clip, args.quality or ["fast", "balanced"], deface_exe=args.deface,
                                    include_deface=not args.no_deface, before=args.before)
            print(f"\n{clip.name}\n{format_table(results)}", flush=True)


if __name__ == "__main__":
    main()
