"""What a new user trips over first: file modes of what blurcam writes, and help text that
says what it means. Real processes, real files."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import click
import cv2
import pytest
import typer
from typer.testing import CliRunner

from blurcam.cli import app
from conftest import Clip

ROOT = Path(__file__).parent.parent


def _blur_with_umask(umask: int, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "blurcam", "blur", *map(str, args)], env=env,
                          preexec_fn=lambda: os.umask(umask), capture_output=True, text=True, timeout=180)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_the_mode_the_umask_gives_not_0600(umask, face_clip: Clip, sprites, tmp_path):
    video, report = tmp_path / "out.mp4", tmp_path / "out.json"
    result = _blur_with_umask(umask, face_clip.path, video, "--report", report, "--quality", "fast")
    assert result.returncode == 0, result.stderr
    photo_in, photo_out = tmp_path / "photo.png", tmp_path / "photo.blurred.png"
    cv2.imwrite(str(photo_in), cv2.cvtColor(sprites[0].image, cv2.COLOR_RGB2BGR))
    result = _blur_with_umask(umask, photo_in, photo_out, "--quality", "fast")
    assert result.returncode == 0, result.stderr
    for path in (video, report, photo_out):
        assert _mode(path) == 0o666 & ~umask, f"{path.name}: {oct(_mode(path))}"


def _commands(group: click.Group):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command)
        else:
            yield name, command


def test_help_text_keeps_its_brackets():
    """Rich markup once ate "[openvino]" from "pip install 'blurcam[openvino]'": every
    bracketed word written in a help string must be on the rendered --help page."""
    runner = CliRunner()
    checked = 0
    for name, command in _commands(typer.main.get_command(app)):
        written = " ".join([command.help or ""] + [getattr(p, "help", None) or "" for p in command.params])
        wanted = set(re.findall(r"\w*\\?\[\w+\]", written))
        page = runner.invoke(app, [name, "--help"], env={"COLUMNS": "1000"}).output
        for word in wanted:
            shown = word.replace("\\", "")
            assert shown in page, f"blurcam {name} --help lost {shown!r}"
            checked += 1
    assert checked >= 3  # blur --ray and --runtime, live --runtime at least


def test_live_help_claims_no_speed_it_was_not_measured_to_hold():
    page = CliRunner().invoke(app, ["live", "--help"], env={"COLUMNS": "1000"}).output
    assert "holds 720p30" not in page
