"""blurcam live --delay (issue 18): frames held for the delay get the file pipeline's
look-back, their audio leaves with them, and CenterFace's cadence adapts instead of the
stream dropping frames. Real detectors, real media, recordings read back."""
from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from blurcam.detect import make_detector
from blurcam.detect.ensemble import cadenced
from blurcam.io.source import MediaSource
from blurcam.io.stream import StreamSink
from blurcam.runstats import LiveStats
from blurcam.pipeline import LiveConfig, run_live
from blurcam.track import TrackConfig
from conftest import Clip, two_faces_clip
from leak import assert_no_face_leaks

SIZE_WH = (640, 360)
N_FRAMES = 90  # 3 s at 30 fps


@pytest.fixture(scope="module")
def faces_clip(tmp_path_factory, sprites) -> Clip:
    return two_faces_clip(tmp_path_factory.mktemp("delay") / "faces.mp4", sprites, N_FRAMES)


@pytest.fixture(scope="module")
def detector():
    d = make_detector("live", centerface_every=1, adaptive=True)
    yield d
    d.close()


def _record(clip_path: Path, tmp_path: Path, detector, *, wrap=None, **config) -> tuple[LiveStats, Path]:
    out = tmp_path / f"rec-{time.monotonic_ns()}.ts"
    source = MediaSource(clip_path, live=True)
    stats = LiveStats()
    sink = StreamSink(out, source.info, audio_streams=source.audio_streams, on_sent=stats.sent)
    try:
        run_live(source, wrap(sink) if wrap else sink, LiveConfig(realtime=True, **config), detector=detector,
                 stats=stats)
        sink.commit()
    finally:
        sink.abort()
        source.close()
    return stats, out


