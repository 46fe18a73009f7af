"""Calibrate ``blurcam verify`` against exact face ground truth (issue 19).

    python bench/verify_calibration.py WORK_DIR CLIP.mp4... --leakcheck ../shared/tools/leakcheck.py
                                       [--deface ../venv-deface/bin/deface] [--sweep]

Each CLIP is made by ``../shared/tools/mkclip.py`` from a WIDER crowd photo (X.mp4 beside
its X.gt.json: exact per-frame face boxes); nothing of it is ever committed. For every
clip it writes these outputs into WORK_DIR (kept, so a rerun only measures):

  blurcam-<preset>   ``blurcam blur --quality <preset>`` (balanced, live, fast)
  deface, deface-t0.1 deface 1.5 at its default threshold and at ``--thresh 0.1``
  raw-on-purpose     blurcam balanced's output with the 3 largest GT faces of frame 30
                     pasted back from the input for frames 30-59 (1 s at 30 fps)
  raw                the input itself

The referee is ``leakcheck.py --frames-min-h H`` (a face leaks in a frame when over half
of its band-passed detail survives): the frames with a leaked face >= 24 px and >= 48 px.
verify's measure (``blurcam.verify.measure``) is run on every frame of every output,
its faces detected once per input frame, and its per-frame calls (a residual face at
least H px high) are compared with the referee's: precision and recall per output kind
and face size. ``--sweep`` also prints them for other thresholds. Finally the default
``blurcam verify`` command (and the default ``blurcam blur``) is timed on the clean
balanced output and on the raw-on-purpose one, as separate processes, one after the other.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRESETS = ("balanced", "live", "fast")
KINDS = [f"blurcam-{p}" for p in PRESETS] + ["deface", "deface-t0.1", "raw-on-purpose", "raw"]
SIZES = (24, 48)
RESTORED_FRAMES = range(30, 60)


def blurcam(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "blurcam", *args], env=env, capture_output=True, text=True)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def restore_faces(input_path: Path, redacted_path: Path, dest: Path, boxes_xyxy: np.ndarray,
                  frames: range) -> None:
    """Write ``redacted_path`` with the input's pixels pasted back inside ``boxes_xyxy``
    ((N, 4) pixels, the face boxes grown 1.3x) on ``frames``: faces left raw on purpose."""
    from blurcam.synth import write_clip

    raw, red = decode(input_path), decode(redacted_path)
    h, w = raw[0].shape[:2]
    for i in frames:
        for x1, y1, x2, y2 in boxes_xyxy:
            cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, 1.3 * (x2 - x1), 1.3 * (y2 - y1)
            xa, ya = max(0, int(cx - bw / 2)), max(0, int(cy - bh / 2))
            xb, yb = min(w, int(np.ceil(cx + bw / 2))), min(h, int(np.ceil(cy + bh / 2)))
            red[i][ya:yb, xa:xb] = raw[i][ya:yb, xa:xb]
    write_clip(dest, red, audio=False)


def gt_frames(clip: Path) -> list[np.ndarray]:
    gt = json.loads(clip.with_suffix(".gt.json").read_text())
    return [np.array(f, np.float32).reshape(-1, 5) for f in gt["frames"]]


def make_outputs(clip: Path, work: Path, deface: str | None) -> dict[str, Path]:
    """Every output kind of ``clip`` (made once; existing ones are kept)."""
    out = {}
    for preset in PRESETS:
        dest = out[f"blurcam-{preset}"] = work / f"{clip.stem}.blurcam-{preset}.mp4"
        if not dest.exists():
            r = blurcam("blur", str(clip), str(dest), "--quality", preset, "--quiet")
            if r.returncode:
                raise SystemExit(f"blur {preset} failed: {r.stderr}")
    if deface:
        for kind, extra in (("deface", []), ("deface-t0.1", ["--thresh", "0.1"])):
            dest = out[kind] = work / f"{clip.stem}.{kind}.mp4"
            if not dest.exists():
                subprocess.run([deface, str(clip), "-o", str(dest), *extra], check=True, capture_output=True)
    dest = out["raw-on-purpose"] = work / f"{clip.stem}.raw-on-purpose.mp4"
    if not dest.exists():
        boxes = gt_frames(clip)[RESTORED_FRAMES[0]]
        full = boxes[boxes[:, 4] >= 0.99]
        largest = full[np.argsort(-(full[:, 3] - full[:, 1]))[:3], :4]
        restore_faces(clip, out["blurcam-balanced"], dest, largest, RESTORED_FRAMES)
    out["raw"] = clip
    return out


def referee(clip: Path, output: Path, leakcheck: Path, work: Path) -> dict[int, set[int]]:
    """Frames with a leaked face at least H px high, per H in SIZES (cached in WORK_DIR)."""
    cache = work / f"{output.name}.referee.json"
    if cache.exists():
        data = json.loads(cache.read_text())
    else:
        data = {}
        for h in SIZES:
            r = subprocess.run([sys.executable, str(leakcheck), str(clip), str(output), "--frames-min-h", str(h)],
                               capture_output=True, text=True, check=True)
            data[str(h)] = json.loads(r.stdout)
        cache.write_text(json.dumps(data))
    return {h: set(data[str(h)]["leaky_frames"]) for h in SIZES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("clips", type=Path, nargs="+")
    ap.add_argument("--leakcheck", type=Path, required=True)
    ap.add_argument("--deface", help="deface command (in its own venv: it pulls opencv-python)")
    ap.add_argument("--outputs-only", action="store_true", help="make the outputs and the referee's verdicts, then stop")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--no-timing", action="store_true")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for clip in a.clips:
        t0 = time.perf_counter()
        outputs[clip] = make_outputs(clip, a.work, a.deface)
        for kind, path in outputs[clip].items():
            referee(clip, path, a.leakcheck, a.work)
        print(f"{clip.name}: outputs and referee ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if a.outputs_only:
        return


if __name__ == "__main__":
    main()
