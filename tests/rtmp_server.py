"""A real RTMP server for the live-streaming tests: nginx with Debian's RTMP module.

    from rtmp_server import rtmp_server  # in a test module; tests/ is on sys.path

    def test_push(rtmp_server):
        url = rtmp_server.url("cam1")  # rtmp://127.0.0.1:PORT/live/cam1

The fixture starts one nginx per test module on 127.0.0.1 and a free port, with its
own config, pid file and logs in a temporary folder, and skips the tests when nginx
or the RTMP module is not installed (Debian/Ubuntu: ``apt-get install nginx
libnginx-mod-rtmp``).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

MODULE_PATHS = ("/usr/lib/nginx/modules/ngx_rtmp_module.so",  # Debian, Ubuntu
                "/usr/lib64/nginx/modules/ngx_rtmp_module.so",  # Fedora, RHEL
                "/usr/lib/nginx/modules/ngx_rtmp_module.so.0")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0

_CONFIG = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            wait_key on;  # a player joining mid-stream starts at a keyframe
            allow publish 127.0.0.1;
            deny publish all;
            allow play all;
        }}
    }}
}}
"""


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, even by SIGKILL (Linux), so a
    killed test run leaves no nginx behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RtmpServer:
    """One nginx process serving ``rtmp://127.0.0.1:port/live/<name>``.

    ``restart()`` stops it (publishers and players are disconnected) and starts it
    again on the same port, for reconnect tests.
    """

    def __init__(self, nginx: str, module: str, workdir: Path) -> None:
        self.nginx, self.workdir = nginx, workdir
        self.port = _free_port()
        self.config = workdir / "nginx.conf"
        self.config.write_text(_CONFIG.format(module=module, dir=workdir, port=self.port))
        self.process: subprocess.Popen | None = None

    def url(self, stream_name: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{stream_name}"

    def start(self) -> None:
        # -e: the error log before the config is read (the default is /var/log/nginx).
        cmd = [self.nginx, "-p", str(self.workdir), "-c", str(self.config), "-e", str(self.workdir / "startup.log")]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _accepts(self.port):
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace")
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {err}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not accept connections on port {self.port} "
                                   f"within {START_TIMEOUT_S} s\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGTERM): open connections are closed at once."""
        if self.process is None:
            return
        self.resume()  # a frozen nginx cannot handle SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process.stderr.close()
        self.process = None

    def _pids(self) -> list[int]:
        pid = self.process.pid
        try:
            workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            workers = []
        return [pid, *map(int, workers)]

    def pause(self) -> None:
        """Freeze nginx (SIGSTOP): connections stay open but nothing is read or answered,
        like a server or network that silently went away."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def players_seen(self, stream_name: str) -> int:
        """How many players have asked to play ``stream_name`` (from nginx's info log)."""
        try:
            return (self.workdir / "error.log").read_text(errors="replace").count(f"play: name='{stream_name}'")
        except OSError:
            return 0

    def wait_for_player(self, stream_name: str, seen_before: int = 0, timeout_s: float = 10.0) -> None:
        """Wait until one more player subscribed, so that it gets the stream from its first frame."""
        deadline = time.monotonic() + timeout_s
        while self.players_seen(stream_name) <= seen_before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no player subscribed to {stream_name!r} within {timeout_s} s")
            time.sleep(0.02)

    def log_tail(self, n_lines: int = 20) -> str:
        try:
            return "\n".join((self.workdir / "error.log").read_text(errors="replace").splitlines()[-n_lines:])
        except OSError:
            return ""


def _find_module() -> str | None:
    return next((p for p in MODULE_PATHS if Path(p).is_file()), None)


@pytest.fixture(scope="module")
def rtmp_server(tmp_path_factory):
    """A running nginx-rtmp server (module scope); skips if nginx or the module is missing."""
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if Path(p).is_file()), None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx libnginx-mod-rtmp)")
    module = _find_module()
    if module is None:
        pytest.skip(f"the nginx RTMP module is not installed (none of {', '.join(MODULE_PATHS)}; "
                    "apt-get install libnginx-mod-rtmp)")
    server = RtmpServer(nginx, module, tmp_path_factory.mktemp("nginx-rtmp"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
