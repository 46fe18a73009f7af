"""Folder runs as a desk meets them: a card dump in, a mirrored redacted tree out, resumable.

Real clips with real faces (scikit-image photos), real worker processes, real signals.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from blurcam.newsroom.batch import MANIFEST_NAME, plan_jobs
from blurcam.cli import app
from blurcam.errors import OutputCollisionError
from blurcam.io.atomic import is_partial_name
from blurcam.synth import Placement, background, render, write_clip
from conftest import decode_rgb
from leak import detail_kept

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def make_clip(path: Path, sprite, n_frames=20, size_wh=(320, 180), audio=False):
    rendered = list(render([Placement(sprite, 120, (10, 20), (160, 40))], background(size_wh), n_frames))
    write_clip(path, (f for f, _ in rendered), audio=audio)
    return [f for f, _ in rendered], [b for _, b in rendered]


@pytest.fixture(scope="session")
def card(tmp_path_factory, sprites):
    """A small card dump: two clips (one in a subfolder), a photo, a sidecar and a hidden file."""
    root = tmp_path_factory.mktemp("card")
    (root / "DCIM").mkdir()
    truth = {"a.mp4": make_clip(root / "a.mp4", sprites[0], audio=True),
             "DCIM/b.mkv": make_clip(root / "DCIM" / "b.mkv", sprites[1])}
    cv2.imwrite(str(root / "DCIM" / "photo.jpg"), cv2.cvtColor(cv2.resize(sprites[0].image, (300, 300)),
                                                               cv2.COLOR_RGB2BGR))
    (root / "DCIM" / "b.xml").write_text("<gps>40.7128,-74.0060</gps>")
    shutil.copy(root / "a.mp4", root / ".hidden.mp4")
    return root, truth


def blur(*args):
    return runner.invoke(app, ["blur", *map(str, args)])


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if is_partial_name(p.name) or "partial" in p.name)


def manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text())


def test_folder_is_mirrored_redacted_and_resumed(card, tmp_path):
    root, truth = card
    out = tmp_path / "out"
    result = blur(root, "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted(["DCIM/b.mkv", "DCIM/photo.jpg", MANIFEST_NAME, "a.mp4"])  # no sidecar, no hidden file
    for key, (frames, boxes) in truth.items():
        redacted = decode_rgb(out / key)
        assert len(redacted) == len(frames)
        for i in (0, len(frames) // 2, len(frames) - 1):
            assert detail_kept(frames[i], redacted[i], boxes[i][0]) < 0.4, (key, i)
    files = manifest(out)["files"]
    assert {k: v["state"] for k, v in files.items()} == dict.fromkeys(["DCIM/b.mkv", "DCIM/photo.jpg", "a.mp4"], "done")
    assert all(len(v["input_sha256"]) == 64 and v["input_size"] > 0 for v in files.values())
    assert str(root) not in (out / MANIFEST_NAME).read_text()  # relative names only

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.m*")}
    again = blur(root, "-o", out)
    assert again.exit_code == 0 and "skipping 3 files" in again.output, again.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.m*")} == stamps

    # a touched input with the same content is still done; other settings redo everything
    os.utime(root / "a.mp4", ns=(time.time_ns(), time.time_ns()))
    assert "skipping 3 files" in blur(root, "-o", out).output
    changed = blur(root, "-o", out, "--mode", "pixelate", "--quiet")
    assert changed.exit_code == 0 and all(p.stat().st_mtime_ns != t for p, t in stamps.items())
    forced = blur(root, "-o", out, "--mode", "pixelate", "--force", "--quiet")
    assert forced.exit_code == 0 and "skipping" not in forced.output


def test_corrupt_file_fails_alone(card, tmp_path):
    root = tmp_path / "in"
    shutil.copytree(card[0], root)
    (root / "DCIM" / "broken.mp4").write_bytes((root / "a.mp4").read_bytes()[:3000])
    out = tmp_path / "out"
    result = blur(root, "-o", out, "--jobs", "2", "--quiet")
    assert result.exit_code == 20, result.output
    assert "1 of 4 files failed" in result.output.splitlines()[-1]
    assert "DCIM/broken.mp4" in result.output and "Traceback" not in result.output
    assert (out / "a.mp4").exists() and (out / "DCIM" / "b.mkv").exists() and (out / "DCIM" / "photo.jpg").exists()
    assert not (out / "DCIM" / "broken.mp4").exists() and partials(out) == []
    assert manifest(out)["files"]["DCIM/broken.mp4"]["state"] == "failed"  # said so (blurcam review), retried by the next run


def test_two_inputs_one_output_name(card, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(card[0] / "a.mp4", other / "A.mp4")  # same name on a case-insensitive disk
    out = tmp_path / "out"
    result = blur(card[0] / "a.mp4", other / "A.mp4", "-o", out)
    assert result.exit_code == 21, result.output
    assert len(result.output.strip().splitlines()) == 1 and "would both be written to" in result.output
    assert not out.exists()
    with pytest.raises(OutputCollisionError):
        plan_jobs([card[0], other], out)


def test_unwritable_output_folder(card, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = blur(card[0], "-o", blocker / "out")
    assert result.exit_code == 6 and len(result.output.strip().splitlines()) == 1, result.output
    assert "output folder cannot be created" in result.output


def test_someone_elses_file_is_not_replaced(card, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"precious")
    result = blur(card[0], "-o", out)
    assert result.exit_code == 7 and "--force" in result.output, result.output
    assert (out / "a.mp4").read_bytes() == b"precious"


def test_leftover_partial_from_a_killed_run_is_removed(card, tmp_path):
    out = tmp_path / "out" / "DCIM"
    out.mkdir(parents=True)
    leftover = out / ".b.0123abcd.partial.mkv"
    leftover.write_bytes(b"half a video")
    os.utime(leftover, (time.time() - 60, time.time() - 60))  # its run died a minute ago
    assert blur(card[0], "-o", out.parent, "--quiet").exit_code == 0
    assert partials(out.parent) == []


@pytest.fixture(scope="module")
def long_card(tmp_path_factory, sprites):
    """Four 120-frame 640x360 clips: long enough for a signal to land mid-run."""
    root = tmp_path_factory.mktemp("long")
    for i in range(4):
        make_clip(root / f"clip{i}.mp4", sprites[i % 2], n_frames=120, size_wh=(640, 360))
    return root


def _start(args, **env_extra) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_extra}
    return subprocess.Popen([sys.executable, "-m", "blurcam", "blur", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_mid_run(out: Path, proc: subprocess.Popen, timeout_s=120) -> None:
    """Until one file is done and another is being written."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            states = [v["state"] for v in manifest(out)["files"].values()]
        except (OSError, ValueError):
            states = []
        writing = [n for n in partials(out) if n.endswith(".partial.mp4")]  # not the manifest's own
        if 0 < states.count("done") < len(states) - 1 and writing:
            return
        time.sleep(0.05)
    pytest.fail("the run never reached the middle")


