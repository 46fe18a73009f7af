"""The folder run as a user watches it: one overall bar, a line per running file, a summary.

The bars are blurcam.progress's display: redrawn in place on a terminal; when stderr is
not a terminal only the per-file result lines and the summary are printed.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from .batch import Events, Job, JobResult
from ..progress import progress_display


class RichEvents(Events):
    """Renders a folder run's events; use as a context manager around the run."""

    def __init__(self, total_files: int, *, quiet: bool = False, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.quiet = quiet
        self.bars = progress_display(self.console, quiet=quiet)
        self.overall = self.bars.add_task("all files", total=total_files)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> RichEvents:
        self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.stop()

    def started(self, job: Job, total_frames: int | None) -> None:
        self.tasks[job.key] = self.bars.add_task(f"  {job.key}", total=total_frames)

    def progress(self, job: Job, frames_done: int) -> None:
        if job.key in self.tasks:
            self.bars.update(self.tasks[job.key], completed=frames_done)

    def finished(self, job: Job, result: JobResult) -> None:
        task = self.tasks.pop(job.key, None)
        if task is not None:
            self.bars.remove_task(task)
        self.bars.advance(self.overall)
        if result.status == "done" and not self.quiet:
            fps = result.frames / result.seconds if result.seconds else 0.0
            self.bars.console.print(f"done    {job.key}: {result.frames} frames, {result.faces} faces, "
                                        f"{fps:.1f} fps")
        elif result.status == "failed":
            self.bars.console.print(f"[red]failed[/red]  {job.key}: {result.error}", markup=True)


def summary_table(results: list[JobResult], skipped: list[Job], output_dir: Path, *, limit: int = 40) -> Table:
    """Done, skipped and failed files; the failed ones always listed with their reason,
    the others listed while there are at most ``limit`` rows."""
    failed = [r for r in results if r.status == "failed"]
    done = [r for r in results if r.status == "done"]
    stopped = [r for r in results if r.status == "interrupted"]
    table = Table(title=f"{output_dir}: {len(done)} done, {len(skipped)} skipped (done before), "
                        f"{len(failed)} failed" + (f", {len(stopped)} interrupted" if stopped else ""),
                  title_justify="left")
    for name in ("file", "result", "frames", "faces", "seconds", "reason"):
        table.add_column(name, overflow="fold")
    rows = [(r.key, "[red]failed[/red]", "", "", f"{r.seconds:.1f}", r.error) for r in failed]
    if len(done) + len(skipped) + len(rows) <= limit:
        rows += [(r.key, "done", str(r.frames), str(r.faces), f"{r.seconds:.1f}", "") for r in done]
        rows += [(j.key, "skipped", "", "", "", "done before") for j in skipped]
    for row in sorted(rows, key=lambda row: row[0]):
        table.add_row(*row)
    return table
