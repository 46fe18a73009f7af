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


def verify_paths(input: Path, output: Path, *, sheet: Path | None, json_out: Path | None, every: int | None,
                 threshold: float, detail_limit: float, quiet: bool, strict: bool = False) -> None:
    """``blurcam verify``: one pair, or every file of a folder run (paired as the run
    mapped them, and only those its manifest records as done)."""
    import json

    from rich.console import Console

    from .batch import Manifest, plan_jobs
    from .errors import PairError, ResidualFacesError
    from .verify import VerifyConfig, verify_pair, write_outputs

    try:
        config = VerifyConfig(threshold=threshold, every=every, detail_limit=detail_limit,
                              **({"residual_score": 0.0} if strict else {}))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"threshold must be in [0, 1], got {threshold}")
    console = Console(stderr=True, highlight=False)
    if not input.is_dir():
        manifest_dir = output.parent
        preset = _preset_from_manifest(manifest_dir, output.name)
        with _bar(console, quiet) as bar:
            task = bar.add_task(output.name, total=None)
            result, image = verify_pair(input, output, config, blur_preset=preset,
                                        on_progress=lambda n, total: bar.update(task, completed=n, total=total))
        write_outputs(result, image, config, sheet_path=sheet, json_path=json_out)
        _say(console, output.name, result, quiet)
        if not result.ok:
            raise ResidualFacesError(f"{output}: facial detail left in {len(result.residual_frames)} checked frames "
                                     f"(first at frame {result.residual_frames[0]}); see the sheet")
        return
    if not output.is_dir():
        raise PairError(f"{output}: output folder missing")
    jobs, _ = plan_jobs([input], output)
    manifest = Manifest(output)
    report = {"schema": 1, "ok": True, "files": {}}
    missing, residual = [], []
    if sheet is not None:
        sheet.mkdir(parents=True, exist_ok=True)
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
            preset = manifest.data["settings"].get(rec["settings"], {}).get("config", {}).get("detector")
            task = bar.add_task(f"  {job.key}", total=None)
            try:
                result, image = verify_pair(job.input, job.output, config, blur_preset=preset,
                                            on_progress=lambda n, total: bar.update(task, completed=n, total=total))
            except PairError as exc:
                missing.append(job.key)
                report["files"][job.key] = {"ok": False, "error": str(exc)}
                console.print(f"[red]mismatch[/red] {job.key}: {exc}")
            else:
                sheet_path = None if sheet is None else sheet / f"{job.key}.sheet.png"
                if sheet_path is not None:
                    sheet_path.parent.mkdir(parents=True, exist_ok=True)
                write_outputs(result, image, config, sheet_path=sheet_path, json_path=None)
                report["files"][job.key] = result.to_json(config)
                if not result.ok:
                    residual.append(job.key)
                _say(console, job.key, result, quiet)
            bar.remove_task(task)
            bar.advance(overall)
    report["ok"] = not (missing or residual)
    if json_out is not None:
        from .io.atomic import write_atomically

        write_atomically(json_out, json.dumps(report, indent=1).encode(), overwrite=True)
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
    if result.ok and quiet:
        return
    verdict = "ok      " if result.ok else "[red]RESIDUAL[/red]"
    console.print(f"{verdict} {name}: checked {len(result.frames_checked)} of {result.frames} frames "
                  f"(every {result.every}), {result.faces_checked} faces, "
                  f"residual in {len(result.residual_frames)} frames, {len(result.doubtful)} doubtful boxes, "
                  f"{result.seconds:.1f} s")


def _preset_from_manifest(folder: Path, name: str) -> str | None:
    """The preset a folder run made ``folder/name`` with, if its manifest says."""
    from .batch import Manifest
    from .errors import ManifestError

    try:
        m = Manifest(folder)
    except ManifestError:
        return None
    rec = m.files.get(name)
    if not rec:
        return None
    return m.data["settings"].get(rec.get("settings"), {}).get("config", {}).get("detector")
