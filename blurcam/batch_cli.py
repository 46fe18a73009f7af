"""``blurcam blur INPUT... -o OUTPUT_DIR``: the folder run's command-line shell.

Plans the run (blurcam.batch), runs it in local worker processes or on Ray
(blurcam.cluster), shows progress and the summary (blurcam.batch_view), and turns
the outcome into an exit status. Errors are raised as BlurcamError for cli.py.
"""
from __future__ import annotations

from pathlib import Path

from .errors import SomeFilesFailedError, UsageError


def blur_folder(paths: list[Path], output_dir: Path | None, config, *, jobs: int | None, force: bool,
                ray: str | None, quiet: bool, report: Path | None) -> None:
    from .batch import default_jobs, plan_folder, run_local
    from .batch_view import RichEvents, summary_table

    if output_dir is None:
        raise UsageError("several inputs or a folder need --output-dir/-o OUTPUT_DIR")
    if report is not None:
        raise UsageError("--report is for one file; a folder run records every file in OUTPUT_DIR/blurcam-manifest.json")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if jobs is not None and ray is not None:
        raise UsageError("--jobs is for local runs; on Ray the cluster's CPUs decide")
    plan = plan_folder(paths, output_dir, config, force=force)
    events = RichEvents(len(plan.todo), quiet=quiet)
    if plan.ignored and not quiet:
        events.console.print(f"left out {plan.ignored} files that are not video or images")
    if plan.skipped and not quiet:
        events.console.print(f"skipping {len(plan.skipped)} files done before with the same settings "
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
    if not quiet or failed:
        events.console.print(summary_table(results, plan.skipped, plan.output_dir))
    obscured = sum(r.frames_obscured_whole for r in results)
    if obscured:
        events.console.print(f"blurcam: warning: the detector failed on {obscured} frames; they were obscured whole")
    if failed:
        raise SomeFilesFailedError(f"{len(failed)} of {len(plan.todo) + len(plan.skipped)} files failed "
                                   "(listed above); rerun to retry them")
