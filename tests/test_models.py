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
