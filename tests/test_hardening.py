"""Regression tests for the hardening issue: each defect a hostile tester found, as a
user meets it. Real processes, real files, real servers on 127.0.0.1 only."""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from blurcam.errors import SinkError
from blurcam.io.sink import create_partial, remove_stale_partials
from blurcam.io.source import MediaSource
from blurcam.io.stream import StreamConfig, StreamSink
from blurcam.live import camera_input, has_format
from blurcam.synth import Placement, background, render, write_clip
from blurcam.urls import mask_secrets, mask_url
from conftest import Clip, decode_rgb
from leak import assert_no_face_leaks, detail_kept

ROOT = Path(__file__).parent.parent
SECRETS = ("PW", "KEY", "SECRETPASS", "SID", "TOK")


def start(*args, cwd=None) -> subprocess.Popen:
    """``blurcam ARGS`` as a real process (new session: signals reach it alone)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "blurcam", *map(str, args)], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def run(*args, timeout=120, cwd=None) -> subprocess.CompletedProcess:
    proc = start(*args, cwd=cwd)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_one_line_error(result, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


@pytest.fixture(scope="module")
def moving(tmp_path_factory, sprites) -> Clip:
    """320x240, 8 s at 30 fps, two real faces moving, AAC audio: long enough to
    interrupt mid-way and to stream for a few seconds."""
    astronaut, camera = sprites
    placements = [Placement(astronaut, 120, (10, 40), (180, 60)), Placement(camera, 80, (230, 20), (200, 140))]
    frames, boxes = zip(*render(placements, background((320, 240)), 240))
    path = tmp_path_factory.mktemp("hardening") / "moving.mp4"
    write_clip(path, frames, fps=30)
    return Clip(path, list(frames), list(boxes))


@pytest.fixture(scope="module")
def moving_clip(moving) -> Path:
    return moving.path


# ---- 1. secrets -------------------------------------------------------------------

@pytest.mark.parametrize("url, shown", [
    ("rtsp://admin:PW@127.0.0.1:1/stream", "rtsp://***@127.0.0.1:1/stream"),
    ("rtsp://PW@cam.local/s", "rtsp://***@cam.local/s"),
    ("rtmp://127.0.0.1:1/KEY", "rtmp://127.0.0.1:1/***"),
    ("rtmp://live.example.org/app/KEY", "rtmp://live.example.org/app/***"),
    ("rtmps://live.example.org:443/app/sub/KEY", "rtmps://live.example.org:443/app/***"),
    ("rtmp://u:PW@host/app/KEY?TOK", "rtmp://***@host/app/***?***"),
    ("srt://127.0.0.1:9000?passphrase=SECRETPASS&streamid=SID", "srt://127.0.0.1:9000?passphrase=***&streamid=***"),
    ("tcp://127.0.0.1:9000?token=TOK", "tcp://127.0.0.1:9000?token=***"),
    ("http://host/a/b.m3u8?token=TOK#KEY", "http://host/a/b.m3u8?token=***#***"),
    ("udp://127.0.0.1:5000", "udp://127.0.0.1:5000"),
    ("clip.mp4", "clip.mp4"),
    ("-", "-"),
])
def test_secret_masking_table(url, shown):
    assert mask_url(url) == shown
    assert mask_secrets(f"cannot open '{url}': refused.") == f"cannot open '{shown}': refused."


@pytest.mark.parametrize("args", [
    ["rtsp://admin:PW@127.0.0.1:1/stream", "--to", "{tmp}/x.ts"],
    ["srt://127.0.0.1:1?passphrase=SECRETPASS&streamid=SID", "--to", "{tmp}/x.ts"],
    ["tcp://127.0.0.1:1?token=TOK", "--to", "{tmp}/x.ts"],
    ["http://127.0.0.1:1/a?token=TOK", "--to", "{tmp}/x.ts"],
    ["{clip}", "--to", "rtmp://127.0.0.1:1/KEY"],
    ["{clip}", "--to", "rtmp://user:PW@127.0.0.1:1/app/KEY"],
])
def test_secrets_never_printed(args, tmp_path, face_clip):
    args = [a.format(tmp=tmp_path, clip=face_clip.path) for a in args]
    result = run("--verbose", "live", *args, "--source-timeout", "3", timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    printed = result.stdout + result.stderr
    for secret in SECRETS:
        assert secret not in printed, printed
    assert "***" in printed
    assert not (tmp_path / "x.ts").exists()


# ---- 2. a stalled destination -----------------------------------------------------

class StallingServer:
    """Accepts TCP on 127.0.0.1, answers ``greeting`` (the first RTMP handshake byte),
    then never reads or writes again (a server or network that silently went away)."""

    def __init__(self, greeting: bytes = b"\x03") -> None:
        self.greeting = greeting
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.recv(1537)
                conn.sendall(self.greeting)  # then silence
            except OSError:
                pass
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def test_stalled_rtmp_destination_does_not_freeze_the_recording(moving, moving_clip, tmp_path):
    server = StallingServer()
    recording = tmp_path / "rec.ts"
    try:
        proc = start("live", moving_clip, "--realtime", "--to", f"rtmp://127.0.0.1:{server.port}/live/KEY",
                     "--to", recording, "--quiet")
        sizes = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(sizes) < 3:  # growing across two seconds
            size = recording.stat().st_size if recording.exists() else 0
            if size and (not sizes or size > sizes[-1]):
                sizes.append(size)
            time.sleep(1.0)
        assert len(sizes) == 3, f"the recording did not keep growing: {sizes}"
        stopped = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - stopped < 8, "Ctrl-C took too long"
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    assert proc.returncode == 130, err
    assert "KEY" not in err and "Traceback" not in err
    frames = decode_rgb(recording)
    assert len(frames) >= 30
    assert_no_face_leaks(moving, frames[::5])  # what was recorded is redacted


def test_rtmps_handshake_that_never_ends_is_cut(face_clip):
    server = StallingServer(greeting=b"")
    source = MediaSource(face_clip.path)
    try:
        started = time.monotonic()
        with pytest.raises(SinkError, match="cannot connect") as failure:
            StreamSink(f"rtmps://127.0.0.1:{server.port}/live/KEY", source.info,
                       config=StreamConfig(connect_timeout_s=1.0))
        assert time.monotonic() - started < 10  # the connect timeout plus the relay's start-up
    finally:
        source.close()
        server.close()
    assert "KEY" not in str(failure.value)


# ---- 3. a silent source -----------------------------------------------------------

def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_silent_live_source_times_out_with_one_line(tmp_path):
    started = time.monotonic()
    result = run("live", f"udp://127.0.0.1:{_free_udp_port()}", "--to", tmp_path / "x.ts",
                 "--source-timeout", "2", timeout=60)
    assert_one_line_error(result, 3, "no data within 2 s")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "x.ts").exists()


def test_ctrl_c_works_while_a_silent_source_opens(tmp_path):
    proc = start("live", f"udp://127.0.0.1:{_free_udp_port()}", "--to", tmp_path / "x.ts", "--source-timeout", "60")
    time.sleep(5.0)  # imports done, waiting for the first packet
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


# ---- 4. the original is never destroyed ---------------------------------------------

@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused(spelling, tmp_path, sprites, face_clip):
    photo = tmp_path / "a.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(sprites[0].image, cv2.COLOR_RGB2BGR))
    video = tmp_path / "v.mp4"
    video.write_bytes(face_clip.path.read_bytes())
    for original in (photo, video):
        before = sha256(original)
        target = {"same": original.name, "dot": f"./{original.name}"}.get(spelling)
        if spelling == "symlink":
            target = f"link{original.suffix}"
            (tmp_path / target).symlink_to(original.name)
        elif spelling == "hardlink":
            target = f"hard{original.suffix}"
            os.link(original, tmp_path / target)
        result = run("blur", original.name, target, "--overwrite", cwd=tmp_path)
        assert_one_line_error(result, 11, "would replace the input")
        assert sha256(original) == before
        assert partials(tmp_path) == []


# ---- 5. SIGTERM, SIGHUP, kill -9 ----------------------------------------------------

@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(sig, code, moving_clip, tmp_path):
    proc = start("blur", moving_clip, tmp_path / "out.mp4", "--quality", "thorough")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not partials(tmp_path):
        time.sleep(0.05)
    assert partials(tmp_path), "no partial output appeared"
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_partial_left_by_kill_9_is_removed_by_the_next_run(moving_clip, face_clip, tmp_path):
    proc = start("blur", moving_clip, tmp_path / "out.mp4", "--quality", "thorough")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not partials(tmp_path):
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)
    left = partials(tmp_path)
    assert len(left) == 1  # what kill -9 leaves: a hidden file holding the original audio
    old = time.time() - 60  # the run was killed a while ago
    os.utime(tmp_path / left[0], (old, old))
    # The partial of a run still going in the same folder is locked, and must survive.
    busy, lock = create_partial(tmp_path / "busy.mp4")
    os.utime(busy, (old, old))
    try:
        result = run("blur", face_clip.path, tmp_path / "next.mp4", "--quality", "fast")
        assert result.returncode == 0, result.stderr
        assert partials(tmp_path) == [busy.name]
    finally:
        os.close(lock)
        busy.unlink()
    assert (tmp_path / "next.mp4").exists()


def test_stale_partial_younger_than_a_few_seconds_is_kept(tmp_path):
    young = tmp_path / ".clip.0123abcd.partial.mp4"
    young.write_bytes(b"x")
    assert remove_stale_partials(tmp_path) == [] and young.exists()


# ---- 6. former tracebacks -----------------------------------------------------------

def test_webm_with_default_settings_is_vp9_and_opus(face_clip, tmp_path):
    result = run("blur", face_clip.path, tmp_path / "out.webm", "--quality", "fast")
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "out.webm")) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
        assert c.streams.audio[0].codec_context.name == "opus"
        assert c.streams.audio[0].frames or sum(1 for _ in c.demux(c.streams.audio[0])) > 10


def test_h264_forced_into_webm_is_a_usage_error(face_clip, tmp_path):
    result = run("blur", face_clip.path, tmp_path / "out.webm", "--codec", "libx264")
    assert_one_line_error(result, 2, "libx264 cannot be written to a webm file")
    assert partials(tmp_path) == [] and not (tmp_path / "out.webm").exists()


def test_gif_input_is_redacted_into_an_mp4(tmp_path, sprites):
    gif = tmp_path / "anim.gif"
    with av.open(str(gif), "w") as c:
        stream = c.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "rgb8"
        face = cv2.resize(sprites[0].image, (256, 256))
        for i in range(10):
            c.mux(stream.encode(av.VideoFrame.from_ndarray(np.roll(face, i * 3, axis=1), format="rgb24")))
        c.mux(stream.encode(None))
    result = run("blur", gif, "--quality", "fast")
    assert result.returncode == 0, result.stderr
    frames = decode_rgb(tmp_path / "anim.blurred.mp4")
    assert len(frames) == 10
    face_box = np.array(sprites[0].face_xyxy) * 256 / sprites[0].image.shape[0]  # frame 0 is not shifted
    assert detail_kept(cv2.resize(sprites[0].image, (256, 256)), frames[0], face_box) < 0.4


def test_video_written_to_a_jpg_is_a_usage_error(face_clip, tmp_path):
    result = run("blur", face_clip.path, tmp_path / "out.jpg")
    assert_one_line_error(result, 2, "not .jpg")
    assert list(tmp_path.iterdir()) == []


def test_zero_byte_jpg_is_not_an_image(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    result = run("blur", tmp_path / "zero.jpg", tmp_path / "out.jpg")
    assert_one_line_error(result, 3, "empty file")
    assert not (tmp_path / "out.jpg").exists()


def test_report_in_a_missing_folder_fails_before_any_work(face_clip, tmp_path):
    result = run("blur", face_clip.path, tmp_path / "out.mp4", "--report", tmp_path / "nodir" / "r.json")
    assert_one_line_error(result, 6, "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_report_on_a_full_disk_is_exit_8_and_no_truncated_report(tmp_path):
    """RLIMIT_FSIZE makes the write fail with EFBIG, as a full disk does."""
    code = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))\n"
        "from blurcam.report import write_report\n"
        "from blurcam.errors import DiskFullError\n"
        "try:\n"
        f"    write_report({str(tmp_path / 'r.json')!r}, {{'frames': ['x' * 100] * 100}})\n"
        "except DiskFullError as exc:\n"
        "    raise SystemExit(exc.exit_code)\n")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 8, result.stderr
    assert list(tmp_path.iterdir()) == []


# ---- 7. unclear results ----------------------------------------------------------------

def test_unknown_encoder_preset_is_a_usage_error(face_clip, tmp_path):
    result = run("blur", face_clip.path, tmp_path / "o.mp4", "--preset", "nope")
    assert_one_line_error(result, 2, "preset must be one of")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("delay_s", [0.3, 0.8, 1.5])
def test_ctrl_c_early_says_interrupted_not_a_missing_package(delay_s, face_clip, tmp_path):
    proc = start("blur", face_clip.path, tmp_path / "o.mp4")
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # the machine was fast enough to finish first
        return
    assert proc.returncode == 130, err
    assert "not installed" not in err and "Traceback" not in err
    assert partials(tmp_path) == []


@pytest.fixture(scope="module")
def pcm_clip(tmp_path_factory, sprites) -> Path:
    """A .mov with PCM audio, as cameras and screen recorders write."""
    path = tmp_path_factory.mktemp("pcm") / "pcm.mov"
    face = cv2.resize(sprites[0].image, (320, 320))[:240]
    with av.open(str(path), "w") as c:
        video = c.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = c.add_stream("pcm_s16le", rate=48000, layout="stereo")
        tone = (np.sin(np.arange(1600) * 0.05) * 8000).astype(np.int16)
        for i in range(30):
            c.mux(video.encode(av.VideoFrame.from_ndarray(np.roll(face, i * 2, axis=1), format="rgb24")))
            samples = av.AudioFrame.from_ndarray(np.repeat(tone, 2)[None], format="s16", layout="stereo")
            samples.sample_rate, samples.pts = 48000, i * 1600
            c.mux(audio.encode(samples))
        c.mux(video.encode(None))
    return path


@pytest.mark.parametrize("ext", ["flv", "ts"])
def test_pcm_audio_is_reencoded_to_aac_where_the_container_needs(ext, pcm_clip, tmp_path):
    out = tmp_path / f"out.{ext}"
    result = run("blur", pcm_clip, out, "--quality", "fast")
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        assert c.streams.audio[0].codec_context.name == "aac"
        decoded = sum(f.samples for f in c.decode(audio=0))
    assert decoded > 48000 * 0.8  # about the second of sound that went in


def test_mediapipe_and_ffmpeg_print_nothing_of_their_own(face_clip, tmp_path):
    for i in range(3):
        result = run("blur", face_clip.path, tmp_path / f"o{i}.mp4", "--quality", "fast")
        assert result.returncode == 0, result.stderr
        foreign = [line for line in result.stderr.splitlines() if line and not line.startswith(("blurcam", str(tmp_path)))]
        assert foreign == [], result.stderr


# ---- 8. salvage -------------------------------------------------------------------

@pytest.fixture(scope="module")
def damaged(tmp_path_factory, moving_clip) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("damaged")
    faststart = folder / "fs.mp4"
    with av.open(str(moving_clip)) as inp, av.open(str(faststart), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    data = faststart.read_bytes()
    cut = folder / "phone_died.mp4"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    mkv = folder / "whole.mkv"
    write_clip(mkv, decode_rgb(moving_clip), fps=30)
    broken = bytearray(mkv.read_bytes())
    middle = len(broken) // 2
    broken[middle:middle + 4000] = np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    corrupt = folder / "corrupt_middle.mkv"
    corrupt.write_bytes(bytes(broken))
    return {"cut": cut, "corrupt": corrupt}


@pytest.mark.parametrize("kind", ["cut", "corrupt"])
def test_damaged_recording_refused_without_salvage_and_saved_with_it(kind, damaged, moving, tmp_path):
    src = damaged[kind]
    out = tmp_path / f"out{src.suffix}"
    result = run("blur", src, out, "--quality", "fast")
    assert_one_line_error(result, 5, "--salvage")
    assert not out.exists()
    result = run("blur", src, out, "--salvage", "--quiet")
    assert result.returncode == 12, result.stderr
    assert "salvaged" in result.stderr and "Traceback" not in result.stderr
    frames = decode_rgb(out)
    with av.open(str(src)) as c:  # a plain read stops at the first error; salvage reads on
        readable = 0
        try:
            for packet in c.demux(c.streams.video[0]):
                readable += len(packet.decode())
        except av.FFmpegError:
            pass
    assert readable <= len(frames) < 240 and readable >= 20
    assert_no_face_leaks(moving, frames[::10])


# ---- 9. cameras on Linux ------------------------------------------------------------

def test_v4l2_is_found_under_the_names_pyav_reports():
    if not sys.platform.startswith("linux"):
        pytest.skip("v4l2 is Linux's")
    assert any("," in name for name in av.formats_available)  # aliases are listed together
    assert has_format("v4l2") and has_format("video4linux2")
    assert not has_format("v4l")


def test_camera_input_per_platform():
    linux = camera_input(2, size="1280x720", fps=30, platform="linux")
    assert (linux.url, linux.format, linux.mic) == ("/dev/video2", "v4l2", ("default", "alsa"))
    assert linux.options == {"video_size": "1280x720", "framerate": "30", "timestamps": "abs"}
    assert camera_input(0, audio=False, platform="linux").mic is None
    mac = camera_input(1, platform="darwin")
    assert (mac.url, mac.format, mac.mic) == ("1:0", "avfoundation", None)
    assert camera_input(0, platform="win32").format == "dshow"
    assert has_format("alsa", ["video4linux2,v4l2", "alsa"]) and not has_format("alsa", ["pulse"])


def test_missing_camera_is_a_one_line_error(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("device paths are Linux's")
    free = next(n for n in range(9, 64) if not Path(f"/dev/video{n}").exists())
    result = run("live", "--camera", free, "--to", tmp_path / "x.ts", timeout=60)
    assert_one_line_error(result, 3, f"/dev/video{free}")
    assert not (tmp_path / "x.ts").exists()
