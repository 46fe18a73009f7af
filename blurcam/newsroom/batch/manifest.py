"""``OUTPUT_DIR/blurcam-manifest.json``: what a folder run has done, with which settings
and models, written by the planning process alone."""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ManifestError, SinkError
from ...io.atomic import write_atomically
from ...models import sha256_file

if TYPE_CHECKING:
    from .job import JobResult
    from .scan import Job


MANIFEST_NAME = "blurcam-manifest.json"


MANIFEST_SCHEMA = 1


def fingerprint(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


class Manifest:
    """``OUTPUT_DIR/blurcam-manifest.json``: one record per output key.

    A record's ``state`` is ``pending`` from the moment a run plans the file (so that
    an output committed just before a crash is redone, not refused as someone else's
    file), ``done`` once its output is in place, ``failed`` when its job failed.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / MANIFEST_NAME
        self.data: dict = {"schema": MANIFEST_SCHEMA, "settings": {}, "files": {}}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise ManifestError(f"{self.path}: manifest cannot be read ({exc}); "
                                    "move it away or use --force") from None
            if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
                raise ManifestError(f"{self.path}: manifest has an unknown schema; move it away or use --force")
            problem = _shape_problem(data)
            if problem:
                raise ManifestError(f"{self.path}: manifest is damaged ({problem}); move it away or use --force")
            self.data = data

    @property
    def files(self) -> dict[str, dict]:
        return self.data["files"]

    def preset(self, key: str) -> str | None:
        """The detector (preset or backend) the record of output ``key`` was made with, if it says."""
        rec = self.files.get(key) or {}
        detector = self.data["settings"].get(rec.get("settings"), {}).get("config", {}).get("detector")
        return detector.get("name") if isinstance(detector, dict) else detector  # a str before DetectorConfig

    def is_done(self, job: Job, settings_fp: str) -> bool:
        """True when ``job``'s output is in place from the same input and settings.
        Size and mtime decide when they match; when only the mtime moved, the content
        hash does (and the record is refreshed)."""
        rec = self.files.get(job.key)
        if not rec or rec.get("state") != "done" or rec.get("settings") != settings_fp:
            return False
        try:
            st, out = job.input.stat(), job.output.stat()
        except OSError:
            return False
        if out.st_size != rec.get("output_size") or st.st_size != rec.get("input_size"):
            return False
        if st.st_mtime_ns != rec.get("input_mtime_ns"):
            if sha256_file(job.input) != rec.get("input_sha256"):
                return False
            rec["input_mtime_ns"] = st.st_mtime_ns
        return True

    def mark_pending(self, jobs: Iterable[Job], settings_fp: str, settings: dict) -> None:
        self.data["settings"][settings_fp] = settings
        for job in jobs:
            self.files[job.key] = {"source": job.source, "state": "pending", "settings": settings_fp}

    def mark_done(self, job: Job, result: JobResult, settings_fp: str) -> None:
        self.files[job.key] = {
            "source": job.source, "state": "done", "settings": settings_fp,
            "input_size": result.input_size, "input_mtime_ns": result.input_mtime_ns,
            "input_sha256": result.input_sha256, "output_size": result.output_size,
            "frames": result.frames, "faces": result.faces, "seconds": round(result.seconds, 3),
            "cpu_s": round(result.cpu_s, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def mark_failed(self, job: Job, settings_fp: str) -> None:
        """``failed``: redone by the next run, as ``pending`` is (the reason is in the run's
        output, not here: it may hold paths)."""
        self.files[job.key] = {"source": job.source, "state": "failed", "settings": settings_fp,
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def save(self) -> None:
        """Write with :func:`blurcam.io.atomic.write_atomically` (a locked partial, fsynced,
        renamed into place): a crash or power cut leaves the old manifest or the new one."""
        used = {rec.get("settings") for rec in self.files.values()}
        self.data["settings"] = {k: v for k, v in self.data["settings"].items() if k in used}
        try:
            write_atomically(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode(), overwrite=True)
        except SinkError as exc:  # DiskFullError keeps its own exit status
            raise type(exc)(f"cannot write the manifest: {exc}") from None


def _shape_problem(data: dict) -> str | None:
    """What is wrong with a schema-1 manifest's shape (hand-edited, half-merged), or None.
    Checked on reading, so that no later use of it fails with a traceback."""
    settings, files = data.get("settings", {}), data.get("files", {})
    if not isinstance(settings, dict):
        return '"settings" is not an object'
    if not isinstance(files, dict):
        return '"files" is not an object'
    for fp, record in settings.items():
        if not isinstance(record, dict) or not isinstance(record.get("config", {}), dict):
            return f'settings {fp!r} is not an object'
    for key, rec in files.items():
        if not isinstance(rec, dict):
            return f"entry {key!r} is not an object"
        if not isinstance(rec.get("settings"), str) or not isinstance(rec.get("source", ""), str):
            return f"entry {key!r} has a malformed field"
    data.setdefault("settings", settings)
    data.setdefault("files", files)
    return None


def recorded_outputs(output_dir: str | Path) -> dict[str, tuple[str | None, str | None]]:
    """For readers of a folder run (blurcam verify): each output key the folder's manifest
    records, as (state: pending/done/failed, the detector preset it was made with or None).
    {} when the folder has no manifest; ManifestError when it cannot be read."""
    manifest = Manifest(output_dir)
    return {key: (rec.get("state"), manifest.preset(key)) for key, rec in manifest.files.items()}
