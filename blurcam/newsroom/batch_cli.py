"""``blurcam blur INPUT... -o OUTPUT_DIR``: the folder run's command-line shell.

Plans the run (blurcam.newsroom.batch), runs it in local worker processes or on Ray
(blurcam.newsroom.cluster), shows progress and the summary (blurcam.newsroom.batch_view), and turns
the outcome into an exit status. Errors are raised as BlurcamError for cli.py.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import SomeFilesFailedError, UsageError


def blur_folder(paths: list[Path], output_dir: Path | None, config, *, jobs: int | None, force: bool,
                ray: str | None, quiet: bool, report: Path | None) -> None:
    from rich.console import Console

    from .batch import plan_folder

    if output_dir is None:
        raise UsageError("several inputs or a folder need --output-dir/-o OUTPUT_DIR")
    if report is not None:
        raise UsageError("--report is for one file; a folder run records every file in OUTPUT_DIR/blurcam-manifest.json")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if jobs is not None and ray is not None:
        raise UsageError("--jobs is for local runs; on Ray the cluster's CPUs decide")
    console = Console(stderr=True, highlight=False)
    plan = plan_folder(paths, output_dir, config, force=force,
                       on_wait=lambda: console.print(f"waiting for another blurcam run into {output_dir} to end "
                                                     "(Ctrl-C to stop) ...", markup=False, soft_wrap=True))
    try:
        _run_folder(plan, config, jobs=jobs, ray=ray, quiet=quiet, console=console)
    finally:
        plan.close()


def _run_folder(plan, config, *, jobs: int | None, ray: str | None, quiet: bool, console) -> None:
    from rich.markup import escape

    from .batch import default_jobs, run_local
    from .batch_view import RichEvents, summary_table

    events = RichEvents(len(plan.todo), quiet=quiet, console=console)
    for item in plan.left_out:  # always shown: files in it may be unredacted
        console.print(f"[red]left out[/red] {escape(str(item.path))}: {escape(item.reason)}", soft_wrap=True)
    if plan.ignored and not quiet:
        console.print(f"left out {plan.ignored} files that are not video or images")
    if plan.skipped and not quiet:
        console.print(f"skipping {len(plan.skipped)} files done before with the same settings "
                      "(--force redoes them)")
    results = []
    if plan.todo:
        with events:
            if ray is not None:
                from .cluster import run_ray

                results = run_ray(plan, config, address=ray, events=events)
            else:
                n = jobs or default_jobs(config.detector, len(plan.todo))
                results = run_local(plan, config, jobs=n, events=events)
    failed = [r for r in results if r.status == "failed"]
    if not quiet or failed or plan.left_out:
        console.print(summary_table(results, plan.skipped, plan.output_dir))
    obscured = sum(r.frames_obscured_whole for r in results)
    if obscured:
        console.print(f"blurcam: warning: the detector failed on {obscured} frames; they were obscured whole")
    if failed or plan.left_out:
        what = [f"{len(failed)} of {len(plan.todo) + len(plan.skipped)} files failed (rerun to retry them)"
                ] if failed else []
        if plan.left_out:
            what.append(f"{len(plan.left_out)} inputs could not be read and were left out, "
                        f"first {plan.left_out[0].path} (make them readable and rerun)")
        raise SomeFilesFailedError("; ".join(what) + "; listed above")

