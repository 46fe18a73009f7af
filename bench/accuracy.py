"""Redaction coverage and speed of blurcam's detectors on a WIDER FACE style folder.

    python bench/accuracy.py WIDER_DIR [--detector SPEC ...] [--threshold T ...]
                             [--limit N] [--json out.json] [--precision int8|fp32]
                             [--runtime onnxruntime|openvino]

WIDER_DIR is either shared/data/wider-dev (gt.json + images/) or the official WIDER FACE
layout (wider_face_split/wider_face_val_bbx_gt.txt + WIDER_val/images/). The metric is
defined in bench/wider_eval.py. Every detector runs through blurcam's own code path
(the :class:`blurcam.detect.Detector` protocol), once per image, on RGB uint8 pixels.

A detector SPEC is one or more parts joined by "+", run together as an
:class:`~blurcam.detect.ensemble.Ensemble`. A part is ``NAME[@SIZE][:THRESHOLD][/KEY=VALUE,...]``:

* any name :func:`blurcam.detect.make_detector` knows (``mediapipe``, ...);
* ``centerface``: CenterFace on the whole frame. SIZE >= 32 is the network input's
  long side in pixels, a smaller SIZE the scale (input pixels per frame pixel; default
  1). Options: ``small_thr`` (threshold for boxes under ``small_px`` input pixels
  tall, default 32) and ``min_px`` (drop shorter boxes); see CenterFaceDetector.

Parts without ``:THRESHOLD`` take each ``--threshold`` in turn (or their own default).
Example: ``--detector mediapipe:0.5+centerface@1024/small_thr=0.07 --threshold 0.15``.

Besides coverage it reports the mean detector time per WIDER image and the median
time per 1280x720 frame (a fixed synthetic frame built from scikit-image's
``astronaut`` photo, so the number does not depend on the dataset).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.wider_eval import HEIGHT_BUCKETS, find_dataset, score_image, summarise  # noqa: E402
from blurcam.detect import Detector, make_detector  # noqa: E402
from blurcam.detect.ensemble import Ensemble  # noqa: E402
from blurcam.view import detect_image  # noqa: E402

CENTERFACE_OPTIONS = {"small_thr": "small_threshold", "small_px": "small_px", "min_px": "min_px"}
COLUMNS = ("all", "easy", *(label for label, _, _ in HEIGHT_BUCKETS), "area_masked")


def build_part(part: str, threshold: float | None, inference: dict) -> Detector:
    """One detector from ``NAME[@SIZE][:THRESHOLD][/KEY=VALUE,...]``; ``threshold``
    fills a missing THRESHOLD; ``inference``: CenterFace's precision and runtime."""
    part, _, options = part.partition("/")
    spec, _, own = part.partition(":")
    name, _, size = spec.partition("@")
    if own:
        threshold = float(own)
    if name == "centerface":
        from blurcam.detect.centerface import CenterFaceDetector

        kwargs = {} if threshold is None else {"threshold": threshold}
        if size:
            value = float(size)
            kwargs.update({"input_long_side": int(value)} if value >= 32 else {"input_scale": value})
        for item in filter(None, options.split(",")):
            key, _, value = item.partition("=")
            kwargs[CENTERFACE_OPTIONS[key]] = float(value)
        return CenterFaceDetector(**kwargs, **inference)
    if size or options:
        raise ValueError(f"{name} takes no @SIZE or /OPTIONS")
    # Still images: every image gets every detector (a preset's frame scheduling is for video).
    return make_detector(name, threshold=threshold, centerface_every=1, **inference)


def build_detector(spec: str, threshold: float | None, inference: dict) -> Detector:
    parts = [build_part(p, threshold, inference) for p in spec.split("+")]
    return parts[0] if len(parts) == 1 else Ensemble(parts, name=spec)


