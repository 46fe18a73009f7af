"""The ``blurcam verify`` command: one pair, or every output of a folder run (paired as
the run mapped them, and only those its manifest records as done).

Every path it will write (the sheet, the JSON) is checked before any work: never the
input or the output (by any spelling: a symlink, a hard link), never an existing file
without ``overwrite``, and its folder must exist and be writable. Errors are raised as
BlurcamError for cli.py.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import PairError, ResidualFacesError, SameFileError, SourceError, UsageError
from .measure import VerifyConfig


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_write_paths(input: Path, output: Path, *, sheet: Path | None, json_out: Path | None,
                      overwrite: bool, folders: bool) -> None:
    """Refuse, before any work, a sheet or JSON path that would replace INPUT or OUTPUT
    (SameFileError, exit 11), an existing file without ``overwrite`` (exit 7), or one whose
    folder is missing or not writable (exit 6). For a folder run ``sheet`` is a folder,
    which must lie outside both INPUT and OUTPUT."""
    from ..io.atomic import check_output_path

    if sheet is not None and json_out is not None and _same(sheet, json_out):
        raise UsageError(f"{sheet}: --sheet and --json name the same file")
    for path, what in ((sheet, "sheet"), (json_out, "JSON")):
        if path is None:
            continue
        for protected, role in ((input, "input"), (output, "output")):
            if _same(path, protected) or (folders and what == "sheet" and _inside(path, protected)):
                raise SameFileError(f"{path}: the {what} would be written {'into' if folders and what == 'sheet' else 'over'} "
                                    f"the {role} {protected}; write it somewhere else")
        if folders and what == "sheet":
            if path.exists() and not path.is_dir():
                raise UsageError(f"{path}: --sheet for a folder run is a folder, and this is a file")
            continue
        check_output_path(path, overwrite)


def _reason(exc: Exception, path: Path) -> str:
    """An error message without the path it starts with (a report names files by key)."""
    text = str(exc)
    return text[len(str(path)) + 2:] if text.startswith(f"{path}: ") else text


def verify_paths(input: Path, output: Path, *, sheet: Path | None, json_out: Path | None, every: int | None,
                 threshold: float, detail_limit: float, quiet: bool, strict: bool = False,
                 overwrite: bool = False, full_paths: bool = False) -> None:
    """``blurcam verify``. ``full_paths``: the JSON records absolute paths (default: base
    names and folder-relative keys, so a shared report reveals no folder names)."""
    from rich.console import Console

    from ..io.atomic import write_atomically
    from .run import json_bytes, sheet_png, verify_pair

    try:
        config = VerifyConfig(threshold=threshold, every=every, detail_limit=detail_limit, strict=strict)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not input.exists():
        raise SourceError(f"{input}: input missing")
    folders = input.is_dir()
    check_write_paths(input, output, sheet=sheet, json_out=json_out, overwrite=overwrite, folders=folders)
    console = Console(stderr=True, highlight=False)
    if not folders:
        preset = _preset_from_manifest(output.parent, output.name)
        with _bar(console, quiet) as bar:
            task = bar.add_task(output.name, total=None)
            result, collected = verify_pair(input, output, config, blur_preset=preset,
                                            on_progress=lambda n, total: bar.update(task, completed=n, total=total))
        image, tiles = collected.render(result)
        if sheet is not None:
            write_atomically(sheet, sheet_png(image), overwrite=overwrite)
        if json_out is not None:
            write_atomically(json_out, json_bytes(result.to_json(config, full_paths=full_paths, sheet=tiles)),
                             overwrite=overwrite)
        _say(console, output.name, result, quiet)
        if not result.ok:
            raise ResidualFacesError(f"{output}: facial detail left in {len(result.residual_frames)} checked frames "
                                     f"(first at frame {result.residual_frames[0]}); see the sheet")
        return
    _verify_folder(input, output, config, sheet=sheet, json_out=json_out, quiet=quiet, overwrite=overwrite,
                   full_paths=full_paths, console=console)


def _verify_folder(input: Path, output: Path, config: VerifyConfig, *, sheet, json_out, quiet, overwrite,
                   full_paths, console) -> None:
    from ..batch import Manifest, plan_jobs
    from ..errors import OutputExistsError, SinkError
    from ..io.atomic import write_atomically
    from .run import json_bytes, sheet_png, verify_pair

    if not output.is_dir():
        raise PairError(f"{output}: output folder missing")
    jobs, _ = plan_jobs([input], output)
    manifest = Manifest(output)
    if sheet is not None:
        if not overwrite:
            taken = [job.key for job in jobs if (sheet / f"{job.key}.sheet.png").exists()]
            if taken:
                raise OutputExistsError(f"{sheet / (taken[0] + '.sheet.png')}: already exists (use --overwrite)"
                                        + (f"; and {len(taken) - 1} more sheets" if len(taken) > 1 else ""))
        try:
            sheet.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"{sheet}: cannot create the sheet folder: {exc.strerror}") from None
        if not os.access(sheet, os.W_OK | os.X_OK):
            raise SinkError(f"{sheet}: sheet folder is not writable")
    report = {"schema": 2, "ok": True, "input": str(input.resolve()) if full_paths else input.name,
              "output": str(output.resolve()) if full_paths else output.name, "files": {}}
    missing, residual = [], []
    with _bar(console, quiet) as bar:
        overall = bar.add_task("all files", total=len(jobs))
        for job in jobs:
            rec = manifest.files.get(job.key, {})
            if rec.get("state") != "done" or not job.output.exists():
                missing.append(job.key)
                report["files"][job.key] = {"ok": False, "error": "output missing (not done by a folder run)"}
                console.print(f"[red]missing[/red]  {job.key}")
                bar.advance(overall)
                continue
            preset = manifest.preset(job.key)
            task = bar.add_task(f"  {job.key}", total=None)
            try:
                result, collected = verify_pair(job.input, job.output, config, blur_preset=preset,
                                                on_progress=lambda n, total: bar.update(task, completed=n, total=total))
            except (PairError, SourceError) as exc:
                missing.append(job.key)
                report["files"][job.key] = {"ok": False, "error": _reason(exc, job.output if isinstance(exc, PairError)
                                                                           else job.input)}
                console.print(f"[red]mismatch[/red] {job.key}: {_reason(exc, job.output)}")
            else:
                image, tiles = collected.render(result)
                if sheet is not None:
                    sheet_path = sheet / f"{job.key}.sheet.png"
                    sheet_path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomically(sheet_path, sheet_png(image), overwrite=overwrite)
                record = result.to_json(config, full_paths=full_paths, sheet=tiles)
                if not full_paths:
                    record["input"], record["output"] = job.key, job.key
                report["files"][job.key] = record
                if not result.ok:
                    residual.append(job.key)
                _say(console, job.key, result, quiet)
            bar.remove_task(task)
            bar.advance(overall)
    report["ok"] = not (missing or residual)
    if json_out is not None:
        write_atomically(json_out, json_bytes(report), overwrite=overwrite)
    if missing:
        raise PairError(f"{len(missing)} of {len(jobs)} outputs missing or not a redaction of their input "
                        f"(first: {missing[0]})" + (f"; residual faces in {len(residual)} more" if residual else ""))
    if residual:
        raise ResidualFacesError(f"facial detail left in {len(residual)} of {len(jobs)} files "
                                 f"(first: {residual[0]}); see the sheets")


def _bar(console, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, disable=quiet, transient=True)


def _say(console, name: str, result, quiet: bool) -> None:
    """The summary: the verdict, what was checked, and what was not."""
    if result.ok and quiet:
        return
    verdict = "ok      " if result.ok else "[red]RESIDUAL[/red]"
    console.print(f"{verdict} {name}: checked {len(result.frames_checked)} of {result.frames} frames "
                  f"(every {result.every}), {result.faces_checked} face boxes judged, "
                  f"residual in {len(result.residual_frames)} frames, {len(result.doubtful)} doubtful boxes, "
                  f"{result.seconds:.1f} s", soft_wrap=True)
    console.print(f"         not checked: {result.not_checked_line()}", soft_wrap=True)


def _preset_from_manifest(folder: Path, name: str) -> str | None:
    """The preset a folder run made ``folder/name`` with, if its manifest says."""
    from ..batch import Manifest
    from ..errors import ManifestError

    try:
        m = Manifest(folder)
    except ManifestError:
        return None
    return m.preset(name)
