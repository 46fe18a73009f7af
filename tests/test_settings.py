"""Every detector setting lives in the run's frozen config (issue 22): a folder rerun with
another precision redoes its files, and a report names the precision, the runtime and the
models that ran."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blurcam.newsroom.batch import MANIFEST_NAME
from blurcam.cli import app
from blurcam.detect import DetectorConfig, installed_runtimes, make_detector
from blurcam.errors import UsageError
from blurcam.models import manifest as model_manifest
from blurcam.synth import Placement, background, render, write_clip

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory, sprites) -> Path:
    """10 frames, 320x180, one face moving: enough for a CenterFace preset to run on."""
    path = tmp_path_factory.mktemp("settings") / "in" / "clip.mp4"
    path.parent.mkdir()
    frames = [f for f, _ in render([Placement(sprites[0], 100, (20, 30), (160, 40))], background((320, 180)), 10)]
    write_clip(path, frames)
    return path


def _blurcam(*args) -> subprocess.CompletedProcess:
    """``python -m blurcam blur ARGS`` from this checkout: real worker processes, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "blurcam", "blur", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def _record(out: Path, key: str) -> tuple[dict, dict]:
    """(file record, settings record) of ``key`` in OUT's manifest."""
    data = json.loads((out / MANIFEST_NAME).read_text())
    rec = data["files"][key]
    return rec, data["settings"][rec["settings"]]


def test_folder_rerun_with_another_precision_redoes_the_file(small_clip, tmp_path):
    """The bug: precision lived in a process global that the manifest's fingerprint never
    saw, so ``--precision fp32`` after an int8 run said "skipped, done before"."""
    out = tmp_path / "out"
    first = _blurcam(small_clip.parent, "-o", out)
    assert first.returncode == 0, first.stderr
    rec, settings = _record(out, "clip.mp4")
    assert rec["state"] == "done" and settings["config"]["detector"]["precision"] == "int8"
    assert set(settings["models"]) == {"face_detection_full_range.tflite", "centerface_int8.onnx"}
    stamp = (out / "clip.mp4").stat().st_mtime_ns

    same = _blurcam(small_clip.parent, "-o", out)
    assert same.returncode == 0 and "skipping 1 files" in same.stderr, same.stderr

    fp32 = _blurcam(small_clip.parent, "-o", out, "--precision", "fp32")
    assert fp32.returncode == 0, fp32.stderr
    assert "skipping" not in fp32.stderr
    assert (out / "clip.mp4").stat().st_mtime_ns != stamp
    rec, settings = _record(out, "clip.mp4")
    assert rec["state"] == "done"
    assert settings["config"]["detector"] == {"name": "balanced", "threshold": None, "centerface_every": None,
                                                    "precision": "fp32", "runtime": "onnxruntime"}
    assert set(settings["models"]) == {"face_detection_full_range.tflite", "centerface.onnx"}


def test_report_names_precision_runtime_and_the_models_that_ran(small_clip, tmp_path):
    report_path = tmp_path / "report.json"
    result = runner.invoke(app, ["blur", str(small_clip), str(tmp_path / "out.mp4"), "--precision", "fp32",
                                 "--report", str(report_path), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    detector = report["settings"]["detector"]
    assert (detector["name"], detector["precision"], detector["runtime"]) == ("balanced", "fp32", "onnxruntime")
    shipped = model_manifest()
    assert report["models"] == {name: shipped[name]["sha256"]
                                for name in ("face_detection_full_range.tflite", "centerface.onnx")}


def _loaded_model_files(detector) -> set[str]:
    """The model files a built detector holds, found by walking its members."""
    members = [*getattr(detector, "detectors", ()), *getattr(detector, "secondary", ())]
    if hasattr(detector, "detector"):  # EveryNth
        members.append(detector.detector)
    if not members:
        return {detector.model_file}
    return set().union(*map(_loaded_model_files, members))


@pytest.mark.parametrize("config", [
    DetectorConfig(name="fast"), DetectorConfig(name="balanced"), DetectorConfig(name="live", precision="fp32"),
    DetectorConfig(name="mediapipe"), DetectorConfig(name="centerface", precision="fp32"),
], ids=lambda c: f"{c.name}-{c.precision}")
def test_model_files_are_the_ones_the_detector_loads(config):
    detector = make_detector(config)
    try:
        assert set(config.model_files) == _loaded_model_files(detector)
    finally:
        detector.close()


def test_detector_config_is_checked_on_creation():
    with pytest.raises(UsageError, match="precision must be one of int8, fp32, got 'fp16'"):
        DetectorConfig(precision="fp16")
    with pytest.raises(UsageError, match="runtime must be one of onnxruntime, openvino, got 'tensorrt'"):
        DetectorConfig(runtime="tensorrt")
    with pytest.raises(UsageError, match="unknown detector 'best'"):
        DetectorConfig(name="best")
    with pytest.raises(UsageError, match=r"threshold must be in \[0, 1\], got 1.5"):
        DetectorConfig(threshold=1.5)
    with pytest.raises(ValueError, match="detect_every must be >= 1, got 0"):
        DetectorConfig(centerface_every=0)


def test_a_preset_name_in_place_of_its_config_is_refused_on_creation():
    """Regression: PipelineConfig(detector="fast") was accepted and every folder job then
    failed in its worker with "'str' object has no attribute 'preset'"."""
    from blurcam.pipeline import LiveConfig, PipelineConfig

    for config_class in (PipelineConfig, LiveConfig):
        with pytest.raises(TypeError, match=r"detector must be a DetectorConfig, e.g. DetectorConfig\(name='fast'\)"):
            config_class(detector="fast")


def test_bad_precision_or_missing_runtime_is_a_usage_error_on_the_command_line(small_clip, tmp_path):
    result = runner.invoke(app, ["blur", str(small_clip), str(tmp_path / "o.mp4"), "--precision", "fp16"])
    assert result.exit_code == 2 and "precision must be one of int8, fp32" in result.output
    if "openvino" not in installed_runtimes():
        result = runner.invoke(app, ["live", str(small_clip), "--to", str(tmp_path / "o.ts"), "--runtime", "openvino"])
        assert result.exit_code == 2 and "runtime openvino is not installed" in result.output
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.ts").exists()


def test_report_module_does_not_import_the_pipeline():
    """The import circle report -> pipeline -> report is gone: the report takes plain data."""
    code = "import sys, blurcam.report; print('blurcam.pipeline' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_manifest_names_the_preset_of_old_and_new_records(tmp_path):
    """verify sizes its sample by the preset a folder run recorded: a DetectorConfig's
    name now, the plain preset string in manifests written before it."""
    from blurcam.newsroom.batch import Manifest

    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"schema": 1, "settings": {
        "new": {"config": {"detector": {"name": "thorough", "precision": "int8"}}},
        "old": {"config": {"detector": "fast"}}}, "files": {
        "a.mp4": {"state": "done", "settings": "new"}, "b.mp4": {"state": "done", "settings": "old"}}}))
    m = Manifest(tmp_path)
    assert (m.preset("a.mp4"), m.preset("b.mp4"), m.preset("c.mp4")) == ("thorough", "fast", None)


def test_bench_specs_are_checked_as_detector_settings():
    from blurcam.benchmark import bench_settings

    assert bench_settings("balanced:1@fp32") == {"detector": "balanced", "centerface_every": 1, "precision": "fp32"}
    for bad, message in (("best", "unknown preset 'best'"), ("live@fp16", "precision must be one of"),
                         ("balanced:0", "whole number >= 1")):
        with pytest.raises(UsageError, match=message):
            bench_settings(bad)
