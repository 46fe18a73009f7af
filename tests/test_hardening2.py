"""Regression tests for "Hardening II" (issue 23), the parts in ``blur`` and folder runs:
each defect as a user meets it. Real processes on real files; servers on 127.0.0.1 only."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from blurcam.synth import Placement, background, render, write_clip
from blurcam.urls import mask_secrets
from conftest import Clip, decode_rgb
from leak import assert_no_face_leaks
from test_hardening import assert_one_line_error, run, start

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def astronaut_jpg(path: Path) -> Path:
    from skimage import data

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def manifest(folder: Path) -> dict:
    return json.loads((folder / "blurcam-manifest.json").read_text())


# ---- 3. blur prints secrets -----------------------------------------------------------

class FileServer:
    """Serves one file over HTTP on 127.0.0.1 and records every request path."""

    def __init__(self, path: Path) -> None:
        requests = self.requests = []
        body = path.read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_server(face_clip):
    server = FileServer(face_clip.path)
    yield server
    server.close()


@pytest.mark.parametrize("where", ["input", "input_rtsp", "output", "output_dir", "folder_input"])
def test_blur_given_a_url_prints_no_secret_and_points_to_live(where, http_server, face_clip, tmp_path):
    url = f"http://user:secretpw@127.0.0.1:{http_server.port}/a.mp4?token=abc123"
    args = {"input": [url, tmp_path / "o.mp4"],
            "input_rtsp": ["rtsp://admin:secretpw@127.0.0.1:1/cam?token=abc123", tmp_path / "o.mp4"],
            "output": [face_clip.path, "rtmp://user:secretpw@127.0.0.1:1/app/abc123"],
            "output_dir": [face_clip.path, "-o", "rtmp://127.0.0.1:1/app/abc123?secretpw"],
            "folder_input": [face_clip.path, url, "-o", tmp_path / "out"]}[where]
    report = tmp_path / "r.json"
    result = run("--verbose", "blur", *args, "--report", report, "--quality", "fast")
    assert_one_line_error(result, 2, "blurcam live", "***")
    assert ("blurcam live SOURCE --to FILE" if where.endswith("input") or where == "input_rtsp"
            else "blurcam live INPUT --to URL") in result.stderr
    printed = result.stdout + result.stderr
    assert "secretpw" not in printed and "abc123" not in printed, printed
    assert list(tmp_path.iterdir()) == []  # no output, no report, no folder named "http:"
    assert http_server.requests == []  # refused before anything was opened


def test_a_url_folded_by_a_path_is_still_masked():
    """pathlib turns http:// into http:/ (the mangled form the issue saw printed)."""
    text = "http:/user:secretpw@127.0.0.1:8765/a.mp4?token=abc123: no such file"
    assert mask_secrets(text) == "http://***@127.0.0.1:8765/a.mp4?token=***: no such file"
    assert mask_secrets("/home/me/clip.mp4 and C:/Users/me/a.mp4") == "/home/me/clip.mp4 and C:/Users/me/a.mp4"


# ---- 4. subfolders left out in silence ------------------------------------------------

def test_unreadable_subfolder_is_listed_and_the_run_exits_20(tmp_path):
    card = tmp_path / "card"
    astronaut_jpg(card / "a.jpg")
    astronaut_jpg(card / "locked" / "b.jpg")
    os.chmod(card / "locked", 0o000)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "blurcam", "blur", card, "-o", out, "--quality", "fast", "--jobs", "1"]
    if os.geteuid() == 0:  # root reads a chmod 000 folder anyway, unless it gives up that capability
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a chmod 000 folder stays readable")
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    try:
        result = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
                                capture_output=True, text=True, timeout=300)
    finally:
        os.chmod(card / "locked", 0o755)
    assert result.returncode == 20, result.stderr
    assert "Traceback" not in result.stderr
    assert f"left out {card / 'locked'}: folder cannot be read: Permission denied" in result.stderr
    assert "inputs could not be read" in result.stderr.strip().splitlines()[-1]
    assert (out / "a.jpg").exists()  # the readable part is done
    assert manifest(out)["files"]["a.jpg"]["state"] == "done"


