"""A stand-in for a phone app (Larix, PRISM): pushes a clip to a URL at its real pace.

    python tests/push.py CLIP rtmp://127.0.0.1:PORT/live/KEY [--wait-s 30] [--stall-after-s S]

Run as its own process, as a phone is its own encoder. The clip's H.264 and AAC packets
are remuxed (FLV for rtmp://, MPEG-TS otherwise), never re-encoded. The receiver may
not listen yet: connecting is retried for ``--wait-s`` seconds. Exit 0 when the whole
clip was sent, 1 when no connection was made.
"""
from __future__ import annotations

import argparse
import sys
import time

import av


def _connect(src: av.container.InputContainer, url: str, wait_s: float):
    """The output container with its header sent (FFmpeg connects only then), retried
    until ``wait_s`` has passed; None if the receiver never answered."""
    deadline = time.monotonic() + wait_s
    while True:
        out = av.open(url, "w", format="flv" if url.startswith("rtmp") else "mpegts", timeout=5.0)
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        try:
            out.start_encoding()
            return out, streams
        except (av.FFmpegError, OSError):
            out.close()
            if time.monotonic() > deadline:
                return None, None
            time.sleep(0.2)


def push(clip: str, url: str, wait_s: float, stall_after_s: float | None = None) -> bool:
    """Send ``clip``; with ``stall_after_s``, stop sending after that much of it and hold
    the connection open (a phone whose app froze) until killed."""
    with av.open(clip) as src:
        out, streams = _connect(src, url, wait_s)
        if out is None:
            return False
        with out:
            start = time.monotonic()
            for packet in src.demux(*[src.streams[i] for i in streams]):
                if not packet.size:
                    continue
                if packet.dts is not None:  # real pace: a phone sends as it films
                    due = float(packet.dts * packet.time_base)
                    if stall_after_s is not None and due > stall_after_s:
                        while True:
                            time.sleep(1)
                    time.sleep(max(0.0, start + due - time.monotonic()))
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return True


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("clip")
    parser.add_argument("url")
    parser.add_argument("--wait-s", type=float, default=30.0)
    parser.add_argument("--stall-after-s", type=float)
    args = parser.parse_args()
    sys.exit(0 if push(args.clip, args.url, args.wait_s, args.stall_after_s) else 1)
