"""The ``blurcam verify`` command's shell: one pair (run.py), or every output of a folder
run (folder.py), its progress and summary lines, the sheet and JSON written.

Every path it will write (the sheet, the JSON) is checked before any work: never the
input or the output (by any spelling: a symlink, a hard link), never an existing file
without ``overwrite``, and its folder must exist and be writable. Errors are raised as
BlurcamError for cli.py.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import ResidualFacesError, SameFileError, SourceError, UsageError
from .folder import FileVerdict, FolderEvents
from .measure import VerifyConfig


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_write_paths(input: Path, output: Path, *, sheet: Path | None, json_out: Path | None,
                      overwrite: bool, folders: bool) -> None:
    """Refuse, before any work, a sheet or JSON path that would replace INPUT or OUTPUT
    (SameFileError, exit 11), an existing file without ``overwrite`` (exit 7), or one whose
    folder is missing or not writable (exit 6). For a folder run ``sheet`` is a folder,
    which must lie outside both INPUT and OUTPUT."""
    from ...io.atomic import check_output_path, same_file

    if sheet is not None and json_out is not None and same_file(sheet, json_out):
        raise UsageError(f"{sheet}: --sheet and --json name the same file")
    for path, what in ((sheet, "sheet"), (json_out, "JSON")):
        if path is None:
            continue
        for protected, role in ((input, "input"), (output, "output")):
            if same_file(path, protected) or (folders and what == "sheet" and _inside(path, protected)):
                raise SameFileError(f"{path}: the {what} would be written {'into' if folders and what == 'sheet' else 'over'} "
                                    f"the {role} {protected}; write it somewhere else")
        if folders and what == "sheet":
            if path.exists() and not path.is_dir():
                raise UsageError(f"{path}: --sheet for a folder run is a folder, and this is a file")
            continue
        check_output_path(path, overwrite)


def verify_paths(input: Path, output: Path, *, sheet: Path | None, json_out: Path | None, every: int | None,
                 threshold: float, detail_limit: float, quiet: bool, strict: bool = False,
                 overwrite: bool = False, full_paths: bool = False) -> None:
    """``blurcam verify``. ``full_paths``: the JSON records absolute paths (default: base
    names and folder-relative keys, so a shared report reveals no folder names)."""
    from ...io.atomic import write_atomically
    from ...progress import progress_display
    from .folder import verify_folder
    from .run import json_bytes, sheet_png, verify_pair

    try:
        config = VerifyConfig(threshold=threshold, every=every, detail_limit=detail_limit, strict=strict)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not input.exists():
        raise SourceError(f"{input}: input missing")
    folders = input.is_dir()
    check_write_paths(input, output, sheet=sheet, json_out=json_out, overwrite=overwrite, folders=folders)
    display = progress_display(quiet=quiet)
    if folders:
        with display:
            verdict = verify_folder(input, output, config, sheets=sheet, overwrite=overwrite,
                                    events=_FolderView(display, quiet))
        if json_out is not None:
            write_atomically(json_out, json_bytes(verdict.to_json(full_paths=full_paths)), overwrite=overwrite)
        failure = verdict.error()
        if failure is not None:
            raise failure
        return
    preset = _preset_from_manifest(output.parent, output.name)
    with display:
        task = display.add_task(output.name, total=None)
        result, collected = verify_pair(input, output, config, blur_preset=preset,
                                        on_progress=lambda n, total: display.update(task, completed=n, total=total))
    image, tiles = collected.render(result)
    if sheet is not None:
        write_atomically(sheet, sheet_png(image), overwrite=overwrite)
    if json_out is not None:
        write_atomically(json_out, json_bytes(result.to_json(config, full_paths=full_paths, sheet=tiles)),
                         overwrite=overwrite)
    _say(display.console, output.name, result, quiet)
    if not result.ok:
        raise ResidualFacesError(f"{output}: facial detail left in {len(result.residual_frames)} checked frames "
                                 f"(first at frame {result.residual_frames[0]}); see the sheet")


class _FolderView(FolderEvents):
    """A folder verification as the user watches it: an overall row and one per file
    being checked on the progress display, then a line per file."""

    def __init__(self, display, quiet: bool) -> None:
        self.display, self.quiet = display, quiet
        self.overall = self.task = None

    def planned(self, keys: list[str]) -> None:
        self.overall = self.display.add_task("all files", total=len(keys))

    def started(self, key: str) -> None:
        self.task = self.display.add_task(f"  {key}", total=None)

    def progress(self, key: str, frames_done: int, frames_total: int | None) -> None:
        self.display.update(self.task, completed=frames_done, total=frames_total)

    def finished(self, verdict: FileVerdict) -> None:
        console = self.display.console
        if verdict.status == "missing":
            console.print(f"[red]missing[/red]  {verdict.key}")
        elif verdict.status == "mismatch":
            console.print(f"[red]mismatch[/red] {verdict.key}: {verdict.error}")
        else:
            _say(console, verdict.key, verdict.result, self.quiet)
        if self.task is not None:
            self.display.remove_task(self.task)
            self.task = None
        self.display.advance(self.overall)


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
    from ..batch import recorded_outputs
    from ...errors import ManifestError

    try:
        return recorded_outputs(folder).get(name, (None, None))[1]
    except ManifestError:
        return None
