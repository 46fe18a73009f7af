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
verify's measure (``blurcam.newsroom.verify.measure``) is run on every frame of every output,
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
KINDS = [f"blurcam-{p}" for p in PRESETS] + ["deface", "deface-t0.1", "raw-on-purpose", "one-raw", "raw"]
SIZES = (24, 48)
RESTORED_FRAMES = range(30, 60)


def blurcam(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "blurcam", *args], env=env, capture_output=True, text=True)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def follow(gt: list[np.ndarray], box: np.ndarray, frames: range) -> dict[int, np.ndarray]:
    """The GT boxes of the face ``box`` (x1, y1, x2, y2 at ``frames[0]``) on each of
    ``frames``, linked frame to frame by the best overlap (the camera moves)."""
    from blurcam.boxes import box_iou

    out, prev = {}, np.asarray(box, np.float32)[:4]
    for i in frames:
        cand = gt[i][:, :4]
        if not len(cand):
            break
        iou = box_iou(prev[None], cand)[0]
        if iou.max() < 0.2:
            break
        prev = out[i] = cand[int(iou.argmax())]
    return out


def restore_faces(input_path: Path, redacted_path: Path, dest: Path, faces: list[dict[int, np.ndarray]]) -> None:
    """Write ``redacted_path`` with the input's pixels pasted back inside each face's
    boxes (``faces``: per face, frame -> x1, y1, x2, y2), grown 1.3x: faces left raw."""
    from blurcam.synth import write_clip

    raw, red = decode(input_path), decode(redacted_path)
    h, w = raw[0].shape[:2]
    for face in faces:
        for i, (x1, y1, x2, y2) in face.items():
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
        gt = gt_frames(clip)
        boxes = gt[RESTORED_FRAMES[0]]
        full = boxes[boxes[:, 4] >= 0.99]
        largest = full[np.argsort(-(full[:, 3] - full[:, 1]))[:3], :4]
        restore_faces(clip, out["blurcam-balanced"], dest, [follow(gt, b, RESTORED_FRAMES) for b in largest])
    dest = out["one-raw"] = work / f"{clip.stem}.one-raw.mp4"
    if not dest.exists():  # the exit-code target: one face >= 48 px left raw for 1 s
        gt = gt_frames(clip)
        boxes = gt[RESTORED_FRAMES[0]]
        full = boxes[boxes[:, 4] >= 0.99]
        heights = full[:, 3] - full[:, 1]
        pick = np.argmin(np.where(heights >= 48, heights, np.inf))  # the smallest face of at least 48 px
        restore_faces(clip, out["blurcam-balanced"], dest, [follow(gt, full[pick], RESTORED_FRAMES)])
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
    from blurcam.newsroom.verify import VerifyConfig

    base = VerifyConfig()
    # One detection pass per input frame at the lowest threshold swept; each output is
    # then measured against the same boxes (verify finds faces in INPUT only).
    features = {}  # (clip, kind) -> per frame (N, 6): height, score, detail@inner, detail@0.8, at edge, aligned
    for clip in a.clips:
        t0 = time.perf_counter()
        per_kind = measure_clip(clip, outputs[clip], VerifyConfig(threshold=0.05))
        for kind, frames in per_kind.items():
            features[clip, kind] = frames
        print(f"{clip.name}: measured in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    refs = {(clip, kind): referee(clip, path, a.leakcheck, a.work) for clip in a.clips
            for kind, path in outputs[clip].items()}
    print(f"verify's measure vs the referee, every frame of {len(a.clips)} clips x 90 frames, verify's defaults "
          f"(threshold {base.threshold}, residual_score {base.residual_score}, from {base.large_face_px} px "
          f"{base.large_residual_score}, detail_limit {base.detail_limit}, inner {base.inner}):")
    print(table(features, refs, a.clips, base))
    if a.sweep:
        variants = [dict(residual_score=r, large_residual_score=lr) for r in (0.1, 0.2, 0.3, 0.5)
                    for lr in (0.1, 0.15, 0.2, 0.3) if lr <= r]
        variants += [dict(inner=0.8), dict(min_aligned=-1.0), dict(min_aligned=0.5), dict(min_aligned=0.7),
                     dict(detail_limit=0.4), dict(detail_limit=0.6), dict(edge_doubtful=False)]
        for v in variants:
            print(f"\n{v}:")
            print(table(features, refs, a.clips, base, brief=True, **v))
    if not a.no_timing:
        timing(a.clips, outputs, refs, a.work)


