"""Planning a folder run: OUTPUT_DIR made and locked, a killed run's partial files
removed, the manifest read, and each job either skipped or marked pending; then each
finished job recorded."""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ...errors import ManifestError, SinkError, SourceError
from ...io.atomic import is_partial_name, partial_name
from .job import JobResult
from .manifest import MANIFEST_NAME, MANIFEST_SCHEMA, Manifest, fingerprint
from .scan import Job, LeftOut, scan_inputs

log = logging.getLogger(__name__)


def prepare_output_dir(output_dir: str | Path) -> Path:
    """Create OUTPUT_DIR if needed and check it can be written; SinkError otherwise."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SinkError(f"{output_dir}: exists and is not a folder") from None
    except OSError as exc:
        raise SinkError(f"{output_dir}: output folder cannot be created: {exc.strerror or exc}") from None
    probe = partial_name(output_dir / "blurcam-probe")  # a killed run's probe is cleaned up as a partial
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SinkError(f"{output_dir}: output folder is not writable: {exc.strerror or exc}") from None
    return output_dir


class FolderLock:
    """An exclusive lock on OUTPUT_DIR for the whole of a folder run, so that two runs
    into one folder never read, then overwrite, each other's manifest: the second waits
    (``on_wait()`` is called once first, to say so). POSIX ``flock`` on the folder
    itself: nothing is created in it, and the lock goes when the process ends, however
    it ends. Without ``fcntl`` (Windows) runs are not serialised."""

    def __init__(self, folder: Path, on_wait: Callable[[], None] | None = None) -> None:
        self.fd: int | None = None
        try:
            import fcntl
        except ImportError:
            return
        try:
            self.fd = os.open(folder, os.O_RDONLY)
        except OSError as exc:
            raise SinkError(f"{folder}: output folder cannot be opened: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)  # Ctrl-C interrupts the wait
            except BaseException:
                self.release()
                raise
        except OSError:  # a filesystem without locks (some network mounts): run unserialised
            log.info("%s: cannot be locked; another run into it at the same time could lose records", folder)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def remove_partials(output_dir: str | Path, *, settle_s: float = 0.0) -> list[Path]:
    """Delete, in every folder under ``output_dir``, the hidden partial outputs whose writer
    is gone (:func:`blurcam.io.atomic.remove_stale_partials`: unlocked, and at least a few
    seconds old, so a file another run has just created is left alone). ``settle_s``:
    first wait until the youngest partial is old enough, for callers that know every
    writer of theirs has ended (a Ray driver after its last task)."""
    from ...io.atomic import STALE_AFTER_S, remove_stale_partials

    folders = [Path(folder) for folder, _dirs, _files in os.walk(output_dir)]
    if settle_s:
        ages = [time.time() - p.stat().st_mtime for f in folders for p in f.iterdir() if is_partial_name(p.name)]
        if ages:
            time.sleep(min(settle_s, max(0.0, STALE_AFTER_S + 0.2 - min(ages))))
    removed = []
    for folder in folders:
        removed += remove_stale_partials(folder)
    return removed


@dataclass
class FolderPlan:
    """A folder run after planning: ``todo`` to run, ``skipped`` done before."""

    output_dir: Path
    todo: list[Job]
    skipped: list[Job]
    ignored: int
    manifest: Manifest
    settings_fp: str
    lock: FolderLock | None = None
    left_out: list[LeftOut] = dataclasses.field(default_factory=list)

    def close(self) -> None:
        """Release OUTPUT_DIR for the next run (call when the run has ended)."""
        if self.lock is not None:
            self.lock.release()


def plan_folder(inputs: Iterable[str | Path], output_dir: str | Path, config, *, force: bool = False,
                on_wait: Callable[[], None] | None = None) -> FolderPlan:
    """Plan a folder run: map inputs to outputs, lock OUTPUT_DIR (waiting for another
    run into it to end; ``on_wait`` says so), read the manifest, decide what to skip,
    and mark the rest pending. An existing output the manifest does not know of is
    refused (SinkError via its job) unless ``force``: it may be someone's own file.
    ``plan.left_out``: what under the inputs could not be read. The caller calls
    ``plan.close()`` when the run has ended."""
    jobs, ignored, left_out = scan_inputs(inputs, output_dir)
    if not jobs:
        why = f" ({len(left_out)} left out: {left_out[0].path}: {left_out[0].reason})" if left_out else ""
        raise SourceError(f"no video or image files found in {', '.join(map(str, inputs))}{why}")
    output_dir = prepare_output_dir(output_dir)
    lock = FolderLock(output_dir, on_wait)
    try:
        plan = _plan_locked(jobs, ignored, output_dir, config, force)
    except BaseException:
        lock.release()
        raise
    plan.lock, plan.left_out = lock, left_out
    return plan


def _plan_locked(jobs: list[Job], ignored: int, output_dir: Path, config, force: bool) -> FolderPlan:
    from ...errors import OutputExistsError
    from ...pipeline import settings_record

    remove_partials(output_dir)  # a killed run's; each job's FileSink also cleans its own folder
    manifest = Manifest(output_dir) if not force else _fresh_manifest(output_dir)
    settings = settings_record(config)
    fp = fingerprint(settings)
    todo, skipped = [], []
    for job in jobs:
        if not force and manifest.is_done(job, fp):
            skipped.append(job)
            continue
        if job.output.exists() and not (job.key in manifest.files or force):
            raise OutputExistsError(f"{job.output}: already exists and was not written by this folder's runs "
                                    "(use --force to replace it)")
        # From here on, a file at the job's output can only be this run's (a committed
        # output whose worker died before reporting, a Ray retry): replace it.
        todo.append(dataclasses.replace(job, overwrite=True))
    manifest.mark_pending(todo, fp, settings)
    manifest.save()
    return FolderPlan(output_dir, todo, skipped, ignored, manifest, fp)


def _fresh_manifest(output_dir: Path) -> Manifest:
    try:
        return Manifest(output_dir)
    except ManifestError:  # --force redoes everything, so a damaged manifest is replaced
        m = Manifest.__new__(Manifest)
        m.path = output_dir / MANIFEST_NAME
        m.data = {"schema": MANIFEST_SCHEMA, "settings": {}, "files": {}}
        return m


def record_result(plan: FolderPlan, job: Job, result: JobResult) -> None:
    """Record a finished job in the manifest (saved at once: a crash loses nothing done)."""
    if result.status == "done":
        plan.manifest.mark_done(job, result, plan.settings_fp)
        plan.manifest.save()
    elif result.status == "failed":  # so that a reader (blurcam review) can tell failed from not yet run
        plan.manifest.mark_failed(job, plan.settings_fp)
        plan.manifest.save()