def _assert_complete(out: Path, names, frames=120):
    for name in names:
        assert len(decode_rgb(out / name)) == frames, name


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_folder_run_resumes(long_card, tmp_path, sig):
    out = tmp_path / "out"
    proc = _start([long_card, "-o", out, "--jobs", "2", "--quality", "fast"])
    _wait_mid_run(out, proc)
    done_before = {k for k, v in manifest(out)["files"].items() if v["state"] == "done"}
    if sig == signal.SIGINT:  # Ctrl-C reaches the whole foreground group
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err
    else:  # the run itself killed outright; its workers notice and remove their partial files
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 30
        while partials(out) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert partials(out) == []
    finished = {k for k, v in manifest(out)["files"].items() if v["state"] == "done"}
    assert done_before <= finished and len(finished) < 4
    _assert_complete(out, finished)
    stamps = {k: (out / k).stat().st_mtime_ns for k in finished}

    rerun = _start([long_card, "-o", out, "--jobs", "2", "--quality", "fast"])
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"skipping {len(finished)} files" in err
    assert {k: (out / k).stat().st_mtime_ns for k in finished} == stamps
    _assert_complete(out, [f"clip{i}.mp4" for i in range(4)])
    assert partials(out) == []


# --- Ray: a real local cluster (ray start --head on 127.0.0.1, two worker slots) ----------

# Token authentication on, with a token made for this test run: nothing may depend on a
# token a manual Ray run left in ~/.ray (CI runs with an empty HOME). The cluster and
# blurcam's driver both read it from RAY_AUTH_TOKEN.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def _ray_exe() -> str | None:
    exe = Path(sys.executable).parent / "ray"
    return str(exe) if exe.exists() else shutil.which("ray")


@pytest.fixture
def ray_cluster(tmp_path):
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("BLURCAM_REQUIRE_RAY"):
            raise
        pytest.skip("Ray is not installed (pip install 'blurcam[ray]'); CI installs it")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Loopback only (Ray otherwise rewrites 127.0.0.1 to the machine's address), and token
    # authentication on, for the cluster and for blurcam's driver (set in _start's env).
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", **RAY_ENV}
    temp = Path(f"/tmp/blurcam-ray-{os.getpid()}")
    subprocess.run([_ray_exe(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   env=env, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([_ray_exe(), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _ray_task_pids() -> list[int]:
    """Ray workers running a blurcam file now (Ray titles them ray::<function>)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(b"ray::_ray_job"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def test_ray_cluster_survives_a_killed_worker(ray_cluster, tmp_path, sprites):
    card = tmp_path / "card"
    (card / "b").mkdir(parents=True)
    names = [f"{'b/' if i % 2 else ''}clip{i}.mp4" for i in range(6)]
    for i, name in enumerate(names):
        make_clip(card / name, sprites[i % 2], n_frames=90, size_wh=(640, 360))
    out = tmp_path / "out"
    proc = _start([card, "-o", out, "--ray", ray_cluster, "--quality", "fast"], **RAY_ENV)
    deadline, killed = time.monotonic() + 240, None
    while time.monotonic() < deadline and proc.poll() is None and killed is None:
        running = _ray_task_pids()
        if running and partials(out):
            killed = running[0]
            os.kill(killed, signal.SIGKILL)  # a worker lost mid-file
        time.sleep(0.05)
    if killed is None:
        proc.kill()
        pytest.fail(f"no Ray worker was caught writing a file: {proc.communicate()[1][-2000:]}")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _assert_complete(out, names, frames=90)
    assert partials(out) == []
    files = manifest(out)["files"]
    assert sorted(files) == sorted(names) and all(v["state"] == "done" for v in files.values())
    # a rerun on the cluster skips everything
    again = _start([card, "-o", out, "--ray", ray_cluster, "--quality", "fast"], **RAY_ENV)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0 and "skipping 6 files" in err, err


def test_ray_unreachable_is_one_line(card, tmp_path):
    pytest.importorskip("ray")
    result = blur(card[0], "-o", tmp_path / "out", "--ray", "127.0.0.1:9")
    assert result.exit_code == 25, result.output
    assert "cannot reach the Ray cluster" in result.output.strip().splitlines()[-1]
