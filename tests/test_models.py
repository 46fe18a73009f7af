import shutil

import pytest

from blurcam import models
from blurcam.errors import ModelIntegrityError


def test_shipped_models_match_manifest():
    for name in models.manifest():
        assert len(models.model_bytes(name)) > 1000


def test_tampered_model_is_refused(tmp_path, monkeypatch):
    src = models.models_dir()
    shutil.copy(src / "manifest.json", tmp_path)
    data = bytearray((src / "face_detection_short_range.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "face_detection_short_range.tflite").write_bytes(data)
    monkeypatch.setattr(models, "_CANDIDATES", (tmp_path,))
    models.manifest.cache_clear()
    models.model_bytes.cache_clear()
    try:
        with pytest.raises(ModelIntegrityError, match="SHA-256"):
            models.model_bytes("face_detection_short_range.tflite")
        with pytest.raises(ModelIntegrityError, match="cannot be read"):
            models.model_bytes("face_detection_full_range.tflite")
    finally:
        models.manifest.cache_clear()
        models.model_bytes.cache_clear()


def test_shipped_int8_centerface_matches_its_manifest_entry():
    import hashlib

    entry = models.manifest()["centerface_int8.onnx"]
    data = (models.models_dir() / "centerface_int8.onnx").read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert len(data) < 8 * 1024 * 1024
    assert entry["source_sha256"] == models.manifest()["centerface.onnx"]["source_sha256"]


def test_cli_refuses_a_tampered_int8_model_with_exit_10(tmp_path, monkeypatch):
    """A CenterFace int8 file that does not match the manifest stops the job: exit 10, no output."""
    import cv2
    from skimage import data as skdata
    from typer.testing import CliRunner

    from blurcam.cli import app
    from blurcam.detect import centerface

    folder = tmp_path / "models"
    shutil.copytree(models.models_dir(), folder, ignore=shutil.ignore_patterns("*.py", "README.md"))
    tampered = bytearray((folder / "centerface_int8.onnx").read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    (folder / "centerface_int8.onnx").write_bytes(tampered)
    monkeypatch.setattr(models, "_CANDIDATES", (folder,))
    monkeypatch.setattr(centerface, "_sessions", {})  # no model loaded by earlier tests may be reused
    models.manifest.cache_clear()
    models.model_bytes.cache_clear()
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), skdata.astronaut()[..., ::-1])
    try:
        result = CliRunner().invoke(app, ["blur", str(image), str(tmp_path / "out.png")])
    finally:
        models.manifest.cache_clear()
        models.model_bytes.cache_clear()
    assert result.exit_code == 10, result.output
    assert "SHA-256" in result.output and "centerface_int8.onnx" in result.output
    assert not (tmp_path / "out.png").exists()
    assert not list(tmp_path.glob(".*out*"))
