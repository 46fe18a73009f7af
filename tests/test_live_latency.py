"""A stream's latency is bounded whichever stage is behind (issue 17, item 3).

A sink that writes slowly must make the stream drop frames at the input, counted and
named, and keep the number of frames in flight bounded, instead of letting them queue
(before: up to ~20 frames waiting in the detector's, the caller's and the sink's
queues, seconds of delay). Frames are counted, not timed; what was sent is read back
and checked for faces."""
from __future__ import annotations

import io
import math
import os
import threading
import time
from pathlib import Path

import av
import pytest

from blurcam.detect import make_detector
from blurcam.io.source import MediaSource
from blurcam.io.stream import StreamSink
from blurcam.runstats import LiveStats
from blurcam.pipeline import LiveConfig, run_live
from conftest import Clip, two_faces_clip
from leak import assert_no_face_leaks

SIZE_WH = (640, 360)
N_FRAMES = 60


@pytest.fixture(scope="module")
def clip(tmp_path_factory, sprites) -> Clip:
    return two_faces_clip(tmp_path_factory.mktemp("latency") / "faces.mp4", sprites, N_FRAMES, audio=False)


@pytest.fixture(scope="module")
def detector():
    d = make_detector("live")
    yield d
    d.close()


class SlowReader(threading.Thread):
    """The far end of a named pipe the recording is written into: it takes ``chunk``
    bytes every ``pause_s`` (a slow disk or a slow consumer) until ``hurry`` is set, then
    reads the rest at once. Keeps every byte, to decode what was sent."""

    def __init__(self, fifo: Path, chunk: int, pause_s: float) -> None:
        super().__init__(daemon=True)
        self.fifo, self.chunk, self.pause_s = fifo, chunk, pause_s
        self.hurry = threading.Event()
        self.data = io.BytesIO()
        self.start()

    def run(self) -> None:
        with open(self.fifo, "rb", buffering=0) as f:
            try:  # Linux: a 4 kB pipe, so the kernel's 64 kB buffer does not hide the slowness
                import fcntl

                fcntl.fcntl(f, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
            except OSError:
                pass
            while block := f.read(self.chunk if not self.hurry.is_set() else 1 << 20):
                self.data.write(block)
                if not self.hurry.is_set():
                    time.sleep(self.pause_s)


class SlowWrites:
    """A sink whose ``write_frame`` itself is slow (a preview window, a blocking
    writer), in front of a real recording."""

    def __init__(self, inner: StreamSink, pause_s: float) -> None:
        self.inner, self.pause_s = inner, pause_s

    def write_frame(self, frame) -> None:
        time.sleep(self.pause_s)
        self.inner.write_frame(frame)

    def write_audio(self, packet) -> None:
        self.inner.write_audio(packet)

    def commit(self) -> None:
        self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()


def _stream_through_slow_sink(clip: Clip, tmp_path: Path, detector, kind: str, delay_s: float = 0.0):
    """Play ``clip`` at real pace into a recording behind a slow sink; returns (stats,
    frames decoded from what the sink wrote, most frames in flight seen from outside)."""
    source = MediaSource(clip.path, live=True)
    stats = LiveStats()
    muxed = [0]
    in_flight = [0]

    def sent(frame) -> None:
        stats.sent(frame)
        muxed[0] += 1
        # Read from outside the loop: frames taken in, minus dropped, minus out of the sink.
        in_flight[0] = max(in_flight[0], stats.frames_in - stats.frames_dropped - muxed[0] + 1)

    reader = None
    if kind == "slow pipe":
        fifo = tmp_path / "rec.ts"
        os.mkfifo(fifo)
        reader = SlowReader(fifo, chunk=512, pause_s=0.05)  # ~10 kB/s: a few frames a second
        sink = StreamSink(fifo, source.info, overwrite=True, on_sent=sent)
        out_path = None
    else:
        out_path = tmp_path / "rec.ts"
        sink = SlowWrites(StreamSink(out_path, source.info, on_sent=sent), pause_s=0.3)
    try:
        run_live(source, sink, LiveConfig(realtime=True, delay_s=delay_s), detector=detector, stats=stats)
        if reader is not None:
            reader.hurry.set()
        sink.commit()
    finally:
        if reader is not None:
            reader.hurry.set()
        sink.abort()
        source.close()
    if reader is not None:
        reader.join(timeout=10)
        reader.data.seek(0)
        with av.open(reader.data, format="mpegts") as c:
            images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    else:
        with av.open(str(out_path)) as c:
            images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return stats, images, in_flight[0]


@pytest.mark.parametrize("delay_s", [0.0, 1.0])
@pytest.mark.parametrize("kind", ["slow pipe", "slow write_frame"])
def test_slow_sink_drops_at_the_input_and_keeps_frames_in_flight_bounded(clip, tmp_path, detector, kind, delay_s):
    stats, images, seen_in_flight = _stream_through_slow_sink(clip, tmp_path, detector, kind, delay_s)
    # Frames held for the delay wait on purpose (at most delay x 30 fps of them), outside the bound.
    config = LiveConfig(max_in_flight=LiveConfig().max_in_flight + math.ceil(delay_s * 30) + 1)
    assert stats.frames_in == N_FRAMES
    assert stats.frames + stats.frames_dropped == N_FRAMES  # every frame sent or dropped, none lost in a queue
    assert stats.frames_dropped >= N_FRAMES // 3  # the sink cannot take real time
    assert stats.dropped_by["sink"] > 0 and stats.dropped_by.most_common(1)[0][0] == "sink", stats.dropped_by
    # Bounded: before, the loop's and the sink's queues held up to ~20 frames behind a slow sink.
    assert stats.in_flight_max <= config.max_in_flight
    assert seen_in_flight <= config.max_in_flight, seen_in_flight
    assert len(images) == stats.frames > 0
    assert_no_face_leaks(clip, images)  # nothing raw, and nothing unredacted, whatever was dropped


def test_control_an_unbounded_sink_would_hold_many_frames(clip, tmp_path, detector):
    """The in-flight count above can fail: with the bound lifted (max_in_flight 64,
    latency 60 s) the same slow sink lets frames pile up in the queues."""
    source = MediaSource(clip.path, live=True)
    stats = LiveStats()
    sink = SlowWrites(StreamSink(tmp_path / "rec.ts", source.info, on_sent=stats.sent), pause_s=0.15)
    try:
        run_live(source, sink, LiveConfig(realtime=True, max_in_flight=64, latency_ms=60_000, delay_s=0), detector=detector,
                 stats=stats)
        sink.commit()
    finally:
        sink.abort()
        source.close()
    assert stats.in_flight_max > LiveConfig().max_in_flight
    assert not stats.dropped_by.get("sink")