def measure_clip(clip: Path, outputs: dict[str, Path], config) -> dict[str, list[np.ndarray]]:
    """Per output kind, per frame: (N, 6) float array of INPUT's faces at least
    ``config.min_face_px`` high: box height, score, detail kept in the inner box
    (``config.inner``) and in the referee's inner 80 % (NaN: nothing to measure),
    whether the box touches the frame's edge, and how aligned the bands are (inner box)."""
    from blurcam.detail import detail_kept, detail_measure, to_gray
    from blurcam.newsroom.verify.measure import FaceFinder, touches_edge

    frames_in = decode(clip)
    cache = Path(outputs["blurcam-balanced"]).with_name(f"{clip.stem}.found-t{config.threshold}.npz")
    if cache.exists():
        z = np.load(cache)
        found = [(z[f"b{i}"], z[f"s{i}"]) for i in range(len(frames_in))]
    else:
        finder = FaceFinder(config)
        found = [finder.find(f, 0) for f in frames_in]
        finder.close()
        np.savez(cache, **{f"b{i}": b for i, (b, _) in enumerate(found)}, **{f"s{i}": s for i, (_, s) in enumerate(found)})
    size_wh = frames_in[0].shape[1::-1]
    grays_in = [to_gray(f) for f in frames_in]
    del frames_in
    result = {}
    for kind, path in outputs.items():
        rows = []
        with av.open(str(path)) as c:
            for i, frame in enumerate(c.decode(video=0)):
                g_out = to_gray(frame.to_ndarray(format="rgb24"))
                boxes, scores = found[i]
                h = boxes[:, 3] - boxes[:, 1]
                keep = h >= config.min_face_px
                boxes, scores, h = boxes[keep], scores[keep], h[keep]
                edge = touches_edge(boxes, size_wh)
                row = []
                for b, sc, hh, e in zip(boxes, scores, h, edge):
                    m = detail_measure(grays_in[i], g_out, b, inner=config.inner)
                    row.append((hh, sc, np.nan if m is None else m[0], detail_kept(grays_in[i], g_out, b, inner=0.8),
                                e, np.nan if m is None else m[1]))
                rows.append(np.array([[np.nan if v is None else float(v) for v in r] for r in row],
                                     np.float64).reshape(-1, 6))
        result[kind] = rows
    return result


def calls(frames: list[np.ndarray], min_h: float, config, *, inner: bool = True, edge_doubtful: bool = True) -> set[int]:
    """Frames verify calls residual (``blurcam.newsroom.verify.measure.judge``): a face at least
    ``min_h`` high judged residual."""
    from blurcam.newsroom.verify.measure import judge

    col = 2 if inner else 3
    said = set()
    for i, f in enumerate(frames):
        if not len(f):
            continue
        big = f[:, 0] >= min_h
        edge = f[:, 4] > 0 if edge_doubtful else np.zeros(len(f), bool)
        aligned = f[:, 5] if inner else np.ones(len(f))  # the 80 % column is the plain projection
        residual, _ = judge(f[:, 0], f[:, 1], f[:, col], aligned, edge, config)
        if (residual & big & (f[:, 1] >= config.threshold)).any():
            said.add(i)
    return said


def table(features, refs, clips, base, *, brief: bool = False, edge_doubtful: bool = True, **change) -> str:
    import dataclasses

    inner = change.pop("inner", base.inner) == base.inner
    config = dataclasses.replace(base, **change)
    lines = ["| output | face height | frames verify calls residual | frames that really leak | both "
             "| precision | recall |", "|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        for h in SIZES:
            v = r = both = 0
            for clip in clips:
                if (clip, kind) not in features:
                    continue
                said = calls(features[clip, kind], h, config, inner=inner, edge_doubtful=edge_doubtful)
                real = refs[clip, kind][h]
                v, r, both = v + len(said), r + len(real), both + len(said & real)
            if v == r == 0 and brief:
                continue
            p = f"{both / v:.2f}" if v else "-"
            rc = f"{both / r:.2f}" if r else "-"
            lines.append(f"| {kind} | >= {h} px | {v} | {r} | {both} | {p} | {rc} |")
    return "\n".join(lines)


def timing(clips, outputs, refs, work: Path) -> None:
    """Default blur and default verify of each clip, as processes, back to back; and
    default verify's exit on the clean balanced output and on one face left raw."""
    print("\ndefault `blurcam blur` (balanced) vs default `blurcam verify`, back to back, 2-core machine shared:")
    print("| clip | blur s | verify s (clean output) | verify exit, clean | referee: frames leaking >= 48 px "
          "| verify exit, one face raw 1 s | load avg |")
    print("|---|---|---|---|---|---|---|")
    for clip in clips:
        tmp = work / f"{clip.stem}.timing-blur.mp4"
        tmp.unlink(missing_ok=True)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        r = blurcam("blur", str(clip), str(tmp), "--quiet")
        blur_s = time.perf_counter() - t0
        tmp.unlink(missing_ok=True)
        t0 = time.perf_counter()
        clean = blurcam("verify", str(clip), str(outputs[clip]["blurcam-balanced"]), "--quiet")
        verify_s = time.perf_counter() - t0
        leaky = blurcam("verify", str(clip), str(outputs[clip]["one-raw"]), "--quiet")
        print(f"| {clip.stem} | {blur_s:.1f} | {verify_s:.1f} | {clean.returncode} | "
              f"{len(refs[clip, 'blurcam-balanced'][48])} | {leaky.returncode} | {load:.1f} |")
        for x in (r, clean, leaky):
            if x.returncode not in (0, 22):
                print("   ", x.stderr.strip().splitlines()[-1:])


if __name__ == "__main__":
    main()