def frame_720p() -> np.ndarray:
    """A fixed (720, 1280, 3) uint8 RGB frame with faces of about 300, 100 and 40 px."""
    from skimage import data

    astronaut = data.astronaut()  # 512x512 RGB, face about 200 px tall
    ramp = np.linspace(40, 200, 1280, dtype=np.float32)
    frame = np.repeat(np.repeat(ramp[None, :, None], 720, 0), 3, 2).astype(np.uint8)
    for size, (x, y) in ((720, (0, 0)), (256, (760, 40)), (96, (1060, 400)), (48, (900, 600))):
        frame[y:y + size, x:x + size] = cv2.resize(astronaut, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame)


def time_720p(detector: Detector, min_runs: int = 10, min_seconds: float = 2.0) -> float:
    """Median milliseconds of ``detector.detect`` on :func:`frame_720p`, after warm-up."""
    frame = frame_720p()
    for i in range(2):
        detector.detect(frame, i)
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        detector.detect(frame, 2 + len(times))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def subset(items: list, limit: int | None) -> list:
    """``limit`` items spread evenly over the sorted list (every category represented)."""
    if not limit or limit >= len(items):
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def evaluate(detector: Detector, truths, images_dir: Path, detections: dict | None = None) -> dict:
    """Run ``detector`` over the images and score it; optionally keep raw detections."""
    scores, detect_ms = [], 0.0
    for index, truth in enumerate(truths):
        bgr = cv2.imread(str(images_dir / truth.name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {images_dir / truth.name}")
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        t0 = time.perf_counter()
        faces = detect_image(detector, rgb, index * 1000)  # the view the pipeline would give it
        detect_ms += (time.perf_counter() - t0) * 1000
        if detections is not None:
            detections[truth.name] = np.concatenate([faces.xyxy, faces.score[:, None]], axis=1)
        scores.append(score_image(truth, faces.xyxy, (rgb.shape[1], rgb.shape[0])))
    report = summarise(scores)
    report["ms_per_image"] = detect_ms / max(len(truths), 1)
    return report


def markdown_row(report: dict) -> str:
    cells = [report["config"], "-" if report["threshold"] is None else f"{report['threshold']:g}"]
    cells += ["-" if report[c] is None else f"{report[c]:.3f}" for c in COLUMNS]
    cells += [f"{report['ms_per_image']:.0f}", f"{report['ms_per_720p']:.0f}"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wider_dir", type=Path, help="WIDER-format folder (gt.json + images/, or the official layout)")
    ap.add_argument("--detector", action="append", help="detector SPEC (repeatable); default: mediapipe")
    ap.add_argument("--threshold", type=float, action="append",
                    help="threshold for parts without their own (repeatable); default: each detector's own")
    ap.add_argument("--limit", type=int, help="score only N images, spread evenly over the sorted list")
    ap.add_argument("--json", type=Path, help="write all reports here as a JSON list")
    ap.add_argument("--precision", choices=("int8", "fp32"), help="CenterFace model (default: int8)")
    ap.add_argument("--runtime", choices=("onnxruntime", "openvino"), help="CenterFace runtime (default: onnxruntime)")
    ap.add_argument("--save-detections", type=Path,
                    help="folder for raw detections, one .npz per run (name -> (N, 5) xyxy + score)")
    args = ap.parse_args(argv)

    inference = {k: v for k, v in (("precision", args.precision), ("runtime", args.runtime)) if v}
    truths, images_dir = find_dataset(args.wider_dir)
    truths = subset(truths, args.limit)
    header = ["detector", "thr", *COLUMNS, "ms/image", "ms/720p"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    reports = []
    for spec in args.detector or ["mediapipe"]:
        for threshold in args.threshold or [None]:
            detector = build_detector(spec, threshold, inference)
            try:
                keep = {} if args.save_detections else None
                report = {"config": spec, "threshold": threshold,
                          **evaluate(detector, truths, images_dir, keep)}
                report["ms_per_720p"] = time_720p(detector)
            finally:
                detector.close()
            if keep is not None:
                args.save_detections.mkdir(parents=True, exist_ok=True)
                stem = f"{spec}_{threshold}".replace("/", "_")
                np.savez_compressed(args.save_detections / f"{stem}.npz", **keep)
            reports.append(report)
            print(markdown_row(report), flush=True)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
