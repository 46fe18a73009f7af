"""Does a live stream keep up, and how late are its frames? A clip played at its real
pace through ``blurcam.pipeline.run_live`` into an MPEG-TS recording (the same
StreamSink as RTMP).

    python bench/live_bench.py [--seconds 60] [--quality live] [--size 1280x720] [--clip FILE | --crowd]
                               [--mode blur|pixelate|solid] [--precision int8|fp32]
                               [--runtime onnxruntime|openvino] [--delay S ...] [--before DIR]

``--crowd`` plays the generated dense crowd (``blurcam.benchmark.crowd_clip``: about
320 faces 12-60 px per frame, a panning camera), ``--seconds`` long.
``--delay S`` (repeatable; default: blurcam's default): one row per delay, each its own
run. ``--before DIR``: also play the same clip through the blurcam checked out in DIR
(an earlier commit, with its own defaults), one after the other in this run, each in
its own process.

Prints frames in/out, dropped frames (and which stage was behind), obscured frames,
pipeline latency (capture timestamp to muxed packet) p50/p95 in ms, the most
frames in flight at once, and CenterFace's cadence (every k-th frame: at the end, most).
Targets (issue 18, 2-core AVX2): sample clip 0 dropped, p95 <= delay + 250 ms; crowd
dropped <= 1 %.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
# A --before child imports the earlier checkout's blurcam instead of this one's.
sys.path.insert(0, os.environ.get("LIVE_BENCH_TREE") or str(HERE))

HEADER = ("| preset | size | frames in | out | dropped (stage behind) | obscured | latency p50 ms | p95 ms "
          "| max in flight | CenterFace every (end/most) |\n|---|---|---|---|---|---|---|---|---|---|")


def detector_setting(quality: str, precision: str | None, runtime: str | None):
    """LiveConfig's ``detector``: a DetectorConfig; for an earlier checkout (a --before
    child) without one, the preset's name, with CenterFace's precision and runtime set
    process-wide as that checkout took them."""
    try:
        from blurcam.detect import DetectorConfig
    except ImportError:
        from blurcam.detect.centerface import configure

        configure(precision=precision, runtime=runtime)
        return quality
    return DetectorConfig(name=quality, **{k: v for k, v in (("precision", precision), ("runtime", runtime)) if v})


def play(clip: Path, detector, mode: str, label: str, delay_s: float | None = None) -> str:
    """One row: ``clip`` at real pace through run_live into a recording; ``detector``: from
    :func:`detector_setting`."""
    from blurcam.io.source import MediaSource
    from blurcam.io.stream import StreamSink
    from blurcam.loop import warm_up
    try:
        from blurcam.runstats import LiveStats
    except ImportError:  # an earlier checkout (a --before child): before the loop's split
        from blurcam.loop import LiveStats
    from blurcam.pipeline import LiveConfig, live_detector, run_live
    from blurcam.redact import RedactConfig

    delay = {} if delay_s is None or "delay_s" not in LiveConfig.__dataclass_fields__ else {"delay_s": delay_s}
    config = LiveConfig(detector=detector, realtime=True, redact=RedactConfig(mode=mode), **delay)
    with tempfile.TemporaryDirectory() as tmp:
        detector = live_detector(config)  # loaded before the clock starts: the stream would start obscured
        source = MediaSource(clip, live=True)
        warm_up(detector, source.info)  # and warmed up at the stream's size, as blurcam live does
        stats = LiveStats()
        sink = StreamSink(Path(tmp) / "out.ts", source.info, audio_streams=source.audio_streams, on_sent=stats.sent)
        try:
            run_live(source, sink, config, detector=detector, stats=stats)
            sink.commit()
        finally:
            sink.abort()
            source.close()
            detector.close()
    p50, p95 = stats.percentiles_all()
    reasons = stats.drop_reasons() if hasattr(stats, "drop_reasons") else ""
    in_flight = getattr(stats, "in_flight_max", None)
    size = f"{source.info.width}x{source.info.height}"
    every = getattr(stats, "centerface_every", None)
    cadence = "-" if every is None else f"{every}/{stats.centerface_every_max}"
    label += f" --delay {getattr(config, 'delay_s', 0):g}"
    return (f"| {label} | {size} | {stats.frames_in} | {stats.frames} | {stats.frames_dropped}{reasons} | "
            f"{stats.frames_obscured_whole} | {p50:.0f} | {p95:.0f} | {'-' if in_flight is None else in_flight} "
            f"| {cadence} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--quality", default="live")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--clip", type=Path, help="a file to play instead of the sample-based clip")
    ap.add_argument("--crowd", action="store_true", help="play the generated dense crowd clip")
    ap.add_argument("--mode", default="blur", choices=("blur", "pixelate", "solid"))
    ap.add_argument("--precision", choices=("int8", "fp32"))
    ap.add_argument("--runtime", choices=("onnxruntime", "openvino"))
    ap.add_argument("--delay", type=float, action="append", help="seconds (repeatable: a row each)")
    ap.add_argument("--before", type=Path, help="an earlier blurcam checkout to play the same clip through too")
    ap.add_argument("--row", action="store_true", help=argparse.SUPPRESS)  # one row, for a --before child
    ap.add_argument("--label", help=argparse.SUPPRESS)
    args = ap.parse_args()
    detector = detector_setting(args.quality, args.precision, args.runtime)
    label = args.label or (args.quality + "".join(f" {v}" for v in (args.precision, args.runtime) if v)
                           + ("" if args.mode == "blur" else f" --mode {args.mode}"))
    if args.row:
        print(play(args.clip, detector, args.mode, label), flush=True)
        return
    w, h = map(int, args.size.split("x"))
    flags = sorted(set(Path("/proc/cpuinfo").read_text().split()) & {"avx2", "avx512f", "avx512_vnni", "avx_vnni"})
    print(f"CPU flags: {' '.join(flags)}; cores: {os.cpu_count()}", flush=True)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.clip:
            clip = args.clip
        elif args.crowd:
            from blurcam.benchmark import crowd_clip

            clip = crowd_clip(Path(tmp) / "crowd.mp4", size_wh=(w, h), frames=30 * args.seconds)
        else:
            from blurcam.benchmark import sample_clip

            clip = sample_clip(Path(tmp) / "live.mp4", size_wh=(w, h), frames=30 * args.seconds)
        if args.before:
            # This script's play(), with the earlier checkout's blurcam first on its path.
            argv = [sys.executable, __file__, "--row", "--clip", str(clip), "--quality", args.quality,
                    "--mode", args.mode, "--label", f"before: {label}"]
            argv += [f"--{k}={v}" for k, v in (("precision", args.precision), ("runtime", args.runtime)) if v]
            tree = str(args.before.resolve())
            out = subprocess.run(argv, capture_output=True, text=True,
                                 env={**os.environ, "LIVE_BENCH_TREE": tree, "PYTHONPATH": tree})
            rows = [line for line in out.stdout.splitlines() if line.startswith("| ")]
            print(rows[-1] if rows else f"| before: failed: {out.stderr.strip().splitlines()[-1:]} |", flush=True)
        for delay_s in args.delay or [None]:
            print(play(clip, detector, args.mode, label, delay_s), flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
