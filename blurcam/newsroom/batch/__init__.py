"""Folder runs: many inputs -> a mirrored output tree, in parallel processes, resumable.

    scan_inputs(inputs, output_dir)       which file goes where (collisions are errors), and
                                          what could not be read (listed; the run exits 20)
    Manifest(output_dir)                  what is done, with which settings and models
    run_local(plan, config, jobs=...)     each file in a worker process (spawn), results back
    run_job(job, config)                  one file, in whatever process runs it (pool or Ray)

The manifest (``blurcam-manifest.json`` in OUTPUT_DIR) is written only by the
process that plans the run, atomically, after every finished file: workers never
touch it. That process holds a lock on OUTPUT_DIR for the whole run (FolderLock), so a
second run into the same folder waits instead of overwriting the first one's records.
It records each input's size, mtime and SHA-256, a fingerprint of the settings
(:func:`blurcam.pipeline.settings_record`: PipelineConfig, its detector's precision and
runtime included, + the SHA-256s of the models it loads) and the output's size; a file whose record
matches is skipped. It holds paths relative to the input folders, counts and
hashes: no pixels, no absolute paths, no secrets.

Outputs are written as by a single-file run: under a hidden ``.NAME.XXXXXXXX.partial.EXT``
name (:func:`blurcam.io.atomic.partial_name`), renamed into place when complete. A
worker that is stopped (Ctrl-C, its parent gone) removes its partial file; one killed
outright cannot, so every run first removes the partial names left in OUTPUT_DIR.

This package imports no typer and no rich: the CLI renders the events it gets.

The package, by job (this module re-exports what other modules use):

    scan.py       Job, LeftOut, scan_inputs, plan_jobs: inputs -> jobs
    manifest.py   Manifest, fingerprint, recorded_outputs: the record of what is done
    plan.py       plan_folder, FolderPlan, FolderLock, remove_partials, record_result
    job.py        run_job, JobResult: one file, in a worker process or a Ray task
    pool.py       run_local, Events, default_jobs: the local process pool
"""
from .job import JobResult, StopJob, run_job
from .manifest import MANIFEST_NAME, MANIFEST_SCHEMA, Manifest, fingerprint, recorded_outputs
from .plan import FolderLock, FolderPlan, plan_folder, prepare_output_dir, record_result, remove_partials
from .pool import Events, default_jobs, run_local
from .scan import Job, LeftOut, plan_jobs, scan_inputs

__all__ = ["Events", "FolderLock", "FolderPlan", "Job", "JobResult", "LeftOut", "MANIFEST_NAME", "MANIFEST_SCHEMA",
           "Manifest", "StopJob", "default_jobs", "fingerprint", "plan_folder", "plan_jobs", "prepare_output_dir",
           "record_result", "recorded_outputs", "remove_partials", "run_job", "run_local", "scan_inputs"]
