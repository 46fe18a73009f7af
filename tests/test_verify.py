"""blurcam verify: finds a face left raw, passes a clean output, never writes INPUT's pixels."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
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
ROOT = Path(__file__).parent.parent


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
    # the sheets never go into the card or the output folder, nor over earlier sheets unasked
    for where in (card / "sheets", out, out / "sheets"):
        result = verify(card, out, "--sheet", where, "--every", "15")
        assert result.exit_code == 11 and "would be written into" in result.output, result.output
    result = verify(card, out, "--sheet", tmp_path / "sheets", "--every", "15")
    assert result.exit_code == 7 and "already exists" in result.output, result.output
    assert not (card / "sheets").exists() and not (out / "sheets").exists()
    (out / "one.mp4").unlink()
    result = verify(card, out, "--every", "15")
    assert result.exit_code == 23 and "1 of 2 outputs missing" in result.output, result.output


# Issue 23: verify keeps the promises blur makes (real processes, real files).

def run_verify(*args, cwd=None) -> subprocess.CompletedProcess:
    """``python -m blurcam verify ARGS`` as a real process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "blurcam", "verify", *map(str, args)], env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


def one_line_error(result, code: int, *words: str) -> str:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pair(face_clip, outputs, tmp_path):
    """A copy of the face clip and its clean redaction in a folder of their own."""
    shutil.copy(face_clip.path, tmp_path / "in.mp4")
    shutil.copy(outputs[0], tmp_path / "out.mp4")
    return tmp_path / "in.mp4", tmp_path / "out.mp4"


def test_regression_verify_sheet_or_json_overwrote_the_input_or_output(pair, tmp_path):
    inp, out = pair
    before = {p: digest(p) for p in pair}
    (tmp_path / "link.mp4").symlink_to(inp)
    os.link(out, tmp_path / "hard.mp4")
    for option, target, role in (("--sheet", inp, "input"), ("--json", inp, "input"), ("--json", out, "output"),
                                 ("--sheet", out, "output"), ("--sheet", tmp_path / "link.mp4", "input"),
                                 ("--json", tmp_path / "hard.mp4", "output"),
                                 ("--json", tmp_path / "." / "in.mp4", "input")):
        for extra in ([], ["--overwrite"]):  # --overwrite never makes the input or output fair game
            result = run_verify(inp, out, option, target, *extra)
            one_line_error(result, 11, f"the {'sheet' if option == '--sheet' else 'JSON'} would be written over the {role}")
    assert {p: digest(p) for p in pair} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.mp4", "in.mp4", "link.mp4", "out.mp4"]


def test_regression_verify_replaced_an_existing_sheet_and_json_without_asking(pair, tmp_path):
    inp, out = pair
    for option in ("--sheet", "--json"):
        existing = tmp_path / f"mine{option}.dat"
        existing.write_text("the user's own file")
        one_line_error(run_verify(inp, out, option, existing), 7, "already exists", "--overwrite")
        assert existing.read_text() == "the user's own file"
    result = run_verify(inp, out, "--sheet", tmp_path / "mine--sheet.dat", "--json", tmp_path / "mine--json.dat",
                        "--overwrite", "--every", "10")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mine--sheet.dat").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "mine--json.dat").read_text())["ok"] is True


def test_regression_verify_json_recorded_paths_as_typed(pair, tmp_path):
    inp, out = pair
    result = run_verify(inp.resolve(), out.resolve(), "--json", tmp_path / "v.json", "--every", "10")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "v.json").read_text()
    report = json.loads(text)
    assert (report["input"], report["output"]) == ("in.mp4", "out.mp4")
    assert str(tmp_path) not in text and tmp_path.name not in text
    result = run_verify(inp, out, "--json", tmp_path / "full.json", "--every", "10", "--report-full-paths")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "full.json").read_text())
    assert report["input"] == str(inp.resolve()) and report["output"] == str(out.resolve())


def test_regression_verify_missing_input_gave_23_not_3(pair, tmp_path):
    _, out = pair
    one_line_error(run_verify(tmp_path / "missing.mp4", out), 3, "missing.mp4", "input missing")


