"""Running a planned folder run on this machine: each job in a spawned worker process,
progress and results back to the planning process, Ctrl-C and a dead parent handled."""
from __future__ import annotations

import os
import threading
import time

from ...io.media import frame_count
from .job import JobResult, run_job
from .plan import FolderPlan, record_result
from .scan import Job


class Events:
    """What a folder run reports, in the planning process. Override what you need;
    the CLI draws a rich progress view from these."""

    def started(self, job: Job, total_frames: int | None) -> None: ...

    def progress(self, job: Job, frames_done: int) -> None: ...

    def finished(self, job: Job, result: JobResult) -> None: ...


def default_jobs(detector, n_files: int) -> int:
    """Worker processes for a folder run: one per core for MediaPipe-only presets, one per
    two cores for the CenterFace presets (onnxruntime runs 2+ threads), but at least two,
    because model loading, decoding and muxing of one file overlap another's detection;
    at most one per GB of memory (a 1080p ``thorough`` job peaks near 0.75 GB) and per file.
    ``detector``: the run's DetectorConfig."""
    from ...cpu import usable_cpus

    per_job = 2 if detector.preset is not None and detector.preset.centerface else 1
    jobs = max(2, usable_cpus() // per_job)
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
        jobs = min(jobs, max(1, int(memory_gb)))
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows)
        pass
    return max(1, min(jobs, n_files))


# Set in each pool worker by _worker_init.
_worker_state: dict = {}


def _worker_init(progress_q, stop_event, parent_pid: int, cpus: int) -> None:
    import signal

    from ...cpu import SHARE_ENV
    from ...quiet import separate_python_stderr

    os.environ[SHARE_ENV] = str(cpus)  # before any detector or encoder picks its threads
    separate_python_stderr()  # MediaPipe's native log lines stay off the terminal (blurcam.quiet)
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

    from ...cpu import share_per_job
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

    init_args = (progress_q, stop, os.getpid(), share_per_job(jobs))
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
