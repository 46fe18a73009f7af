"""Where a preset's time goes on one clip: process CPU per frame and each detector's wall time.

    python bench/cpu_split.py CLIP [--quality balanced] [--floor]

Runs ``redact_file`` once in this process, timing every call of each detector class
(CenterFace, MediaPipe) on the detector thread, and prints fps, CPU seconds per wall
second (2.0 = both cores busy on a 2-core machine), CPU ms per frame and detector ms
per frame. ``--floor`` also reports the transcode floor's CPU per frame on the clip.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blurcam.benchmark import transcode_floor  # noqa: E402
from blurcam.detect import DetectorConfig, centerface, mediapipe  # noqa: E402
from blurcam.memory import tune_allocator  # noqa: E402
from blurcam.pipeline import PipelineConfig, redact_file  # noqa: E402


def _timed(cls, key: str, totals: dict) -> None:
    inner = cls.detect

    def detect(self, image, timestamp_ms):
        started = time.perf_counter()
        try:
            return inner(self, image, timestamp_ms)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - started

    cls.detect = detect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--quality", default="balanced")
    ap.add_argument("--floor", action="store_true")
    args = ap.parse_args()
    tune_allocator()  # as the CLI does
    if args.floor:
        wall, cpu = time.perf_counter(), time.process_time()
        frames = transcode_floor(str(args.clip))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"floor: {frames / wall:.1f} fps, cpu/wall {cpu / wall:.2f}, cpu {cpu / frames * 1000:.1f} ms/frame")
    totals: dict[str, float] = {}
    _timed(centerface.CenterFaceDetector, "centerface", totals)
    _timed(mediapipe.MediaPipeDetector, "mediapipe", totals)
    with TemporaryDirectory() as tmp:  # holds the redacted output only
        wall, cpu = time.perf_counter(), time.process_time()
        stats = redact_file(args.clip, Path(tmp) / f"out{args.clip.suffix}", PipelineConfig(detector=DetectorConfig(name=args.quality)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    detectors = ", ".join(f"{k} {v / stats.frames * 1000:.1f} ms/frame" for k, v in totals.items())
    print(f"{args.quality}: {stats.frames / wall:.1f} fps, cpu/wall {cpu / wall:.2f}, "
          f"cpu {cpu / stats.frames * 1000:.1f} ms/frame; detector wall time: {detectors}")


if __name__ == "__main__":
    main()
