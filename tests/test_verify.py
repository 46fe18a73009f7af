"""blurcam verify: finds a face left raw, passes a clean output, never writes INPUT's pixels."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from blurcam.cli import app
from blurcam.detect import make_detector
from blurcam.pipeline import PipelineConfig, redact_file
from blurcam.synth import Placement, background, render, write_clip
from conftest import decode_rgb
from leak import detail_kept

runner = CliRunner()


def verify(*args):
    return runner.invoke(app, ["verify", *map(str, args)])


class LeftHalfOnly:
    """A detector that reports only faces in the left half of the view: the face on the
    right is never redacted (one track left raw, on purpose)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.max_side = inner, "left-half-only", getattr(inner, "max_side", None)

    def detect(self, image, timestamp_ms):
        faces = self.inner.detect(image, timestamp_ms)
        keep = (faces.xyxy[:, 0] + faces.xyxy[:, 2]) / 2 < image.shape[1] / 2
        return faces[keep]

    def close(self):
        self.inner.close()


@pytest.fixture(scope="module")
def outputs(face_clip, tmp_path_factory):
    """The face clip redacted properly, and with its right-hand face left raw."""
    folder = tmp_path_factory.mktemp("verified")
    clean, leaky = folder / "clean.mp4", folder / "leaky.mp4"
    redact_file(face_clip.path, clean, PipelineConfig())
    redact_file(face_clip.path, leaky, PipelineConfig(),
                detector=LeftHalfOnly(make_detector("balanced")))
    return clean, leaky


def tiles(sheet_png: Path, report: dict):
    """(frame index, tile pixels (h, w, 3) RGB, scale) for every tile of the sheet."""
    sheet = cv2.cvtColor(cv2.imread(str(sheet_png)), cv2.COLOR_BGR2RGB)
    for t in report["sheet"]:
        x, y, w, h = t["xywh"]
        yield t["frame"], sheet[y:y + h, x:x + w], t["scale"], t["residual"]


def detail_on_sheet(face_clip, sheet_png, report, face_index):
    """Per tile: how much of INPUT's detail of face ``face_index`` the sheet shows."""
    kept = {}
    for frame, tile, scale, _ in tiles(sheet_png, report):
        original = cv2.resize(face_clip.frames[frame], (tile.shape[1], tile.shape[0]), interpolation=cv2.INTER_AREA)
        box = face_clip.boxes[frame][face_index] * scale
        # the face's inner part only: the drawn box outlines sit on its edge
        cx, cy, w, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]
        inner = np.array([cx - 0.35 * w, cy - 0.35 * h, cx + 0.35 * w, cy + 0.35 * h])
        kept[frame] = detail_kept(original, tile, inner)
    return kept


def test_clean_output_passes_and_the_sheet_holds_no_input_pixels(face_clip, outputs, tmp_path):
    clean, _ = outputs
    result = verify(face_clip.path, clean, "--sheet", tmp_path / "sheet.png", "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["ok"] and report["findings"] == [] and report["faces_checked"] >= 2 * report["frames_checked"]
    assert report["frames"] == 30 and 2 <= report["frames_checked"] < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png", "v.json"]  # no temporary files
    # Every tile shows the redacted output: neither face's detail is on the sheet.
    for face in (0, 1):
        kept = detail_on_sheet(face_clip, tmp_path / "sheet.png", report, face)
        assert kept and all(k is None or k < 0.3 for k in kept.values()), (face, kept)


def test_face_left_raw_is_found_and_shown(face_clip, outputs, tmp_path):
    _, leaky = outputs
    result = verify(face_clip.path, leaky, "--sheet", tmp_path / "sheet.png", "--json", tmp_path / "v.json")
    assert result.exit_code == 22, result.output
    assert "facial detail left" in result.output.strip().splitlines()[-1]
    report = json.loads((tmp_path / "v.json").read_text())
    assert not report["ok"]
    # The raw face is on the right in every frame: the finding is followed through all of them.
    assert report["residual_frames"] == list(range(30))
    right = [f for f in report["findings"] if f["box"][0] > 320]
    assert {f["frame"] for f in right} == set(range(30))
    assert all(f["detail"] > 0.8 for f in right)
    assert not any(f["box"][2] < 320 for f in report["findings"])  # the redacted face is not residual
    shown = [t for t in report["sheet"] if t["residual"]]
    assert len(shown) == 30
    # The sheet shows that face (from OUTPUT's pixels, which left it raw), and not the other.
    raw = detail_on_sheet(face_clip, tmp_path / "sheet.png", report, 1)
    redacted = detail_on_sheet(face_clip, tmp_path / "sheet.png", report, 0)
    assert np.median([k for k in raw.values() if k is not None]) > 0.5
    assert all(k is None or k < 0.3 for k in redacted.values())


def test_missing_output(face_clip, tmp_path):
    result = verify(face_clip.path, tmp_path / "nope.mp4", "--json", tmp_path / "v.json")
    assert result.exit_code == 23 and "output missing" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_mismatched_pairs(face_clip, outputs, sprites, tmp_path):
    clean, _ = outputs
    shorter = tmp_path / "short.mp4"
    write_clip(shorter, decode_rgb(clean)[:20], audio=False)
    other = tmp_path / "other.mp4"
    write_clip(other, (f for f, _ in render([Placement(sprites[1], 200, (300, 60), (100, 100))],
                                            np.ascontiguousarray(background((640, 360))[::-1]), 30)), audio=False)
    smaller = tmp_path / "small.mp4"
    write_clip(smaller, (cv2.resize(f, (320, 180)) for f in decode_rgb(clean)), audio=False)
    for out, message in ((shorter, "20 frames, but the input has 30"), (other, "does not look like a redaction"),
                         (smaller, "320x180, but the input is 640x360")):
        result = verify(face_clip.path, out, "--every", "5")
        assert result.exit_code == 23, (out, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_folder_verify_uses_the_manifest(face_clip, tmp_path):
    card = tmp_path / "card"
    (card / "day2").mkdir(parents=True)
    shutil.copy(face_clip.path, card / "one.mp4")
    shutil.copy(face_clip.path, card / "day2" / "two.mp4")
    out = tmp_path / "out"
    assert runner.invoke(app, ["blur", str(card), "-o", str(out), "--quiet", "--jobs", "1"]).exit_code == 0
    result = verify(card, out, "--sheet", tmp_path / "sheets", "--json", tmp_path / "all.json", "--every", "15")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "all.json").read_text())
    assert report["ok"] and set(report["files"]) == {"one.mp4", "day2/two.mp4"}
    assert (tmp_path / "sheets" / "day2" / "two.mp4.sheet.png").exists()
    (out / "one.mp4").unlink()
    result = verify(card, out, "--every", "15")
    assert result.exit_code == 23 and "1 of 2 outputs missing" in result.output, result.output
