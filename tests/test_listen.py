"""blurcam live --listen: a phone (here tests/push.py, a real encoder in its own process)
pushes to this machine, which removes the faces and sends on."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from blurcam.cli import app
from blurcam.errors import UsageError
from blurcam.io.source import check_listen, listen_input
from conftest import Clip, two_faces_clip
from leak import assert_no_face_leaks, background_psnr, match_input
from test_live import Player

KEY = "sk-listen-7f3a9c"  # must never be printed
ROOT = Path(__file__).parent.parent
PUSH = Path(__file__).parent / "push.py"
N_FRAMES = 150  # 5 s at 30 fps: the model loads (stream obscured) and then detects
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory, sprites) -> Clip:
    return two_faces_clip(tmp_path_factory.mktemp("phone") / "phone.mp4", sprites, N_FRAMES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _blurcam(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "blurcam", "--verbose", "live", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _push(clip: Clip, url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PUSH), str(clip.path), url, *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pushed(clip: Clip, push_url: str, *args: str, pusher_ok: bool = True) -> tuple[int, str, str]:
    """``blurcam live ARGS`` while a phone (another process) pushes ``clip`` to
    ``push_url``: blurcam's exit code, stdout and stderr; both processes are gone after."""
    proc = _blurcam(*args)
    pusher = _push(clip, push_url)
    try:
        out, err = proc.communicate(timeout=120)
        if pusher_ok:
            assert pusher.wait(timeout=30) == 0, pusher.stderr.read()
    finally:
        proc.kill()
        pusher.kill()
    return proc.returncode, out, err


def _assert_redacted_and_detected(clip: Clip, images: list[np.ndarray]) -> None:
    """No face keeps its detail, and the test is not passed by a stream obscured whole
    throughout: once the model has loaded, frames show their background."""
    assert len(images) >= N_FRAMES // 3
    assert_no_face_leaks(clip, images)
    last = images[-1]
    assert background_psnr(clip.frames[match_input(clip, last)], last, clip.boxes[match_input(clip, last)]) > 25


def test_listen_rtmp_push_from_a_phone_faces_gone_key_never_printed(phone_clip, tmp_path):
    port = _free_port()
    url = f"rtmp://127.0.0.1:{port}/live/{KEY}"
    recording = tmp_path / "phone.ts"
    code, out, err = _pushed(phone_clip, url, "--listen", url, "--to", str(recording))
    assert code == 0, err  # the phone hanging up ends the stream: not damage
    assert KEY not in out + err
    assert err.count("waiting for a stream pushed to") == 1
    assert f"rtmp://127.0.0.1:{port}/live/***" in err
    assert "source ended" in err
    with av.open(str(recording)) as c:
        images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    _assert_redacted_and_detected(phone_clip, images)


def test_rtmp_listener_accepts_a_push_to_any_key_as_readme_warns(phone_clip, tmp_path):
    """README says the key is not a password (FFmpeg's RTMP server does not check it);
    if a PyAV update starts refusing a wrong key, this fails and README must change."""
    port = _free_port()
    code, _, err = _pushed(phone_clip, f"rtmp://127.0.0.1:{port}/other-app/guessed-key",
                           "--listen", f"rtmp://127.0.0.1:{port}/live/{KEY}", "--duration", "1",
                           "--to", str(tmp_path / "rec.ts"), pusher_ok=False)
    assert code == 0, err
    assert (tmp_path / "rec.ts").stat().st_size > 0


