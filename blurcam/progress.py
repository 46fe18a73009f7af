"""The one progress display of blurcam's commands (blur of a file or a folder, verify).

Rows redrawn in place on stderr while it is a terminal, and gone when the run ends;
nothing at all when stderr is not a terminal (a log, a pipe, a test) or with --quiet, so
that only result lines and summaries are ever recorded. Drawn with rich (typer's own
dependency); lines printed through ``display.console`` land above the rows.
"""
from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text


class _Note(ProgressColumn):
    """A task's ``note`` field (e.g. ``24.0 fps  faces 3``); empty when it has none."""

    def render(self, task) -> Text:
        return Text(str(task.fields.get("note", "")))


def progress_display(console: Console | None = None, *, quiet: bool = False) -> Progress:
    """A rich ``Progress``, one row per task: description, bar, done/total, elapsed,
    remaining and the task's ``note``. Use it as a context manager; ``add_task``,
    ``update``, ``advance``, ``remove_task`` as in rich. Shown only when not ``quiet``
    and ``console``'s file (default: stderr) is a terminal."""
    console = console or Console(stderr=True, highlight=False)
    isatty = getattr(console.file, "isatty", None)
    shown = not quiet and bool(isatty and isatty())
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), _Note(), console=console, disable=not shown, transient=True)
