"""Does the live preset hold real time? 720p30 played at its real pace through
``blurcam.pipeline.run_live`` into an MPEG-TS recording (the same StreamSink as RTMP).

    python bench/live_bench.py [--seconds 60] [--quality live] [--size 1280x720] [--clip FILE]
                               [--precision int8|fp32] [--runtime onnxruntime|openvino]

Prints frames in/out, dropped and obscured frames, and pipeline latency (capture
timestamp to muxed packet) p50/p95 in ms. Targets: 0 dropped, p95 <= 150 ms.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blurcam.benchmark import sample_clip  # noqa: E402
from blurcam.detect import make_detector  # noqa: E402
from blurcam.io.source import MediaSource  # noqa: E402
from blurcam.io.stream import StreamSink  # noqa: E402
from blurcam.loop import LiveStats, warm_up  # noqa: E402
from blurcam.pipeline import LiveConfig, run_live  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--quality", default="live")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--clip", type=Path, help="a file to play instead of the sample-based clip")
    ap.add_argument("--precision", choices=("int8", "fp32"))
    ap.add_argument("--runtime", choices=("onnxruntime", "openvino"))
    args = ap.parse_args()
    from blurcam.detect.centerface import configure

    configure(precision=args.precision, runtime=args.runtime)
    w, h = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or sample_clip(Path(tmp) / "live.mp4", size_wh=(w, h), frames=30 * args.seconds)
        detector = make_detector(args.quality)  # loaded before the clock starts: the stream would start obscured
        source = MediaSource(clip, live=True)
        warm_up(detector, source.info)  # and warmed up at the stream's size, as blurcam live does
        stats = LiveStats()
        sink = StreamSink(Path(tmp) / "out.ts", source.info, audio_streams=source.audio_streams, on_sent=stats.sent)
        try:
            run_live(source, sink, LiveConfig(detector=args.quality, realtime=True), detector=detector, stats=stats)
            sink.commit()
        finally:
            sink.abort()
            source.close()
            detector.close()
    p50, p95 = stats.percentiles_all()
    label = args.quality + "".join(f" {v}" for v in (args.precision, args.runtime) if v)
    print(f"| {label} | {args.size} | {stats.frames_in} | {stats.frames} | {stats.frames_dropped} | "
          f"{stats.frames_obscured_whole} | {p50:.0f} | {p95:.0f} |")


if __name__ == "__main__":
    print("| preset | size | frames in | out | dropped | obscured | latency p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    main()