def _images(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


class FoundLate:
    """The live detector, but it finds nothing until it has seen faces twice: a face
    is only found from its 3rd appearance on (a detector that needs a clear view)."""

    name = "found-late"

    def __init__(self, inner, withheld: int = 2) -> None:
        self.inner, self.withheld = inner, withheld
        self.max_side = getattr(inner, "max_side", None)

    def detect(self, image, timestamp_ms):
        faces = self.inner.detect(image, timestamp_ms)
        if len(faces) and self.withheld:
            self.withheld -= 1
            return faces[:0]
        return faces

    def close(self):
        pass


def test_face_found_late_is_covered_before_it_with_a_delay(faces_clip, tmp_path, detector):
    stats, out = _record(faces_clip.path, tmp_path, FoundLate(detector), delay_s=1.0,
                         track=TrackConfig(hold_frames=10, lookback_frames=0))
    images = _images(out)
    assert len(images) >= N_FRAMES - 3
    assert stats.frames_obscured_whole == 0  # covered by look-back boxes, not by obscuring whole frames
    assert_no_face_leaks(faces_clip, images)


def test_control_face_found_late_leaks_without_a_delay(faces_clip, tmp_path, detector):
    """The test above can fail: with --delay 0 the frames before the 3rd sighting go out raw."""
    stats, out = _record(faces_clip.path, tmp_path, FoundLate(detector), delay_s=0.0,
                         track=TrackConfig(hold_frames=10, lookback_frames=0))
    with pytest.raises(AssertionError, match="keeps"):
        assert_no_face_leaks(faces_clip, _images(out))


# -- audio in sync ---------------------------------------------------------------------

FLASH_S = 1.5
RATE = 48000


@pytest.fixture(scope="module")
def flash_clip(tmp_path_factory) -> Path:
    """3 s, 30 fps: dark frames with one white frame at 1.5 s, and a 1 kHz tone burst
    (AAC) starting at 1.5 s in silence."""
    path = tmp_path_factory.mktemp("sync") / "flash.mkv"
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        a = c.add_stream("aac", rate=RATE)
        a.layout = "mono"
        for i in range(N_FRAMES):
            img = np.full((240, 320, 3), 255 if i == round(FLASH_S * 30) else 20, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            c.mux(v.encode(frame))
        t = np.arange(3 * RATE) / RATE
        tone = np.where((t >= FLASH_S) & (t < FLASH_S + 0.2), 0.5 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = tone[start:start + 1024][None]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            c.mux(a.encode(frame))
        c.mux(v.encode())
        c.mux(a.encode())
    return path


class Timed:
    """A sink that notes when (wall clock) each frame and audio packet is handed to it."""

    def __init__(self, sink) -> None:
        self.sink, self.frames, self.audio = sink, [], []

    def write_frame(self, frame) -> None:
        self.frames.append((frame.time_s(), time.monotonic(), float(np.asarray(frame.planes[0]).mean())))
        self.sink.write_frame(frame)

    def write_audio(self, packet) -> None:
        if packet.pts is not None:
            self.audio.append((float(packet.pts * packet.time_base), time.monotonic()))
        self.sink.write_audio(packet)

    def __getattr__(self, name):
        return getattr(self.sink, name)


def _flash_and_tone_s(path: Path) -> tuple[float, float]:
    """Media times of the first bright frame and of the tone's onset in a recording."""
    with av.open(str(path)) as c:
        flash = next(f.time for f in c.decode(video=0) if f.to_ndarray(format="gray").mean() > 128)
    with av.open(str(path)) as c:
        for f in c.decode(audio=0):
            x = np.abs(f.to_ndarray()).max(axis=0)
            loud = np.flatnonzero(x > 0.1)
            if len(loud):
                return flash, f.time + loud[0] / f.sample_rate
    raise AssertionError("no tone in the recording")


def test_audio_stays_in_sync_with_the_delayed_video(flash_clip, tmp_path, detector):
    timed = []
    stats, out = _record(flash_clip, tmp_path, detector, delay_s=1.0,
                         wrap=lambda sink: timed.append(Timed(sink)) or timed[0])
    flash_s, tone_s = _flash_and_tone_s(out)
    assert abs(tone_s - flash_s) < 0.05  # in the recording: within about an AAC frame
    # And sent together: the burst's packet leaves with the flash frame, not a delay ahead of it.
    t = timed[0]
    flash_sent = next(wall for media, wall, luma in t.frames if luma > 128)
    burst_sent = next(wall for media, wall in t.audio if media >= FLASH_S - 0.03)
    assert abs(burst_sent - flash_sent) < 0.15
    latency = flash_sent - next(wall for media, wall, _ in t.frames)  # vs the first frame: ~1.5 s paced
    assert latency > 1.3


# -- cadence ---------------------------------------------------------------------------


class Slowed:
    """A CenterFace pass made slower on purpose (a slow laptop)."""

    def __init__(self, inner, extra_s: float) -> None:
        self.inner, self.extra_s = inner, extra_s
        self.name, self.max_side = inner.name, getattr(inner, "max_side", None)

    def detect(self, image, timestamp_ms):
        time.sleep(self.extra_s)
        return self.inner.detect(image, timestamp_ms)

    def close(self):
        self.inner.close()


@pytest.fixture
def slowed():
    d = make_detector("live", centerface_every=1, adaptive=True)
    for member in cadenced(d):
        member.detector = Slowed(member.detector, 0.045)
    yield d
    d.close()


def test_slow_detector_makes_centerface_skip_frames_not_the_stream_drop_them(faces_clip, tmp_path, slowed):
    stats, out = _record(faces_clip.path, tmp_path, slowed, delay_s=1.0)
    images = _images(out)
    assert stats.centerface_every_max >= 2
    assert stats.frames_dropped <= 3, stats.drop_reasons()
    assert len(images) == stats.frames >= N_FRAMES - 3
    assert_no_face_leaks(faces_clip, images)  # every frame sent redacted (or obscured)
    assert "centerface every" in stats.line()


def test_control_slow_detector_drops_frames_without_a_delay(faces_clip, tmp_path, slowed):
    """Without a delay CenterFace stays on every frame, so the same slow detector drops."""
    stats, out = _record(faces_clip.path, tmp_path, slowed, delay_s=0.0)
    assert stats.centerface_every_max == 1
    assert stats.frames_dropped >= 10
    assert_no_face_leaks(faces_clip, _images(out))


def test_cadence_follows_detection_time_and_drops():
    """The policy's choice alone: CenterFace every frame when it fits the frame interval,
    every 2nd/3rd when not, the slowest after a drop, always every frame without a delay."""
    from blurcam.policy import LivePolicy

    policy = LivePolicy(500, delay_s=1.0, frame_s=1 / 30)
    assert policy.cadence(True, 0.020) == 1  # 20 ms of 33: every frame
    policy = LivePolicy(500, delay_s=1.0, frame_s=1 / 30)
    assert policy.cadence(True, 0.045) == 2  # (45 + 9) / 2 = 27 ms a frame
    assert policy.cadence(False, 0.005) == 2
    policy = LivePolicy(500, delay_s=1.0, frame_s=1 / 30)
    assert policy.cadence(True, 0.070) == 3
    fast = LivePolicy(500, delay_s=1.0, frame_s=1 / 30)
    fast._dropped_s = time.monotonic()
    assert fast.cadence(True, 0.010) == LivePolicy.MAX_EVERY  # behind elsewhere: free the cores
    assert LivePolicy(500, delay_s=0.0).cadence(True, 0.070) == 1