def test_regression_verify_sheet_in_a_missing_folder_failed_after_the_work_naming_the_partial(pair, tmp_path):
    inp, out = pair
    for option in ("--sheet", "--json"):
        started = time.perf_counter()
        # OUTPUT gone too: the bad path is refused before the pair is even opened
        line = one_line_error(run_verify(inp, tmp_path / "gone.mp4", option, tmp_path / "nonexistent" / "s.png"),
                              6, "nonexistent", "does not exist")
        assert "partial" not in line and time.perf_counter() - started < 60
    assert not (tmp_path / "nonexistent").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


# Issue 19: verify agrees with exact ground truth on a crowd.

CROWD_FRAMES = 60
RESTORED = range(20, 50)  # one face left raw for 1 s (30 frames at 30 fps)


def lfw_crowd(size_wh=(960, 540)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A crowd: 15 LFW faces (scikit-image ``lfw_subset``) 40-88 px tall with hair and
    shoulders, and 5 faces 19-23 px (too small to judge), on scikit-image's ``brick``, the
    camera panning slowly. Returns frames (H, W, 3) uint8 RGB and exact face boxes (N, 4)
    xyxy per frame (the large faces first, in a fixed order)."""
    from skimage import data

    lfw = (data.lfw_subset()[:100] * 255).astype(np.uint8)
    backdrop = cv2.resize(np.repeat(data.brick()[..., None], 3, axis=2), size_wh, interpolation=cv2.INTER_AREA)
    layout = [(i, 40 + (i * 13) % 49, 30 + (i % 5) * 180, 40 + (i // 5) * 160) for i in range(15)]
    layout += [(20 + i, 19 + i, 60 + i * 170, 490) for i in range(5)]
    frames, boxes = [], []
    for t in range(CROWD_FRAMES):
        dx, dy = round(30 * t / (CROWD_FRAMES - 1)), round(10 * t / (CROWD_FRAMES - 1))
        frame, frame_boxes = backdrop.copy(), []
        for i, side, x, y in layout:
            x, y = x + dx, min(y + dy, size_wh[1] - side - 2)
            if side >= 24:
                cx = x + side // 2
                cv2.ellipse(frame, (cx, y + side // 3), (int(side * 0.75), int(side * 0.85)), 0, 0, 360, (40, 30, 25), -1)
                cv2.ellipse(frame, (cx, y + 2 * side), (int(side * 1.3), int(side * 0.8)), 0, 180, 360, (60, 60, 90), -1)
            face = cv2.resize(lfw[i], (side, side), interpolation=cv2.INTER_CUBIC)
            frame[y:y + side, x:x + side] = face[..., None]
            frame_boxes.append([x, y, x + side, y + side])
        frames.append(frame)
        boxes.append(np.array(frame_boxes, np.float32))
    return frames, boxes


def referee_leaks(frames_in, frames_out, boxes, min_h=24) -> set[int]:
    """Frames with a face at least ``min_h`` high keeping over half its detail: the
    referee's call (leak.py is leakcheck.py's measure), from the exact boxes."""
    return {i for i, (a, b, bx) in enumerate(zip(frames_in, frames_out, boxes))
            if any((box[3] - box[1]) >= min_h and (detail_kept(a, b, box) or 0) > 0.5 for box in bx)}


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """The crowd clip, blurcam's default redaction of it, that redaction with face 0
    restored from the input on RESTORED, and a light Gaussian blur over the exact boxes."""
    folder = tmp_path_factory.mktemp("crowd")
    frames, boxes = lfw_crowd()
    clip = folder / "crowd.mp4"
    write_clip(clip, frames, audio=False)
    frames_in = decode_rgb(clip)
    clean = folder / "crowd.blurcam.mp4"
    redact_file(clip, clean, PipelineConfig())
    redacted = decode_rgb(clean)
    restored = [f.copy() for f in redacted]
    for i in RESTORED:
        x1, y1, x2, y2 = boxes[i][0].astype(int)
        restored[i][y1 - 6:y2 + 6, x1 - 6:x2 + 6] = frames_in[i][y1 - 6:y2 + 6, x1 - 6:x2 + 6]
    one_raw = folder / "crowd.one-raw.mp4"
    write_clip(one_raw, restored, audio=False)
    light = [f.copy() for f in frames_in]
    for f, bx in zip(light, boxes):
        for x1, y1, x2, y2 in bx.astype(int):
            f[y1:y2, x1:x2] = cv2.GaussianBlur(f[y1:y2, x1:x2], (0, 0), max(0.6, (y2 - y1) / 60))
    weak = folder / "crowd.light-blur.mp4"
    write_clip(weak, light, audio=False)
    return {"clip": clip, "frames": frames_in, "boxes": boxes, "clean": clean, "one_raw": one_raw,
            "light": weak, "out_frames": {"clean": redacted, "one_raw": decode_rgb(one_raw),
                                          "light": decode_rgb(weak)}}


def test_crowd_redacted_by_blurcam_passes(crowd, tmp_path):
    assert referee_leaks(crowd["frames"], crowd["out_frames"]["clean"], crowd["boxes"]) == set()
    result = run_verify(crowd["clip"], crowd["clean"], "--json", tmp_path / "v.json")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["ok"] and report["residual_frames"] == []
    # it looked at the crowd: most of the 15 judgeable faces in every checked frame
    assert report["faces_checked"] >= 12 * report["frames_checked"], report["faces_checked"]


def test_one_face_restored_for_one_second_fails_and_the_sheet_shows_it_first(crowd, tmp_path):
    real = referee_leaks(crowd["frames"], crowd["out_frames"]["one_raw"], crowd["boxes"])
    assert real == set(RESTORED)
    result = run_verify(crowd["clip"], crowd["one_raw"], "--json", tmp_path / "v.json", "--sheet", tmp_path / "s.png")
    assert result.returncode == 22, result.stderr
    report = json.loads((tmp_path / "v.json").read_text())
    called = set(report["residual_frames"])
    # every call is right, and the face is followed through most of its second
    assert called <= real and len(called) >= 0.8 * len(real), sorted(called)
    x1, y1, x2, y2 = crowd["boxes"][RESTORED[0]][0]
    assert all(f["box"][0] < x2 + 40 and f["box"][2] > x1 - 40 for f in report["findings"])
    tiles = report["sheet"]
    first = [t for t in tiles[:len(called)]]
    assert all(t["residual"] and t["frame"] in real for t in first), first
    # the sheet, made from OUTPUT, shows that face's detail in those tiles
    sheet = cv2.cvtColor(cv2.imread(str(tmp_path / "s.png")), cv2.COLOR_BGR2RGB)
    t = first[0]
    x, y, w, h = t["xywh"]
    tile = sheet[y:y + h, x:x + w]
    original = cv2.resize(crowd["frames"][t["frame"]], (w, h), interpolation=cv2.INTER_AREA)
    box = crowd["boxes"][t["frame"]][0] * t["scale"]
    assert detail_kept(original, tile, box) > 0.5


def test_light_gaussian_blur_over_the_exact_boxes_fails(crowd, tmp_path):
    real = referee_leaks(crowd["frames"], crowd["out_frames"]["light"], crowd["boxes"])
    assert len(real) == CROWD_FRAMES  # the referee: the faces are still there
    result = run_verify(crowd["clip"], crowd["light"], "--json", tmp_path / "v.json")
    assert result.returncode == 22, result.stderr
    report = json.loads((tmp_path / "v.json").read_text())
    assert set(report["residual_frames"]) <= real and len(report["residual_frames"]) >= report["frames_checked"] // 2


def test_json_and_summary_state_what_was_not_checked(crowd, tmp_path):
    result = run_verify(crowd["clip"], crowd["clean"], "--json", tmp_path / "v.json", "--every", "4")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "v.json").read_text())
    skipped = CROWD_FRAMES - report["frames_checked"]
    assert report["frames_checked"] == len(range(0, CROWD_FRAMES, 4)) + 1  # and the last frame
    assert report["not_checked"]["frames_skipped"] == skipped > 0
    # faces of 19-23 px are below the size verify judges: said, with those it saw counted
    assert report["min_face_px"] == 24 and isinstance(report["not_checked"]["faces_under_min_px_seen"], int)
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.strip().startswith("not checked:"), result.stderr
    assert f"not checked: {skipped} of {CROWD_FRAMES} frames skipped" in summary, summary
    seen = report["not_checked"]["faces_under_min_px_seen"]
    assert f"faces under 24 px not judged ({seen} seen)" in summary, summary
    assert report["not_checked"]["summary"] in summary
