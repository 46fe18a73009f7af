"""Running one job of a folder run, in whatever process runs it (a pool worker or a
Ray task)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import BlurcamError
from ...models import sha256_file
from .scan import Job

log = logging.getLogger(__name__)


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


class StopJob(Exception):
    """Raised from a job's frame callback to stop it; the pipeline removes its partial output."""


def run_job(job: Job, config, *, on_progress: Callable[[int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> JobResult:
    """Redact one file (video or image) as ``job`` says; never raises for a bad file.

    ``on_progress(frames_done)`` is called about 4 times a second; ``should_stop()``
    is polled after every frame and stops the job (status ``interrupted``, nothing left).
    """
    from ...pipeline import redact_file, redact_image

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
