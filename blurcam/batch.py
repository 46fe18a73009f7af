"""Folder runs: many inputs -> a mirrored output tree, in parallel processes, resumable.

    scan_inputs(inputs, output_dir)       which file goes where (collisions are errors), and
                                          what could not be read (listed; the run exits 20)
    Manifest(output_dir)                  what is done, with which settings and models
    run_local(jobs, config, ...)          each file in a worker process (spawn), results back
    run_job(job, config)                  one file, in whatever process runs it (pool or Ray)

The manifest (``blurcam-manifest.json`` in OUTPUT_DIR) is written only by the
process that plans the run, atomically, after every finished file: workers never
touch it. That process holds a lock on OUTPUT_DIR for the whole run (FolderLock), so a
second run into the same folder waits instead of overwriting the first one's records. It records each input's size, mtime and SHA-256, a fingerprint of the
settings (PipelineConfig + the models' SHA-256s) and the output's size; a file whose
record matches is skipped. It holds paths relative to the input folders, counts and
hashes: no pixels, no absolute paths, no secrets.

Outputs are written as by a single-file run: under a hidden ``.NAME.XXXXXXXX.partial.EXT``
name, renamed into place when complete. A worker that is stopped (Ctrl-C, its parent
gone) removes its partial file; one killed outright cannot, so every run first removes
the partial names left in OUTPUT_DIR.

This module imports no typer and no rich: the CLI renders the events it gets.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import BlurcamError, ManifestError, OutputCollisionError, SameFileError, SinkError, SourceError
from .models import sha256_file

log = logging.getLogger(__name__)

MANIFEST_NAME = "blurcam-manifest.json"
MANIFEST_SCHEMA = 1
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".ts", ".mts", ".m2ts", ".avi", ".flv",
                    ".mpg", ".mpeg", ".3gp", ".wmv")
# The name FileSink and write_atomically give a file while it is written.
PARTIAL_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.partial(\.[^./]+)?$")


@dataclass(frozen=True)
class Job:
    """One file of a folder run. ``key``: the output's path relative to OUTPUT_DIR (posix),
    the manifest's key. ``source``: the input's path relative to the input it came from
    (what the manifest records). ``overwrite``: replace an output the manifest knows of."""

    input: Path
    output: Path
    key: str
    source: str
    overwrite: bool = False

    @property
    def is_image(self) -> bool:
        from .pipeline import is_image_path

        return is_image_path(self.input)


@dataclass
class JobResult:
    """What a worker reports for one job. status: done, failed or interrupted.
    error: the one-line reason; exit_code: the single-file CLI's status for it."""

    key: str
    status: str
    error: str = ""
    exit_code: int = 0
    frames: int = 0
    faces: int = 0
    frames_obscured_whole: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    input_size: int = 0
    input_mtime_ns: int = 0
    input_sha256: str = ""
    output_size: int = 0


def is_media_path(path: Path) -> bool:
    from .pipeline import is_image_path

    return path.suffix.lower() in VIDEO_EXTENSIONS or is_image_path(path)


@dataclass(frozen=True)
class LeftOut:
    """Something under a folder run's inputs that could not be read (a folder that cannot
    be listed, a broken link, a media name that is not a regular file), and why. The
    run lists each one and exits 20: files in it may be unredacted."""

    path: Path
    reason: str


def plan_jobs(inputs: Iterable[str | Path], output_dir: str | Path) -> tuple[list[Job], int]:
    """:func:`scan_inputs` without what it left out: (jobs, non-media files left out)."""
    jobs, ignored, _left_out = scan_inputs(inputs, output_dir)
    return jobs, ignored


