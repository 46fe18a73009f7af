"""Locate shipped model files and check their SHA-256 against models/manifest.json.

Models ship with the package (the wheel puts ``models/`` at ``blurcam/models``; a
source checkout keeps it beside the package). Nothing is ever downloaded.
"""
from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from .errors import ModelIntegrityError

_CANDIDATES = (Path(__file__).resolve().parent / "models", Path(__file__).resolve().parent.parent / "models")


def models_dir() -> Path:
    """The folder holding manifest.json and the model files."""
    for folder in _CANDIDATES:
        if (folder / "manifest.json").is_file():
            return folder
    raise ModelIntegrityError(f"model folder not found (looked in {', '.join(map(str, _CANDIDATES))})")


@cache
def manifest() -> dict[str, dict]:
    return json.loads((models_dir() / "manifest.json").read_text())


def model_sha256(names) -> dict[str, str]:
    """{file name: SHA-256 from manifest.json} for each model file in ``names``."""
    entries = manifest()
    return {name: entries[name]["sha256"] for name in names}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@cache
def model_bytes(name: str) -> bytes:
    """The verified contents of model ``name``; raises ModelIntegrityError on any mismatch.

    Returning bytes (not a path) means the checked bytes are exactly the ones loaded:
    the file cannot change between the check and the load.
    """
    entry = manifest().get(name)
    if entry is None:
        raise ModelIntegrityError(f"model {name!r} is not in models/manifest.json")
    path = models_dir() / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"model file {path} cannot be read: {exc.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise ModelIntegrityError(f"model file {path} has SHA-256 {digest}, expected {entry['sha256']}")
    return data
