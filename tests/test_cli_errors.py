"""Issue 22, point 5: one place maps errors and stop signals to exit codes for every
command, and folder verification is a library function with its own result type.

Real ``python -m blurcam`` processes (new session: a signal reaches the command alone),
real files, real signals.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from blurcam.cli import cli_errors
from blurcam.errors import PairError, ResidualFacesError, SinkError, UsageError
from blurcam.signals import Interrupted
from blurcam.synth import Placement, background, render, write_clip
from blurcam.newsroom.verify import FileVerdict, Finding, FolderEvents, FolderVerdict, VerifyConfig, VerifyResult, verify_folder

ROOT = Path(__file__).parent.parent


def start(*args, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "blurcam", *map(str, args)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = start(*args)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def make_clip(path: Path, sprite, n_frames: int, size_wh=(320, 180), upside_down: bool = False) -> Path:
    scene = background(size_wh)
    if upside_down:  # another picture: no redaction of the upright one
        scene = scene[::-1].copy()
    write_clip(path, (f for f, _ in render([Placement(sprite, size_wh[1] * 2 // 3, (10, 20), (size_wh[0] // 2, 40))],
                                           scene, n_frames)), audio=False)
    return path


def interrupted_line(err: str, name: str) -> str:
    """The one line an interrupted command prints (besides its own progress notes), no traceback."""
    assert "Traceback" not in err and "Aborted" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("making ", "measuring "))]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"blurcam: interrupted ({name}); "), err
    return lines[0]


# ---- the drift: verify exited 130 on SIGTERM, bench had no interrupt handling -----------

@pytest.fixture(scope="module")
def long_pair(tmp_path_factory, sprites):
    """A 200-frame 1280x720 clip and an output that kept every face (a copy of it): the
    check of every frame takes half a minute, so a signal lands mid-check."""
    folder = tmp_path_factory.mktemp("long_pair")
    clip = make_clip(folder / "in.mp4", sprites[0], 200, size_wh=(1280, 720))
    shutil.copy(clip, folder / "out.mp4")
    return clip, folder / "out.mp4"


def test_regression_verify_exited_130_on_sigterm(long_pair, tmp_path):
    clip, out = long_pair
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = start("verify", clip, out, "--every", "1", "--sheet", reports / "sheet.png", "--json", reports / "v.json")
    time.sleep(6.0)  # imports done (else the line would not say what was left), checking frames
    assert proc.poll() is None, "verify ended before the signal: make the clip longer"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert interrupted_line(err, "SIGTERM").endswith("no partial sheet or JSON left")
    assert list(reports.iterdir()) == []  # no sheet, no JSON, no partial of either


@pytest.mark.parametrize("sig, code, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_regression_bench_had_no_interrupt_handling(sig, code, name, tmp_path):
    proc = start("bench", "--no-crowd", "--quality", "fast", env_extra={"TMPDIR": str(tmp_path)})
    first = proc.stderr.readline()  # the clip is being made in the temporary folder
    assert first.startswith("making "), first + proc.communicate(timeout=60)[1]
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, first + err
    assert interrupted_line(first + err, name).endswith("temporary folder removed")
    assert list(tmp_path.iterdir()) == []


# ---- folder verification: the JSON users keep, and the library result behind it --------

TOP_KEYS = ["schema", "ok", "input", "output", "files"]
PAIR_KEYS = ["schema", "input", "output", "ok", "frames", "every", "threshold", "residual_score", "large_face_px",
             "large_residual_score", "detail_limit", "min_aligned", "min_face_px", "frames_checked", "faces_checked",
             "not_checked", "residual_frames", "findings", "doubtful", "seconds", "sheet"]
NOT_CHECKED_KEYS = ["frames_skipped", "faces_under_min_px_seen", "summary"]
TILE_KEYS = ["frame", "xywh", "scale", "residual"]
FINDING_KEYS = ["frame", "time_s", "box", "score", "detail", "residual", "doubtful"]


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, sprites):
    """A folder run of four clips, then: c.mp4's output deleted, d.mp4's replaced by
    another picture, sub/b.mp4's replaced by its raw input (every face left)."""
    root = tmp_path_factory.mktemp("folder_verify")
    card, out = root / "card", root / "out"
    (card / "sub").mkdir(parents=True)
    for name, sprite in (("a.mp4", 0), ("sub/b.mp4", 1), ("c.mp4", 0), ("d.mp4", 1)):
        make_clip(card / name, sprites[sprite], 20)
    result = run("blur", card, "-o", out, "--quality", "fast", "--jobs", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    (out / "c.mp4").unlink()
    make_clip(out / "d.mp4", sprites[0], 20, upside_down=True)
    shutil.copy(card / "sub" / "b.mp4", out / "sub" / "b.mp4")
    return card, out


def test_folder_verify_json_keeps_its_shape(folder_run, tmp_path):
    card, out = folder_run
    result = run("verify", card, out, "--json", tmp_path / "v.json", "--sheet", tmp_path / "sheets", "--every", "5")
    assert result.returncode == 23, result.stderr
    assert result.stderr.strip().splitlines()[-1] == ("blurcam: error: 2 of 4 outputs missing or not a redaction of "
                                                      "their input (first: c.mp4); residual faces in 1 more")
    report = json.loads((tmp_path / "v.json").read_text())
    assert list(report) == TOP_KEYS
    assert (report["schema"], report["ok"], report["input"], report["output"]) == (2, False, "card", "out")
    assert list(report["files"]) == ["a.mp4", "c.mp4", "d.mp4", "sub/b.mp4"]  # the run's order
    assert report["files"]["c.mp4"] == {"ok": False, "error": "output missing (not done by a folder run)"}
    mismatch = report["files"]["d.mp4"]
    assert list(mismatch) == ["ok", "error"] and mismatch["ok"] is False
    assert mismatch["error"].startswith("does not look like a redaction of d.mp4")  # no folder in it
    for key, ok in (("a.mp4", True), ("sub/b.mp4", False)):
        record = report["files"][key]
        assert list(record) == PAIR_KEYS, key
        assert (record["schema"], record["input"], record["output"], record["ok"]) == (2, key, key, ok)
        assert (record["frames"], record["every"]) == (20, 5)
        assert record["frames_checked"] == 5 if ok else record["frames_checked"] > 5  # a residual face is followed
        assert list(record["not_checked"]) == NOT_CHECKED_KEYS
        assert record["sheet"] and all(list(tile) == TILE_KEYS for tile in record["sheet"])
        assert all(isinstance(record[k], float) for k in ("threshold", "detail_limit", "seconds"))
        assert bool(record["findings"]) == (not ok) and bool(record["residual_frames"]) == (not ok)
        assert all(list(f) == FINDING_KEYS for f in record["findings"] + record["doubtful"])
        assert (tmp_path / "sheets" / f"{key}.sheet.png").exists()
    assert sorted(p.name for p in (tmp_path / "sheets").rglob("*") if p.is_file()) == ["a.mp4.sheet.png",
                                                                                       "b.mp4.sheet.png"]
    full = run("verify", card, out, "--json", tmp_path / "full.json", "--every", "5", "--report-full-paths")
    assert full.returncode == 23, full.stderr
    report = json.loads((tmp_path / "full.json").read_text())
    assert report["input"] == str(card.resolve()) and report["files"]["a.mp4"]["input"] == str((card / "a.mp4").resolve())


class Recorder(FolderEvents):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def planned(self, keys):
        self.calls.append(("planned", tuple(keys)))

    def started(self, key):
        self.calls.append(("started", key))

    def progress(self, key, frames_done, frames_total):
        if frames_done == frames_total:
            self.calls.append(("progress", key, frames_done))

    def finished(self, verdict):
        self.calls.append(("finished", verdict.key, verdict.status))


def test_verify_folder_returns_a_verdict_the_json_is_made_of(folder_run, tmp_path):
    card, out = folder_run
    events = Recorder()
    verdict = verify_folder(card, out, VerifyConfig(every=5), events=events)
    assert isinstance(verdict, FolderVerdict) and not verdict.ok
    assert [(f.key, f.status) for f in verdict.files] == [("a.mp4", "ok"), ("c.mp4", "missing"),
                                                          ("d.mp4", "mismatch"), ("sub/b.mp4", "residual")]
    assert verdict.unchecked == ["c.mp4", "d.mp4"] and verdict.residual == ["sub/b.mp4"]
    a, c, _, b = verdict.files
    assert a.ok and a.result.frames == 20 and len(a.result.frames_checked) == 5 and a.sheet and a.error is None
    assert c.result is None and c.error == "output missing (not done by a folder run)"
    assert b.result.residual_frames and not b.ok
    assert events.calls == [("planned", ("a.mp4", "c.mp4", "d.mp4", "sub/b.mp4")),
                            ("started", "a.mp4"), ("progress", "a.mp4", 20), ("finished", "a.mp4", "ok"),
                            ("finished", "c.mp4", "missing"),
                            ("started", "d.mp4"), ("progress", "d.mp4", 20), ("finished", "d.mp4", "mismatch"),
                            ("started", "sub/b.mp4"), ("progress", "sub/b.mp4", 20), ("finished", "sub/b.mp4", "residual")]
    failure = verdict.error()
    assert isinstance(failure, PairError) and "2 of 4 outputs" in str(failure)
    # the CLI's JSON is the verdict's, timings aside
    assert run("verify", card, out, "--json", tmp_path / "v.json", "--every", "5").returncode == 23
    cli_report = json.loads((tmp_path / "v.json").read_text())
    lib_report = json.loads(json.dumps(verdict.to_json()))
    for report in (cli_report, lib_report):
        for record in report["files"].values():
            record.pop("seconds", None)
    assert lib_report == cli_report
    assert not list(tmp_path.glob("*.png"))  # no sheets unless asked


def test_folder_verdict_exit_status_and_checks(tmp_path):
    config = VerifyConfig()
    missing = FileVerdict(key="x.mp4", status="missing", error="output missing (not done by a folder run)")
    assert FolderVerdict(input=tmp_path, output=tmp_path, config=config, files=()).error() is None
    only_missing = FolderVerdict(input=tmp_path, output=tmp_path, config=config, files=(missing,))
    assert isinstance(only_missing.error(), PairError) and only_missing.to_json()["files"] == {
        "x.mp4": {"ok": False, "error": "output missing (not done by a folder run)"}}
    with pytest.raises(ValueError, match="'gone'"):
        FileVerdict(key="x.mp4", status="gone", error="?")
    with pytest.raises(ValueError, match="an error and no result"):
        FileVerdict(key="x.mp4", status="missing")
    with pytest.raises(ValueError, match="a result and no error"):
        FileVerdict(key="x.mp4", status="ok", error="?")
    residual = FileVerdict(key="y.mp4", status="residual",
                           result=VerifyResult("y.mp4", "y.mp4", frames=1,
                                               findings=[Finding(0, None, [0.0, 0.0, 40.0, 40.0], 0.9, 0.8, True)]))
    failure = FolderVerdict(input=tmp_path, output=tmp_path, config=config, files=(residual,)).error()
    assert isinstance(failure, ResidualFacesError) and "1 of 1 files (first: y.mp4)" in str(failure)
    with pytest.raises(ValueError, match="result.ok is False"):
        FileVerdict(key="y.mp4", status="ok", result=residual.result)


# ---- the one mapping, in process --------------------------------------------------------

@pytest.mark.parametrize("raised, code, line", [
    (SinkError("rtmp://host/live/KEY123: cannot connect"), 6, "blurcam: error: rtmp://host/live/***: cannot connect"),
    (UsageError("--jobs must be >= 1, got 0"), 2, "blurcam: error: --jobs must be >= 1, got 0"),
    (KeyboardInterrupt(), 130, "blurcam: interrupted (Ctrl-C); WHAT"),
    (Interrupted(signal.SIGTERM), 143, "blurcam: interrupted (SIGTERM); WHAT"),
    (Interrupted(signal.SIGHUP), 129, "blurcam: interrupted (SIGHUP); WHAT"),
])
def test_cli_errors_maps_each_error_and_signal_to_one_line_and_its_code(raised, code, line, capsys):
    with pytest.raises(typer.Exit) as stopped:
        with cli_errors(what="WHAT"):
            raise raised
    assert stopped.value.exit_code == code
    assert capsys.readouterr().err.splitlines() == [line]


def test_cli_errors_lets_a_command_choose_its_own_exit(capsys):
    with pytest.raises(typer.Exit) as stopped:
        with cli_errors():
            raise typer.Exit(12)  # --salvage lost frames
    assert stopped.value.exit_code == 12 and capsys.readouterr().err == ""


def test_ctrl_c_while_python_shuts_down_after_the_command_exits_130_without_a_traceback(tmp_path):
    """Regression: a Ctrl-C that landed after the command had finished, while Python joined
    the threads still running at exit, printed an "Exception ignored ... Interrupted"
    traceback (or the process died by SIGINT, exit -2, as seen once in CI)."""
    script = tmp_path / "late.py"
    script.write_text(
        "import threading, time\n"
        "import blurcam.cli\n"
        "def finished_command():\n"
        "    threading.Thread(target=time.sleep, args=(2.0,)).start()  # joined as Python exits\n"
        "    print('done', flush=True)\n"
        "blurcam.cli.main = finished_command\n"
        "from blurcam.__main__ import main\n"
        "main()\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "done"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
