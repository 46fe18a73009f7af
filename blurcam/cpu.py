"""How many threads each part may use: one policy for the whole process.

onnxruntime (CenterFace) and the video encoder are the two parts that take several
cores; decoding and MediaPipe take what is left. These numbers are chosen here, not
in the modules that use them, so the split is visible in one place.
"""
from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def detector_threads() -> int:
    """onnxruntime intra-op threads: the CPUs this process may use, at most 4.

    More threads than cores only adds contention with the decoder and encoder threads.
    """
    return max(1, min(usable_cpus(), 4))


def encoder_threads_beside_detector() -> int:
    """Encoder threads for a detector-bound preset: the cores onnxruntime does not use
    (at least one). On 2 cores, one encoder thread gave +7 % fps and -60 MB at 1080p."""
    return max(1, usable_cpus() - detector_threads())