def scan_inputs(inputs: Iterable[str | Path], output_dir: str | Path) -> tuple[list[Job], int, list[LeftOut]]:
    """Map every media file under ``inputs`` to its place under ``output_dir``.

    A folder's tree is mirrored directly under ``output_dir``; a file goes to
    ``output_dir/NAME``. Symbolic links to folders are followed, except one back to a
    folder it is inside (a loop: its files are in the run already). Hidden files and
    folders, non-media files (camera sidecars such as .THM thumbnails and .XML are not
    copied) and anything inside ``output_dir`` are left out. Returns (jobs sorted by
    key, non-media files left out, what could not be read). Raises SourceError for a
    missing input, SameFileError when OUTPUT_DIR is an input folder, and
    OutputCollisionError when two inputs would share an output name (compared
    case-insensitively: macOS and Windows folders cannot hold both).
    """
    output_dir = Path(output_dir).absolute()
    out_resolved = output_dir.resolve()
    jobs: list[Job] = []
    left_out: list[LeftOut] = []
    ignored = 0
    for given in inputs:
        root = Path(given)
        if not root.exists():
            raise SourceError(f"{root}: no such file or folder")
        if root.resolve() == out_resolved:
            raise SameFileError(f"{output_dir}: the output folder is the input {root}; "
                                "write it somewhere else")
        if root.is_file():
            candidates = [(root, root.name)]
        else:
            candidates = list(_walk(root, root, out_resolved, left_out, ()))
        for path, rel in candidates:
            if not is_media_path(path):
                ignored += 1
                log.info("left out %s: not a video or image", path)
                continue
            jobs.append(Job(path.absolute(), output_dir / rel, rel, rel))
    seen: dict[str, Job] = {}
    for job in jobs:
        other = seen.setdefault(job.key.casefold(), job)
        if other is not job:
            raise OutputCollisionError(f"{other.input} and {job.input} would both be written to {job.output}")
        if job.input.resolve() == job.output.resolve():
            raise SameFileError(f"{job.output}: the output would replace the input {job.input}; "
                                "write it somewhere else")
    return sorted(jobs, key=lambda j: j.key), ignored, left_out


def _walk(folder: Path, root: Path, out_resolved: Path, left_out: list[LeftOut],
          above: tuple[tuple[int, int], ...]):
    """Yield (path, path relative to ``root``) of the visible regular files under
    ``folder``, sorted; record in ``left_out`` what cannot be read. ``above``: the
    (device, inode) of the folders being walked, to recognise a link back to one."""
    try:
        st = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        left_out.append(LeftOut(folder, f"folder cannot be read: {exc.strerror or exc}"))
        return
    above = (*above, (st.st_dev, st.st_ino))
    for entry in entries:
        if entry.name.startswith("."):
            log.info("left out %s: hidden", entry.path)
            continue
        path = Path(entry.path)
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()
        except OSError as exc:
            left_out.append(LeftOut(path, f"cannot be read: {exc.strerror or exc}"))
            continue
        if is_dir:
            target = path.resolve()
            if target == out_resolved:
                continue
            try:
                target_st = path.stat()
            except OSError as exc:
                left_out.append(LeftOut(path, f"folder cannot be read: {exc.strerror or exc}"))
                continue
            if (target_st.st_dev, target_st.st_ino) in above:
                log.info("%s: not followed: a link back to %s, whose files are in the run", path, target)
                continue
            yield from _walk(path, root, out_resolved, left_out, above)
        elif is_file:
            yield path, path.relative_to(root).as_posix()
        elif entry.is_symlink():
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            left_out.append(LeftOut(path, f"broken symbolic link (to {target})"))
        elif is_media_path(path):
            left_out.append(LeftOut(path, "not a regular file (a pipe, socket or device)"))


def settings_record(config) -> dict:
    """The settings a folder run is keyed on: the pipeline config and the models' SHA-256s."""
    from .models import manifest

    return {"config": dataclasses.asdict(config),
            "models": {name: entry["sha256"] for name, entry in sorted(manifest().items())}}


