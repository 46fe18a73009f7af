"""Verifying a folder run: every output of ``blurcam blur INPUT_DIR -o OUTPUT_DIR``
checked against its input, paired as the run mapped them (blurcam.newsroom.batch.plan_jobs), and
only those the run's manifest records as done.

The result is a :class:`FolderVerdict` (one :class:`FileVerdict` per output, its JSON,
the error that is its exit status); callers print it. Each contact sheet is written as
soon as its file is checked, so no more than one sheet image is ever held.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import BlurcamError, PairError, ResidualFacesError, SourceError
from .measure import VerifyConfig
from .run import VerifyResult

MISSING = "output missing (not done by a folder run)"
STATUSES = ("ok", "residual", "missing", "mismatch")  # mismatch: not a redaction of its input


@dataclass(frozen=True, kw_only=True)
class FileVerdict:
    """One output of a folder run. ``status``: ok, residual (facial detail left),
    missing (not done by the run, or gone) or mismatch (not a redaction of its input, or
    the input is gone). ``result`` and ``sheet`` (the contact sheet's tiles, as in the
    JSON) for checked files; ``error``, the reason without a path, for the others."""

    key: str
    status: str
    result: VerifyResult | None = None
    sheet: tuple[dict, ...] = ()
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        checked = self.status in ("ok", "residual")
        if checked != (self.result is not None) or checked == (self.error is not None):
            raise ValueError(f"{self.key}: a {self.status} verdict has "
                             + ("a result and no error" if checked else "an error and no result"))
        if self.result is not None and (self.status == "ok") != self.result.ok:
            raise ValueError(f"{self.key}: status {self.status!r} but result.ok is {self.result.ok}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self, config: VerifyConfig, *, full_paths: bool = False) -> dict:
        """The file's record in the folder JSON: the pair's record (named by key unless
        ``full_paths``), or ``{ok: false, error}``."""
        if self.result is None:
            return {"ok": False, "error": self.error}
        record = self.result.to_json(config, full_paths=full_paths, sheet=list(self.sheet))
        if not full_paths:
            record["input"], record["output"] = self.key, self.key
        return record


@dataclass(frozen=True, kw_only=True)
class FolderVerdict:
    """Every output of a folder run, in the run's order, and the settings they were judged with."""

    input: Path
    output: Path
    config: VerifyConfig
    files: tuple[FileVerdict, ...]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def unchecked(self) -> list[str]:
        """Keys of outputs missing or not a redaction of their input."""
        return [f.key for f in self.files if f.status in ("missing", "mismatch")]

    @property
    def residual(self) -> list[str]:
        return [f.key for f in self.files if f.status == "residual"]

    def to_json(self, *, full_paths: bool = False) -> dict:
        """The --json report (schema 2). Paths are base names and keys unless ``full_paths``."""
        return {"schema": 2, "ok": self.ok,
                "input": str(self.input.resolve()) if full_paths else self.input.name,
                "output": str(self.output.resolve()) if full_paths else self.output.name,
                "files": {f.key: f.to_json(self.config, full_paths=full_paths) for f in self.files}}

    def error(self) -> BlurcamError | None:
        """The exit status as an error to raise: PairError (23) when an output is missing
        or not a redaction, else ResidualFacesError (22) when one keeps facial detail."""
        missing, residual, n = self.unchecked, self.residual, len(self.files)
        if missing:
            return PairError(f"{len(missing)} of {n} outputs missing or not a redaction of their input "
                             f"(first: {missing[0]})" + (f"; residual faces in {len(residual)} more" if residual else ""))
        if residual:
            return ResidualFacesError(f"facial detail left in {len(residual)} of {n} files "
                                      f"(first: {residual[0]}); see the sheets")
        return None


class FolderEvents:
    """What :func:`verify_folder` reports as it goes, in the caller's thread. Override what you need."""

    def planned(self, keys: list[str]) -> None: ...

    def started(self, key: str) -> None: ...

    def progress(self, key: str, frames_done: int, frames_total: int | None) -> None: ...

    def finished(self, verdict: FileVerdict) -> None: ...


def verify_folder(input_dir: str | Path, output_dir: str | Path, config: VerifyConfig | None = None, *,
                  sheets: Path | None = None, overwrite: bool = False,
                  events: FolderEvents | None = None) -> FolderVerdict:
    """Check each output of a folder run from ``input_dir`` into ``output_dir``.

    ``sheets``: a folder for the contact sheets (``KEY.sheet.png``), made if needed; one
    that exists is never replaced without ``overwrite``. Before any work: PairError
    when ``output_dir`` is missing, ManifestError when its manifest cannot be read,
    OutputExistsError or SinkError for the sheets. A file that is missing or not a
    redaction is a verdict, not an error.
    """
    from ..batch import plan_jobs, recorded_outputs
    from ...io.atomic import write_atomically
    from .run import sheet_png, verify_pair

    config = config or VerifyConfig()
    input_dir, output_dir, events = Path(input_dir), Path(output_dir), events or FolderEvents()
    if not output_dir.is_dir():
        raise PairError(f"{output_dir}: output folder missing")
    jobs, _ = plan_jobs([input_dir], output_dir)
    recorded = recorded_outputs(output_dir)
    if sheets is not None:
        _prepare_sheets(sheets, [job.key for job in jobs], overwrite)
    events.planned([job.key for job in jobs])
    verdicts = []
    for job in jobs:
        state, preset = recorded.get(job.key, (None, None))
        if state != "done" or not job.output.exists():
            verdict = FileVerdict(key=job.key, status="missing", error=MISSING)
        else:
            events.started(job.key)
            try:
                result, collected = verify_pair(job.input, job.output, config, blur_preset=preset,
                                                on_progress=lambda n, total, key=job.key: events.progress(key, n, total))
            except (PairError, SourceError) as exc:
                verdict = FileVerdict(key=job.key, status="mismatch",
                                      error=_reason(exc, job.output if isinstance(exc, PairError) else job.input))
            else:
                image, tiles = collected.render(result)
                if sheets is not None:
                    sheet_path = sheets / f"{job.key}.sheet.png"
                    sheet_path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomically(sheet_path, sheet_png(image), overwrite=overwrite)
                verdict = FileVerdict(key=job.key, status="ok" if result.ok else "residual", result=result,
                                      sheet=tuple(tiles))
        verdicts.append(verdict)
        events.finished(verdict)
    return FolderVerdict(input=input_dir, output=output_dir, config=config, files=tuple(verdicts))


def _prepare_sheets(sheets: Path, keys: list[str], overwrite: bool) -> None:
    from ...errors import OutputExistsError, SinkError

    if not overwrite:
        taken = [key for key in keys if (sheets / f"{key}.sheet.png").exists()]
        if taken:
            raise OutputExistsError(f"{sheets / (taken[0] + '.sheet.png')}: already exists (use --overwrite)"
                                    + (f"; and {len(taken) - 1} more sheets" if len(taken) > 1 else ""))
    try:
        sheets.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"{sheets}: cannot create the sheet folder: {exc.strerror}") from None
    if not os.access(sheets, os.W_OK | os.X_OK):
        raise SinkError(f"{sheets}: sheet folder is not writable")


def _reason(exc: Exception, path: Path) -> str:
    """An error message without the path it starts with (a report names files by key)."""
    text = str(exc)
    return text[len(str(path)) + 2:] if text.startswith(f"{path}: ") else text
