"""Faces per frame and their heights in ground-truth files (mkclip.py's format, or the
crowd clips'), to compare a generated crowd with a real one.

    python bench/faces_per_frame.py [GT_JSON ...] [--crowd] [--min-share 0.5]

``--crowd`` also makes the dense and sparse crowd clips of ``blurcam bench`` (720p, 90
frames) and measures their GT. A real photo goes through ../shared/tools/mkclip.py first:
``mkclip.py PHOTO GT KEY clip.mp4`` writes ``clip.gt.json``. Faces less than
``--min-share`` inside the frame are not counted (mkclip.py's scorers skip them too).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def describe(name: str, gt: dict, min_share: float) -> str:
    frames = [[b for b in boxes if len(b) < 5 or b[4] >= min_share] for boxes in gt["frames"]]
    counts = np.array([len(f) for f in frames])
    heights = np.array([b[3] - b[1] for f in frames for b in f]) if counts.sum() else np.zeros(1)
    p5, p50, p95 = np.percentile(heights, [5, 50, 95])
    return (f"| {name} | {len(frames)} | {counts.min()} | {counts.mean():.0f} | {counts.max()} | "
            f"{p5:.0f} / {p50:.0f} / {p95:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gt", nargs="*", type=Path)
    ap.add_argument("--crowd", action="store_true")
    ap.add_argument("--min-share", type=float, default=0.5)
    args = ap.parse_args()
    print("| clip | frames | faces per frame min | mean | max | face height px p5 / p50 / p95 |")
    print("|---|---|---|---|---|---|")
    for path in args.gt:
        print(describe(path.name.removesuffix(".gt.json"), json.loads(path.read_text()), args.min_share))
    if args.crowd:
        from blurcam.benchmark import CROWD_SPARSE_FACES, crowd_clip

        with tempfile.TemporaryDirectory() as tmp:
            for name, faces in (("crowd, dense", None), ("crowd, sparse", CROWD_SPARSE_FACES)):
                clip = crowd_clip(Path(tmp) / "c.mp4", faces=faces)
                print(describe(name, json.loads(clip.with_name("c.gt.json").read_text()), args.min_share))


if __name__ == "__main__":
    main()