def test_broken_symlinked_subfolder_is_listed_and_the_run_exits_20(tmp_path):
    """A card's folder that points nowhere (an unmounted disk): fails for root too."""
    card = tmp_path / "card"
    astronaut_jpg(card / "a.jpg")
    (card / "archive").symlink_to(tmp_path / "unmounted" / "2024")
    (card / "self").symlink_to(card / "self")  # a link to itself: ELOOP
    out = tmp_path / "out"
    result = run("blur", card, "-o", out, "--quality", "fast", "--jobs", "1", "--quiet")
    assert result.returncode == 20, result.stderr
    assert f"left out {card / 'archive'}: broken symbolic link" in result.stderr
    assert f"left out {card / 'self'}: cannot be read: Too many levels of symbolic links" in result.stderr
    assert (out / "a.jpg").exists()


def test_symlinked_folders_are_followed_and_loops_are_not(tmp_path):
    card, elsewhere = tmp_path / "card", tmp_path / "elsewhere"
    astronaut_jpg(card / "day1" / "a.jpg")
    astronaut_jpg(elsewhere / "b.jpg")
    (card / "linked").symlink_to(elsewhere, target_is_directory=True)
    (card / "day1" / "up").symlink_to(card, target_is_directory=True)  # a loop back to the card
    out = tmp_path / "out"
    result = run("blur", card, "-o", out, "--quality", "fast", "--jobs", "1", timeout=300)
    assert result.returncode == 0, result.stderr
    done = sorted(k for k, rec in manifest(out)["files"].items() if rec["state"] == "done")
    assert done == ["day1/a.jpg", "linked/b.jpg"]
    assert (out / "linked" / "b.jpg").is_file() and not (out / "day1" / "up").exists()


# ---- 5. two folder runs into one OUTPUT_DIR ------------------------------------------

def test_two_concurrent_folder_runs_into_one_output_dir_keep_every_record(face_clip, tmp_path):
    a, b, out = tmp_path / "A", tmp_path / "B", tmp_path / "out"
    for folder in (a, b):
        folder.mkdir()
        shutil.copy(face_clip.path, folder / f"{folder.name}1.mp4")
        astronaut_jpg(folder / f"{folder.name}2.jpg")
    first = start("blur", a, "-o", out, "--quality", "fast", "--jobs", "1")
    deadline = time.monotonic() + 60
    while not (out / "blurcam-manifest.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first run has planned, and holds OUTPUT_DIR
    second = start("blur", b, "-o", out, "--quality", "fast", "--jobs", "1")
    _, err_a = first.communicate(timeout=300)
    _, err_b = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err_a + err_b
    files = manifest(out)["files"]
    assert {k: rec["state"] for k, rec in files.items()} == {k: "done" for k in ("A1.mp4", "A2.jpg", "B1.mp4", "B2.jpg")}
    assert f"waiting for another blurcam run into {out}" in err_b
    again = run("blur", a, "-o", out, "--quality", "fast")  # A's outputs are known, not "someone's files"
    assert again.returncode == 0, again.stderr
    assert "skipping 2 files done before" in again.stderr


# ---- 6. damaged MPEG-TS ---------------------------------------------------------------

@pytest.fixture(scope="module")
def ts_clips(tmp_path_factory, sprites) -> tuple[Clip, Path]:
    """A whole 90-frame 640x360 .ts with two moving faces, and a copy with 40 kB of random
    bytes in the middle (the issue's case)."""
    astronaut, camera = sprites
    placements = [Placement(astronaut, 200, (10, 40), (300, 60)), Placement(camera, 120, (400, 40), (200, 160))]
    frames, boxes = zip(*render(placements, background((640, 360)), 90))
    folder = tmp_path_factory.mktemp("ts")
    whole = folder / "whole.ts"
    write_clip(whole, frames, fps=30)
    data = bytearray(whole.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 40_000] = np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8).tobytes()
    broken = folder / "broken.ts"
    broken.write_bytes(bytes(data))
    return Clip(whole, list(frames), list(boxes)), broken


