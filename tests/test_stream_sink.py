"""StreamSink transport: a real nginx-rtmp server, reconnects, stdout, recordings.

Frames come from a synthetic clip with real faces (MediaSource items: Frames and AAC
packets). These tests check transport only; redaction is tested with the pipeline.
Every wait is bounded: readers have open/read timeouts and are joined with timeouts.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import IDENTIFYING_TAGS


from blurcam.errors import SinkError, UsageError
from blurcam.io.convert import rgb_to_planes
from blurcam.io.sink import EncoderConfig
from blurcam.io.source import MediaSource
from blurcam.io.destination import Destination
from blurcam.io.fanout import FanOut
from blurcam.io.stream import StreamConfig, StreamSink
from blurcam.synth import Placement, background, render, write_clip
from blurcam.types import Frame

SIZE_WH = (320, 240)
FPS = 30
N_FRAMES = 90  # 3 s
READ_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def live_clip(tmp_path_factory, sprites) -> Path:
    """320x240, 3 s at 30 fps, one face moving, AAC audio."""
    astronaut, camera = sprites
    placements = [Placement(astronaut, 150, (10, 40), (150, 60)), Placement(camera, 90, (230, 10), (200, 120))]
    frames = [f for f, _ in render(placements, background(SIZE_WH), N_FRAMES)]
    path = tmp_path_factory.mktemp("live") / "faces.mp4"
    write_clip(path, frames, fps=FPS)
    return path


class StreamReader:
    """Plays an RTMP stream in a thread and records what arrives.

    Started before the publisher, it waits (nginx holds the player until the stream
    is published). It stops after ``until_frames`` frames, on an error, at ``stop()``, or
    3 s after the stream ends (FFmpeg's RTMP player does not notice the unpublish).
    """

    def __init__(self, url: str, open_timeout_s: float = 10.0, until_frames: int | None = None) -> None:
        self.url, self.open_timeout_s, self.until_frames = url, open_timeout_s, until_frames
        self.frames: list[tuple[int, int, int]] = []  # (width, height, pts ms) per decoded video frame
        self.audio_packets = 0
        self.audio_codec: str | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            # Small probe: the player should not sit in find_stream_info for seconds.
            options = {"rtmp_live": "live", "analyzeduration": "500000", "probesize": "65536"}
            with av.open(self.url, options=options, timeout=(self.open_timeout_s, 3.0)) as c:
                for packet in c.demux():
                    if self._stop.is_set():
                        return
                    if packet.stream.type == "video":
                        self.frames += [(f.width, f.height, f.pts) for f in packet.decode()]
                        if self.until_frames and len(self.frames) >= self.until_frames:
                            return
                    elif packet.stream.type == "audio" and packet.size:
                        self.audio_codec = packet.stream.codec_context.name
                        self.audio_packets += 1
        except (av.EOFError, av.FFmpegError, OSError) as exc:  # EIO: the publisher stopped
            self.error = exc

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = READ_TIMEOUT_S) -> None:
        self._thread.join(timeout_s)
        self._stop.set()
        assert not self._thread.is_alive(), f"reader of {self.url} still running after {timeout_s} s"


def push(source: MediaSource, sink, *, pace: bool = True, on_frame=None) -> list[float]:
    """Feed all items to ``sink`` at real-time pace; returns each write_frame's duration in s."""
    durations = []
    t0 = time.monotonic()
    for item in source.items():
        if isinstance(item, av.Packet):
            sink.write_audio(item)
            continue
        if on_frame is not None:
            on_frame(item)
        start = time.monotonic()
        sink.write_frame(item)
        durations.append(time.monotonic() - start)
        if pace:
            time.sleep(max(0.0, t0 + (item.index + 1) / FPS - time.monotonic()))
    return durations


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_rtmp_stream_arrives_with_video_and_audio(rtmp_server, live_clip):
    url = rtmp_server.url("push")
    reader = StreamReader(url, until_frames=N_FRAMES)
    rtmp_server.wait_for_player("push")
    source = MediaSource(live_clip)
    sink = StreamSink(url, source.info, audio_streams=source.audio_streams)
    try:
        push(source, sink)
        sink.commit()
    finally:
        sink.abort()
        source.close()
    reader.join()
    assert (sink.frames_sent, sink.frames_dropped, sink.reconnects) == (N_FRAMES, 0, 0)
    assert len(reader.frames) >= N_FRAMES - 5, reader.error
    assert {(w, h) for w, h, _ in reader.frames} == {SIZE_WH}
    pts = [p for _, _, p in reader.frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert reader.audio_codec == "aac" and reader.audio_packets > 100  # 3 s at 48 kHz: ~140 packets


def test_rtmp_reconnects_after_server_restart(rtmp_server, live_clip):
    url = rtmp_server.url("restart")
    source = MediaSource(live_clip)
    config = StreamConfig(backoff_initial_s=0.3, reconnect_for_s=10.0)
    sink = StreamSink(url, source.info, audio_streams=source.audio_streams, config=config)
    readers = []

    def restart_once(frame):
        if frame.index == 30:
            seen = rtmp_server.players_seen("restart")
            rtmp_server.restart()  # the server is gone and back; the sink only learns on its next write
            readers.append(StreamReader(url))
            rtmp_server.wait_for_player("restart", seen)

    try:
        durations = push(source, sink, on_frame=restart_once)
        assert wait_until(lambda: sink.reconnects >= 1, 5.0)
        sink.commit()
    finally:
        sink.abort()
        source.close()
    reader, = readers
    reader.join()
    assert sink.reconnects >= 1
    assert sink.frames_dropped >= 1  # discarded while disconnected, not buffered
    assert sink.frames_sent + sink.frames_dropped == N_FRAMES
    assert max(durations) < config.max_block_s + 0.3  # the caller never waited on the network
    # After the restart the player sees a fresh stream from a keyframe, at the right size.
    assert len(reader.frames) >= 15, rtmp_server.log_tail()
    assert {(w, h) for w, h, _ in reader.frames} == {SIZE_WH}
    pts = [p for _, _, p in reader.frames]
    assert pts == sorted(pts)
    assert reader.audio_packets > 0


def test_rtmp_gives_up_after_reconnect_for_s(rtmp_server, live_clip):
    url = rtmp_server.url("secret-stream-key")
    source = MediaSource(live_clip)
    config = StreamConfig(backoff_initial_s=0.1, backoff_max_s=0.2, reconnect_for_s=0.5, connect_timeout_s=1.0)
    sink = StreamSink(url, source.info, audio_streams=source.audio_streams, config=config)
    rtmp_server.stop()
    try:
        with pytest.raises(SinkError, match="gave up reconnecting") as info:
            push(source, sink)  # 3 s: the sink gives up after about 0.5 s
        assert "secret-stream-key" not in str(info.value)  # the stream key is a credential
    finally:
        sink.abort()
        source.close()
        rtmp_server.start()


def test_rtmp_unreachable_at_start_raises_sink_error(rtmp_server, live_clip):
    source = MediaSource(live_clip)
    try:
        port = rtmp_server.port
        rtmp_server.stop()
        started = time.monotonic()
        with pytest.raises(SinkError, match="cannot connect"):
            StreamSink(f"rtmp://127.0.0.1:{port}/live/x", source.info)
        assert time.monotonic() - started < 5.0
    finally:
        source.close()
        rtmp_server.start()


def test_server_that_never_answers_is_a_sink_error_not_a_frozen_process(rtmp_server, live_clip):
    # FFmpeg's RTMP connect holds the GIL without a timeout; it runs in a relay process,
    # which is killed when it does not connect in time (else this whole process would hang).
    source = MediaSource(live_clip)
    rtmp_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(SinkError, match="cannot connect"):
            StreamSink(rtmp_server.url("frozen"), source.info, config=StreamConfig(connect_timeout_s=0.5))
        assert time.monotonic() - started < 3.0
    finally:
        rtmp_server.resume()
        source.close()


def test_stalled_connection_is_cut_and_reconnected(rtmp_server, live_clip):
    # Noise frames fill the socket buffers fast; then a frozen server stalls the send.
    source = MediaSource(live_clip, audio=False)
    config = StreamConfig(stall_timeout_s=1.0, connect_timeout_s=0.5, backoff_initial_s=0.2,
                          backoff_max_s=0.4, reconnect_for_s=20.0, max_block_s=0.2)
    sink = StreamSink(rtmp_server.url("stall"), source.info, config=config,
                      encoder=EncoderConfig(crf=10, preset="ultrafast"))
    rng = np.random.default_rng(0)
    noise = [rgb_to_planes(rng.integers(0, 256, (SIZE_WH[1], SIZE_WH[0], 3), np.uint8)) for _ in range(8)]
    durations = []
    try:
        rtmp_server.pause()
        deadline = time.monotonic() + 30.0
        index = 0
        while sink.frames_dropped == 0 or sink.connected:  # until the stall was noticed and cut
            assert time.monotonic() < deadline, "the stall was never detected"
            start = time.monotonic()
            sink.write_frame(Frame(tuple(p.copy() for p in noise[index % 8]), index, index, Fraction(1, FPS)))
            durations.append(time.monotonic() - start)
            index += 1
            time.sleep(0.005)
        rtmp_server.resume()
        assert wait_until(lambda: sink.reconnects >= 1, 10.0), rtmp_server.log_tail()
        sent_before = sink.frames_sent
        for i in range(index, index + 10):
            sink.write_frame(Frame(tuple(p.copy() for p in noise[i % 8]), i, i, Fraction(1, FPS)))
            time.sleep(1 / FPS)
        sink.commit()
    finally:
        rtmp_server.resume()
        sink.abort()
        source.close()
    assert sink.frames_sent > sent_before
    assert sink.reconnects >= 1
    assert max(durations) < config.max_block_s + 0.3  # the caller never waited on the frozen server


_STDOUT_WRITER = """
import sys
import av
from blurcam.io.convert import rgb_to_planes
from blurcam.io.sink import EncoderConfig
from blurcam.io.source import MediaSource
from blurcam.io.stream import StreamSink
source = MediaSource(sys.argv[1])
sink = StreamSink("-", source.info, audio_streams=source.audio_streams)
for item in source.items():
    (sink.write_audio if isinstance(item, av.Packet) else sink.write_frame)(item)
sink.commit()
"""


def test_stdout_mpegts_parses_from_pipe(live_clip):
    proc = subprocess.Popen([sys.executable, "-c", _STDOUT_WRITER, str(live_clip)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(60.0, proc.kill)  # a hung writer cannot hang the test
    watchdog.start()
    try:
        with av.open(proc.stdout, format="mpegts") as c:
            assert {s.type for s in c.streams} >= {"video", "audio"}
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert proc.wait(timeout=30) == 0, proc.stderr.read().decode(errors="replace")
    finally:
        watchdog.cancel()
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert len(frames) == N_FRAMES
    assert frames[0].shape == (SIZE_WH[1], SIZE_WH[0], 3)


def record(clip: Path, recording: Path) -> Path:
    """Push a whole clip, as fast as it decodes, into a local recording."""
    source = MediaSource(clip)
    sink = StreamSink(recording, source.info, audio_streams=source.audio_streams)
    try:
        push(source, sink, pace=False)
        sink.commit()
    finally:
        sink.abort()
        source.close()
    return recording


@pytest.mark.parametrize("suffix", [".ts", ".mkv"])
def test_local_recording_keeps_every_frame_and_no_identifying_tags(tmp_path, face_clip, suffix):
    path = record(face_clip.path, tmp_path / f"rec{suffix}")
    with av.open(str(path)) as c:
        tags = dict(c.metadata)
        for s in c.streams:
            tags.update(s.metadata)
        frames = list(c.decode(video=0))
    # Matroska always writes its own DURATION and, even bit-exact, encoder "Lavf" (no version).
    assert set(tags.items()) <= {("encoder", "Lavf")} | {("DURATION", v) for v in tags.values()}, tags
    assert not set(IDENTIFYING_TAGS) & set(tags)
    assert len(frames) == len(face_clip.frames) and frames[0].key_frame
    assert (frames[0].width, frames[0].height) == (640, 360)


def test_non_aac_audio_is_reencoded_to_aac(tmp_path):
    # A Matroska source with Opus audio (as from a WebM camera app): FLV needs AAC.
    opus_clip = tmp_path / "opus.mkv"
    with av.open(str(opus_clip), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = *SIZE_WH, "yuv420p"
        audio = out.add_stream("libopus", rate=48000, layout="stereo")
        for i in range(N_FRAMES):
            frame = av.VideoFrame.from_ndarray(np.full((SIZE_WH[1], SIZE_WH[0], 3), i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
            tone = np.sin(np.arange(i * 1600, (i + 1) * 1600) * 0.05, dtype=np.float32)[None].repeat(2, 0)
            samples = av.AudioFrame.from_ndarray(tone * 0.2, format="fltp", layout="stereo")
            samples.sample_rate, samples.pts = 48000, i * 1600
            out.mux(audio.encode(samples))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    recording = record(opus_clip, tmp_path / "rec.ts")
    with av.open(str(recording)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        samples = sum(f.samples for f in c.decode(audio=0))
    with av.open(str(recording)) as c:
        assert sum(1 for _ in c.decode(video=0)) == N_FRAMES
    assert abs(samples / 48000 - N_FRAMES / FPS) < 0.2  # about 3 s of sound, no gaps


def test_recording_refuses_existing_file_and_non_streamable_container(tmp_path, live_clip):
    source = MediaSource(live_clip)
    try:
        existing = tmp_path / "rec.ts"
        existing.write_bytes(b"x")
        with pytest.raises(SinkError, match="already exists"):
            StreamSink(existing, source.info)
        with pytest.raises(UsageError, match="streamable"):  # a usage error (exit 2), not a failed output
            StreamSink(tmp_path / "rec.mp4", source.info)
    finally:
        source.close()


@pytest.mark.parametrize("destination, fmt, network, shown", [
    ("rtmp://example.org/live/KEY123", "flv", True, "rtmp://example.org/live/***"),
    ("rtmp://example.org:1936/app/sub/KEY", "flv", True, "rtmp://example.org:1936/app/***"),
    ("udp://127.0.0.1:5000", "mpegts", True, "udp://127.0.0.1:5000"),
    ("tcp://127.0.0.1:5000", "mpegts", True, "tcp://127.0.0.1:5000"),
    ("-", "mpegts", False, "stdout"),
    ("out/rec.mkv", "matroska", False, "out/rec.mkv"),
])
def test_destination_parse(destination, fmt, network, shown):
    dest = Destination.parse(destination)
    assert (dest.format, dest.network, dest.shown) == (fmt, network, shown)


class _BrokenSink:
    def __init__(self) -> None:
        self.aborted = False

    def write_frame(self, frame) -> None:
        raise SinkError("broken destination")

    def write_audio(self, packet) -> None:
        pass

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


def test_fanout_one_failing_destination_does_not_stop_the_others(tmp_path, live_clip):
    source = MediaSource(live_clip)
    broken = _BrokenSink()
    recording = StreamSink(tmp_path / "rec.ts", source.info, audio_streams=source.audio_streams)
    sink = FanOut([broken, recording])
    try:
        push(source, sink, pace=False)
        sink.commit()
    finally:
        sink.abort()
        source.close()
    assert broken.aborted and len(sink.failures) == 1
    with av.open(str(tmp_path / "rec.ts")) as c:
        assert sum(1 for _ in c.decode(video=0)) == N_FRAMES
        assert c.streams.audio


def test_fanout_raises_when_every_destination_failed():
    sink = FanOut([_BrokenSink(), _BrokenSink()])
    with pytest.raises(SinkError, match="broken destination"):
        sink.write_frame(Frame(rgb_to_planes(np.zeros((2, 2, 3), np.uint8)), 0, 0, Fraction(1, FPS)))
