"""How many threads each part may use: one policy for the whole process.

onnxruntime (CenterFace) and the video encoder are the two parts that take several
cores; decoding and MediaPipe take what is left. These numbers are chosen here, not
in the modules that use them, so the split is visible in one place.
"""
from __future__ import annotations

import os

SHARE_ENV = "BLURCAM_CPUS"  # a process's share of the machine, set for folder-run workers


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask where the OS has one, capped by
    ``BLURCAM_CPUS`` (folder runs give each worker process its share, so two jobs on
    2 cores do not each start 2 onnxruntime and 2 encoder threads)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    share = os.environ.get(SHARE_ENV, "")
    return max(1, min(cpus, int(share))) if share.isdigit() else cpus


def share_per_job(jobs: int) -> int:
    """The CPUs each of ``jobs`` concurrent processes gets (at least one)."""
    return max(1, usable_cpus() // max(1, jobs))


def detector_threads() -> int:
    """onnxruntime intra-op threads: the CPUs this process may use, at most 4.

    More threads than cores only adds contention with the decoder and encoder threads.
    """
    return max(1, min(usable_cpus(), 4))


def encoder_threads_beside_detector() -> int:
    """Encoder threads for a detector-bound preset: the cores onnxruntime does not use
    (at least one). On 2 cores, one encoder thread gave +7 % fps and -60 MB at 1080p."""
    return max(1, usable_cpus() - detector_threads())