def test_listen_tcp_mpegts_push_sent_on_to_rtmp_server(phone_clip, rtmp_server):
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}?listen=1&token={KEY}"
    dest = rtmp_server.url(KEY)  # the platform's key: masked too
    player = Player(dest, until_frames=N_FRAMES // 3)
    rtmp_server.wait_for_player(KEY)
    # The sender connects to blurcam (listen=1 on its side would make it listen too).
    code, out, err = _pushed(phone_clip, f"tcp://127.0.0.1:{port}", "--listen", url, "--to", dest)
    player.join(timeout=20)
    assert code == 0, err
    assert KEY not in out + err
    _assert_redacted_and_detected(phone_clip, player.images)


def test_listen_port_in_use_is_a_one_line_usage_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _blurcam("--listen", f"rtmp://127.0.0.1:{port}/live/{KEY}", "--to", str(tmp_path / "out.ts"))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == UsageError.exit_code == 2
    assert err.strip().splitlines() == [f"blurcam: error: --listen rtmp://127.0.0.1:{port}/live/***: "
                                        f"port {port} is in use (another program listens on it); choose another port"]
    assert KEY not in out + err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_ctrl_c_while_waiting_for_the_phone_exits_130():
    port = _free_port()
    proc = _blurcam("--listen", f"rtmp://127.0.0.1:{port}/live/{KEY}", "--to", "-")
    try:
        line = proc.stderr.readline()  # the waiting line comes before the wait
        assert "waiting for a stream pushed to" in line and KEY not in line
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 130
        rest = proc.stderr.read()
    finally:
        proc.kill()
    assert "interrupted (Ctrl-C)" in rest and KEY not in rest
    assert proc.stdout.read() == ""  # nothing was sent


def test_listen_waits_past_source_timeout_for_the_first_connection(phone_clip, tmp_path):
    """A phone may take a minute to start: --source-timeout applies once it is connected."""
    port = _free_port()
    url = f"rtmp://127.0.0.1:{port}/live/{KEY}"
    proc = _blurcam("--listen", url, "--source-timeout", "1", "--to", str(tmp_path / "rec.ts"))
    try:
        time.sleep(3)
        assert proc.poll() is None, proc.stderr.read()
        pusher = _push(phone_clip, url)
        out, err = proc.communicate(timeout=120)
        pusher.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert KEY not in out + err


def test_phone_that_goes_silent_is_a_source_error_after_source_timeout(phone_clip, tmp_path):
    """Connected, then nothing (the app froze, the connection hangs): exit 3 after
    --source-timeout, not a damaged-input error (exit 5, as it was for every live URL
    source); the recording keeps what was sent."""
    port = _free_port()
    url = f"rtmp://127.0.0.1:{port}/live/{KEY}"
    recording = tmp_path / "rec.ts"
    proc = _blurcam("--listen", url, "--source-timeout", "2", "--to", str(recording))
    pusher = _push(phone_clip, url, "--stall-after-s", "1.5")
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        pusher.kill()
    assert proc.returncode == 3, err
    assert f"rtmp://127.0.0.1:{port}/live/***: nothing received for 2 s after frame" in err
    assert KEY not in out + err
    with av.open(str(recording)) as c:  # what was sent before the silence is kept, redacted
        images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert images
    assert_no_face_leaks(phone_clip, images)


runner = CliRunner()


@pytest.mark.parametrize("url, says", [
    (f"rtmp://127.0.0.1:99999/live/{KEY}", "the port must be a number from 1 to 65535"),
    (f"rtmp://127.0.0.1:port/live/{KEY}", "the port must be a number from 1 to 65535"),
    (f"srt://0.0.0.0:9000?mode=listener&passphrase={KEY}", "the FFmpeg inside PyAV has no SRT"),
    (f"udp://0.0.0.0:9000?key={KEY}", "UDP needs no listening"),
    (f"rtsp://0.0.0.0:8554/{KEY}", "cannot listen with rtsp://; give rtmp://HOST:PORT/APP/***"),
    (f"127.0.0.1:1935/live/{KEY}", "takes a URL: rtmp://HOST:PORT/APP/***"),
    (f"rtmp://:1935/live/{KEY}", "no address to listen on"),
    ("rtmp://127.0.0.1:1935", "give the app name"),
    (f"tcp://127.0.0.1?key={KEY}", "give a port"),
    (f"rtmp://192.0.2.77:1935/live/{KEY}", "is not an address of this machine"),
    (f"rtmp://no-such-host.invalid:1935/live/{KEY}", "is not an address of this machine"),
])
def test_malformed_listen_address_is_a_one_line_usage_error(url, says, tmp_path):
    result = runner.invoke(app, ["live", "--listen", url, "--to", str(tmp_path / "out.ts")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.output
    assert KEY not in result.output
    assert list(tmp_path.iterdir()) == []


def test_source_and_listen_together_is_a_usage_error(face_clip):
    result = runner.invoke(app, ["live", str(face_clip.path), "--listen", f"rtmp://127.0.0.1/live/{KEY}", "--to", "-"])
    assert result.exit_code == 2 and "not both" in result.output and KEY not in result.output


@pytest.mark.parametrize("url, host, port", [
    (f"rtmp://0.0.0.0:1935/live/{KEY}", "0.0.0.0", 1935),
    (f"rtmp://127.0.0.1/live/{KEY}", "127.0.0.1", 1935),  # RTMP's port by default
    ("tcp://127.0.0.1:9000?listen=1", "127.0.0.1", 9000),
    (f"rtmp://[::1]:1936/live/{KEY}", "::1", 1936),
])
def test_listen_input_parses_host_and_port_and_masks_the_key(url, host, port):
    address = listen_input(url)
    assert (address.host, address.port, address.options) == (host, port, {"listen": "1"})
    assert KEY not in address.shown and address.url == url


def test_check_listen_leaves_the_port_free():
    port = _free_port()
    check_listen(listen_input(f"rtmp://127.0.0.1:{port}/live/x"))
    with socket.socket() as s:  # what FFmpeg does next must still work
        s.bind(("127.0.0.1", port))