def fingerprint(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


class Manifest:
    """``OUTPUT_DIR/blurcam-manifest.json``: one record per output key.

    A record's ``state`` is ``pending`` from the moment a run plans the file (so that
    an output committed just before a crash is redone, not refused as someone else's
    file), ``done`` once its output is in place, ``failed`` when its job failed.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / MANIFEST_NAME
        self.data: dict = {"schema": MANIFEST_SCHEMA, "settings": {}, "files": {}}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise ManifestError(f"{self.path}: manifest cannot be read ({exc}); "
                                    "move it away or use --force") from None
            if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
                raise ManifestError(f"{self.path}: manifest has an unknown schema; move it away or use --force")
            problem = _shape_problem(data)
            if problem:
                raise ManifestError(f"{self.path}: manifest is damaged ({problem}); move it away or use --force")
            self.data = data

    @property
    def files(self) -> dict[str, dict]:
        return self.data["files"]

    def is_done(self, job: Job, settings_fp: str) -> bool:
        """True when ``job``'s output is in place from the same input and settings.
        Size and mtime decide when they match; when only the mtime moved, the content
        hash does (and the record is refreshed)."""
        rec = self.files.get(job.key)
        if not rec or rec.get("state") != "done" or rec.get("settings") != settings_fp:
            return False
        try:
            st, out = job.input.stat(), job.output.stat()
        except OSError:
            return False
        if out.st_size != rec.get("output_size") or st.st_size != rec.get("input_size"):
            return False
        if st.st_mtime_ns != rec.get("input_mtime_ns"):
            if sha256_file(job.input) != rec.get("input_sha256"):
                return False
            rec["input_mtime_ns"] = st.st_mtime_ns
        return True

    def mark_pending(self, jobs: Iterable[Job], settings_fp: str, settings: dict) -> None:
        self.data["settings"][settings_fp] = settings
        for job in jobs:
            self.files[job.key] = {"source": job.source, "state": "pending", "settings": settings_fp}

    def mark_done(self, job: Job, result: JobResult, settings_fp: str) -> None:
        self.files[job.key] = {
            "source": job.source, "state": "done", "settings": settings_fp,
            "input_size": result.input_size, "input_mtime_ns": result.input_mtime_ns,
            "input_sha256": result.input_sha256, "output_size": result.output_size,
            "frames": result.frames, "faces": result.faces, "seconds": round(result.seconds, 3),
            "cpu_s": round(result.cpu_s, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def mark_failed(self, job: Job, settings_fp: str) -> None:
        """``failed``: redone by the next run, as ``pending`` is (the reason is in the run's
        output, not here: it may hold paths)."""
        self.files[job.key] = {"source": job.source, "state": "failed", "settings": settings_fp,
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def save(self) -> None:
        """Write atomically (temporary file + rename): a crash leaves the old or the new one."""
        used = {rec.get("settings") for rec in self.files.values()}
        self.data["settings"] = {k: v for k, v in self.data["settings"].items() if k in used}
        tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.partial.json")
        try:
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SinkError(f"{self.path}: cannot write manifest: {exc.strerror or exc}") from None


def _shape_problem(data: dict) -> str | None:
    """What is wrong with a schema-1 manifest's shape (hand-edited, half-merged), or None.
    Checked on reading, so that no later use of it fails with a traceback."""
    settings, files = data.get("settings", {}), data.get("files", {})
    if not isinstance(settings, dict):
        return '"settings" is not an object'
    if not isinstance(files, dict):
        return '"files" is not an object'
    for fp, record in settings.items():
        if not isinstance(record, dict) or not isinstance(record.get("config", {}), dict):
            return f'settings {fp!r} is not an object'
    for key, rec in files.items():
        if not isinstance(rec, dict):
            return f"entry {key!r} is not an object"
        if not isinstance(rec.get("settings"), str) or not isinstance(rec.get("source", ""), str):
            return f"entry {key!r} has a malformed field"
    data.setdefault("settings", settings)
    data.setdefault("files", files)
    return None


def recorded_outputs(output_dir: str | Path) -> dict[str, tuple[str | None, str | None]]:
    """For readers of a folder run (blurcam verify): each output key the folder's manifest
    records, as (state: pending/done/failed, the detector preset it was made with or None).
    {} when the folder has no manifest; ManifestError when it cannot be read."""
    manifest = Manifest(output_dir)
    settings = manifest.data["settings"]
    return {key: (rec.get("state"), settings.get(rec.get("settings"), {}).get("config", {}).get("detector"))
            for key, rec in manifest.files.items()}


def prepare_output_dir(output_dir: str | Path) -> Path:
    """Create OUTPUT_DIR if needed and check it can be written; SinkError otherwise."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SinkError(f"{output_dir}: exists and is not a folder") from None
    except OSError as exc:
        raise SinkError(f"{output_dir}: output folder cannot be created: {exc.strerror or exc}") from None
    probe = output_dir / f".blurcam-probe.{secrets.token_hex(4)}.partial"
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
    is gone (:func:`blurcam.io.sink.remove_stale_partials`: unlocked, and at least a few
    seconds old, so a file another run has just created is left alone). ``settle_s``:
    first wait until the youngest partial is old enough, for callers that know every
    writer of theirs has ended (a Ray driver after its last task)."""
    from .io.atomic import STALE_AFTER_S, remove_stale_partials

    folders = [Path(folder) for folder, _dirs, _files in os.walk(output_dir)]
    if settle_s:
        ages = [time.time() - p.stat().st_mtime for f in folders for p in f.iterdir() if PARTIAL_RE.match(p.name)]
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
    from .errors import OutputExistsError

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


# --- running one job (in a worker process: local pool or Ray) ---------------------------

class StopJob(Exception):
    """Raised from a job's frame callback to stop it; the pipeline removes its partial output."""


def run_job(job: Job, config, *, on_progress: Callable[[int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> JobResult:
    """Redact one file (video or image) as ``job`` says; never raises for a bad file.

    ``on_progress(frames_done)`` is called about 4 times a second; ``should_stop()``
    is polled after every frame and stops the job (status ``interrupted``, nothing left).
    """
    from .pipeline import redact_file, redact_image

    started, cpu0 = time.perf_counter(), time.process_time()
    result = JobResult(job.key, "failed")
    try:
        st = job.input.stat()
        result.input_size, result.input_mtime_ns = st.st_size, st.st_mtime_ns
        result.input_sha256 = sha256_file(job.input)
        job.output.parent.mkdir(parents=True, exist_ok=True)
        done, shown = 0, 0.0

        def on_frame(record) -> None:
            nonlocal done, shown
            done += 1
            result.faces += len(record.faces)
            if should_stop is not None and should_stop():
                raise StopJob()
            now = time.perf_counter()
            if on_progress is not None and now - shown > 0.25:
                shown = now
                on_progress(done)

        redact = redact_image if job.is_image else redact_file
        stats = redact(job.input, job.output, config, overwrite=job.overwrite, on_frame=on_frame)
        if on_progress is not None:
            on_progress(done)
        result.status, result.frames = "done", stats.frames
        result.frames_obscured_whole = stats.frames_obscured_whole
        result.output_size = job.output.stat().st_size
    except StopJob:
        result.status, result.error, result.exit_code = "interrupted", "interrupted", 130
    except BlurcamError as exc:  # the summary names the file; the reason need not repeat its path
        result.error, result.exit_code = str(exc).removeprefix(f"{job.input}: "), exc.exit_code
    except OSError as exc:
        result.error, result.exit_code = str(exc.strerror or exc), 3
    except Exception as exc:  # one bad file must not stop the folder; say what it was
        log.exception("unexpected error on %s", job.input)
        result.error, result.exit_code = f"unexpected error: {type(exc).__name__}: {exc}", 1
    result.seconds = time.perf_counter() - started
    result.cpu_s = time.process_time() - cpu0  # this process, all threads
    return result


# --- running a planned folder -------------------------------------------------------------

class Events:
    """What a folder run reports, in the planning process. Override what you need;
    the CLI draws a rich progress view from these."""

    def started(self, job: Job, total_frames: int | None) -> None: ...

    def progress(self, job: Job, frames_done: int) -> None: ...

    def finished(self, job: Job, result: JobResult) -> None: ...


def frame_count(path: Path) -> int | None:
    """Frame count from the container header (for progress); 1 for an image; None if unknown."""
    from .pipeline import is_image_path

    if is_image_path(path):
        return 1
    import av

    try:
        with av.open(str(path)) as c:
            return c.streams.video[0].frames or None
    except Exception:  # the job itself reports what is wrong with the file
        return None


def default_jobs(detector: str, n_files: int) -> int:
    """Worker processes for a folder run: one per core for MediaPipe-only presets, one per
    two cores for the CenterFace presets (onnxruntime runs 2+ threads), but at least two,
    because model loading, decoding and muxing of one file overlap another's detection;
    at most one per GB of memory (a 1080p ``thorough`` job peaks near 0.75 GB) and per file."""
    from .cpu import usable_cpus
    from .detect import PRESETS

    per_job = 1 if not PRESETS.get(detector, {}).get("centerface") else 2
    jobs = max(2, usable_cpus() // per_job)
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
        jobs = min(jobs, max(1, int(memory_gb)))
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows)
        pass
    return max(1, min(jobs, n_files))


def record_result(plan: FolderPlan, job: Job, result: JobResult) -> None:
    """Record a finished job in the manifest (saved at once: a crash loses nothing done)."""
    if result.status == "done":
        plan.manifest.mark_done(job, result, plan.settings_fp)
        plan.manifest.save()
    elif result.status == "failed":  # so that a reader (blurcam review) can tell failed from not yet run
        plan.manifest.mark_failed(job, plan.settings_fp)
        plan.manifest.save()


# Set in each pool worker by _worker_init.
_worker_state: dict = {}


def _worker_init(progress_q, stop_event, parent_pid: int, cpus: int, inference: tuple[str, str]) -> None:
    import signal

    from .cpu import SHARE_ENV
    from .detect.centerface import configure

    os.environ[SHARE_ENV] = str(cpus)  # before any detector or encoder picks its threads
    configure(precision=inference[0], runtime=inference[1])  # the parent's --precision, --runtime
    # Ctrl-C (and a closed terminal's SIGHUP) reach the whole process group: the parent
    # alone decides, and tells the workers through stop_event, so each removes its
    # partial output and reports back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _worker_state.update(progress_q=progress_q, stop=stop_event, parent=parent_pid, orphan=False, busy=False)
    threading.Thread(target=_watch_parent, name="watch-parent", daemon=True).start()


def _watch_parent() -> None:
    """A parent killed outright (SIGKILL, the OOM killer) cannot set the stop event: a
    running job notices the orphan flag at its next frame and removes its partial
    output; an idle worker just exits."""
    state = _worker_state
    while True:
        time.sleep(0.5)
        if os.getppid() != state["parent"]:
            state["orphan"] = True
            if not state["busy"]:
                os._exit(1)


def _pool_job(job: Job, config) -> JobResult:
    state = _worker_state
    state["busy"] = True
    try:
        return run_job(job, config, on_progress=lambda n: state["progress_q"].put((job.key, n)),
                       should_stop=lambda: state["orphan"] or state["stop"].is_set())
    finally:
        state["busy"] = False


def run_local(plan: FolderPlan, config, *, jobs: int, events: Events | None = None) -> list[JobResult]:
    """Run ``plan.todo`` in ``jobs`` worker processes; returns one result per job, in
    finishing order. A KeyboardInterrupt stops every worker (each removes its partial
    output), records what finished, and is re-raised."""
    import multiprocessing
    import queue
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from .cpu import share_per_job
    from .detect.centerface import current_choice
    from concurrent.futures.process import BrokenProcessPool

    events = events or Events()
    ctx = multiprocessing.get_context("spawn")  # no inherited threads or locks; as on macOS/Windows
    progress_q, stop = ctx.Queue(), ctx.Event()
    waiting = list(reversed(plan.todo))
    inflight: dict = {}
    results: list[JobResult] = []
    by_key = {job.key: job for job in plan.todo}

    def drain_progress() -> None:
        while True:
            try:
                key, n = progress_q.get_nowait()
            except queue.Empty:
                return
            events.progress(by_key[key], n)

    def finish(job: Job, result: JobResult) -> None:
        record_result(plan, job, result)
        results.append(result)
        events.finished(job, result)

    init_args = (progress_q, stop, os.getpid(), share_per_job(jobs), current_choice())
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=init_args)
    interrupted: KeyboardInterrupt | None = None
    try:
        while waiting or inflight:
            try:
                while waiting and len(inflight) < jobs and not interrupted:
                    job = waiting.pop()
                    events.started(job, frame_count(job.input))
                    inflight[pool.submit(_pool_job, job, config)] = job
                if not inflight:
                    break
                done, _ = wait(list(inflight), timeout=0.2, return_when=FIRST_COMPLETED)
                drain_progress()
                for future in done:
                    job = inflight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        result = JobResult(job.key, "failed", "worker process died "
                                           "(out of memory or killed); rerun to retry", 1)
                    finish(job, result)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done if not f.cancelled()):
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init,
                                               initargs=init_args)
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (blurcam.signals)
                if interrupted is not None:
                    raise
                interrupted = exc
                stop.set()  # running jobs stop at their next frame and remove their partial output
                waiting.clear()
        drain_progress()
    except BaseException:
        stop.set()  # whatever went wrong here, no worker goes on writing
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if interrupted is not None:
        raise interrupted
    return results