def test_damaged_mpegts_is_refused_and_salvage_exits_12(ts_clips, tmp_path):
    clip, broken = ts_clips
    out = tmp_path / "out.mp4"
    result = run("blur", broken, out, "--quality", "fast")
    assert_one_line_error(result, 5, "damaged", "--salvage")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # balanced: fast (MediaPipe alone) misses the 51 px face in the intact clip as well
    result = run("blur", broken, out, "--salvage", "--quiet", timeout=300)
    assert result.returncode == 12, result.stderr
    assert "salvaged" in result.stderr and "Traceback" not in result.stderr
    frames = decode_rgb(out)
    assert 30 <= len(frames) < 90
    assert_no_face_leaks(clip, frames[::6])


def test_whole_mpegts_is_not_called_damaged(ts_clips, tmp_path):
    clip, _ = ts_clips
    out = tmp_path / "out.mp4"
    result = run("blur", clip.path, out, "--quality", "fast", "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(decode_rgb(out)) == 90


# ---- 8. manifest of the wrong shape ---------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"schema": 1, "files": "oops"},
    {"schema": 1, "settings": {}, "files": {"a.jpg": 7}},
    {"schema": 1, "settings": [], "files": {}},
    {"schema": 1, "settings": {}, "files": {"a.jpg": {"state": "done", "settings": ["x"]}}},
])
def test_manifest_of_the_wrong_shape_is_exit_24(bad, tmp_path):
    card, out = tmp_path / "card", tmp_path / "out"
    astronaut_jpg(card / "a.jpg")
    out.mkdir()
    (out / "blurcam-manifest.json").write_text(json.dumps(bad))
    result = run("blur", card, "-o", out, "--quality", "fast")
    assert_one_line_error(result, 24, "manifest", "--force")
    assert not (out / "a.jpg").exists()
    assert json.loads((out / "blurcam-manifest.json").read_text()) == bad  # left as it was
    result = run("blur", card, "-o", out, "--quality", "fast", "--force", "--quiet")
    assert result.returncode == 0, result.stderr
    assert manifest(out)["files"]["a.jpg"]["state"] == "done"


# ---- 9. reports reveal folder names ---------------------------------------------------

def test_report_names_files_by_base_name_unless_asked(tmp_path):
    src = astronaut_jpg(tmp_path / "private-home" / "source-folder" / "shot.jpg").absolute()
    out = (tmp_path / "private-home" / "done" / "shot.jpg").absolute()
    out.parent.mkdir()
    report = tmp_path / "r.json"
    result = run("blur", src, out, "--report", report, "--quality", "fast", "--quiet")
    assert result.returncode == 0, result.stderr
    text = report.read_text()
    assert json.loads(text)["input"] == "shot.jpg" and json.loads(text)["output"] == "shot.jpg"
    assert "private-home" not in text and str(tmp_path) not in text
    full = tmp_path / "full.json"
    result = run("blur", src, tmp_path / "again.jpg", "--report", full, "--report-full-paths", "--quality", "fast")
    assert result.returncode == 0, result.stderr
    assert json.loads(full.read_text())["input"] == str(src)
    assert_one_line_error(run("blur", src, tmp_path / "x.jpg", "--report-full-paths"), 2, "--report")


# ---- 10. exit codes and messages ------------------------------------------------------

def test_output_dir_that_is_the_input_folder_is_exit_11(tmp_path):
    card = tmp_path / "card"
    astronaut_jpg(card / "a.jpg")
    before = sorted(p.name for p in card.iterdir())
    for spelling in (card, Path(f"{card}/."), tmp_path / "card-link"):
        if spelling.name == "card-link":
            spelling.symlink_to(card, target_is_directory=True)
        result = run("blur", card, "-o", spelling, "--quality", "fast")
        assert_one_line_error(result, 11, "output folder is the input")
        assert sorted(p.name for p in card.iterdir()) == before


def test_report_that_is_the_output_says_it_would_replace_the_output(face_clip, tmp_path):
    out = tmp_path / "out.mp4"
    result = run("blur", face_clip.path, out, "--report", out, "--quality", "fast")
    assert_one_line_error(result, 11, "the report would replace the output")
    assert "input" not in result.stderr
    assert not out.exists()
