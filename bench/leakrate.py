"""Leak rate of blurcam's output on moving-camera clips with exact face boxes.

    python bench/leakrate.py CLIPS_DIR LEAKCHECK_PY [--detector balanced ...] [--every K ...]
                             [--track hold_frames=30,growth_per_frame=0.05 ...]

CLIPS_DIR holds clips made by ``../shared/tools/mkclip.py`` (each X.mp4 beside its
X.gt.json); LEAKCHECK_PY is ``../shared/tools/leakcheck.py``. For every detector
configuration, each clip is redacted with ``blurcam.pipeline.redact_file`` into a
temporary folder and scored by leakcheck; the face-frames leaked per height bucket
are summed over clips. Also prints fps (the whole file job, end to end, including
model loading). ``--deface PATH`` scores deface the same way, for comparison.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blurcam.pipeline import PipelineConfig, redact_file  # noqa: E402
from blurcam.track import TrackConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", type=Path)
    ap.add_argument("leakcheck", type=Path)
    ap.add_argument("--detector", action="append",
                    help="preset or backend, NAME[@int8|fp32] (repeatable); default balanced")
    ap.add_argument("--every", action="append", type=int, help="CenterFace every K frames (repeatable)")
    ap.add_argument("--threshold", type=float)
    ap.add_argument("--track", action="append", default=[],
                    help="TrackConfig fields for one more run, FIELD=VALUE[,FIELD=VALUE] (repeatable)")
    ap.add_argument("--deface", help="also score deface (its command; default settings, or --deface-thresh)")
    ap.add_argument("--deface-thresh", type=float, action="append", help="deface --thresh values (repeatable)")
    args = ap.parse_args()
    clips = sorted(p for p in args.clips.glob("*.mp4") if p.with_suffix(".gt.json").exists())
    print("| config | " + " | ".join(["0-24", "24-48", "48-96", "96-up", "all >=24", "bg damaged", "fps"]) + " |")
    print("|---" * 8 + "|")
    try:
        tracks = [(t, _track_config(t)) for t in args.track] or [("", TrackConfig())]
    except KeyError as exc:
        ap.error(f"--track: TrackConfig has no field {exc}")
    except ValueError as exc:
        ap.error(f"--track: {exc}")
    runs = [(f"{d}" + (f" every {k}" if k else "") + (f" {t}" if t else ""), _blurcam(d, k, args.threshold, track))
            for d in args.detector or ["balanced"] for k in args.every or [None] for t, track in tracks]
    if args.deface:
        runs += [(f"deface thresh {t}" if t else "deface", _deface(args.deface, t)) for t in args.deface_thresh or [None]]
    for name, redact in runs:
        leaked, total, damaged, frames, seconds = {}, {}, [], 0, 0.0
        with tempfile.TemporaryDirectory() as tmp:
            for clip in clips:
                out = Path(tmp) / clip.name
                started = time.perf_counter()
                frames += redact(clip, out)
                seconds += time.perf_counter() - started
                res = json.loads(subprocess.run([sys.executable, str(args.leakcheck), str(clip), str(out)],
                                                capture_output=True, text=True, check=True).stdout)
                for bucket, (n_leak, n) in res["by_height"].items():
                    leaked[bucket] = leaked.get(bucket, 0) + n_leak
                    total[bucket] = total.get(bucket, 0) + n
                damaged.append(res["background_damaged"])
        cells = [f"{leaked[b] / max(1, total[b]):.3f} ({leaked[b]}/{total[b]})" for b in leaked]
        big = [b for b in leaked if not b.startswith("0-")]
        rate = sum(leaked[b] for b in big) / max(1, sum(total[b] for b in big))
        print(f"| {name} | " + " | ".join(cells) + f" | {rate:.3f} | {sum(damaged) / len(damaged):.3f} | "
              f"{frames / seconds:.1f} |", flush=True)


def _track_config(spec: str) -> TrackConfig:
    """TrackConfig from ``FIELD=VALUE[,FIELD=VALUE]``; unnamed fields keep their defaults."""
    kinds = {f.name: f.type for f in dataclasses.fields(TrackConfig)}  # "int" or "float"
    overrides = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        kind = kinds[key]
        overrides[key] = float(value) if kind == "float" else int(value)
    return TrackConfig(**overrides)


def _blurcam(detector: str, every: int | None, threshold: float | None, track: TrackConfig):
    """A preset, optionally ``NAME@PRECISION`` (``balanced@fp32``) for CenterFace's model."""
    from blurcam.detect import DetectorConfig

    detector, _, precision = detector.partition("@")
    config = PipelineConfig(detector=DetectorConfig(name=detector, threshold=threshold, centerface_every=every,
                                                    precision=precision or "int8"), track=track)

    def run(clip: Path, out: Path) -> int:
        return redact_file(clip, out, config).frames
    return run


def _deface(exe: str, thresh: float | None):
    """deface with its defaults (CenterFace at full size, threshold 0.2, mask scale 1.3, blur)."""
    def run(clip: Path, out: Path) -> int:
        extra = ["--thresh", str(thresh)] if thresh else []
        subprocess.run([exe, str(clip), "-o", str(out), *extra], capture_output=True, check=True)
        with av.open(str(out)) as c:
            return sum(1 for _ in c.decode(video=0))
    return run

if __name__ == "__main__":
    main()
