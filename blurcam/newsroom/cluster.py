"""Folder runs on a Ray cluster: each file is one Ray task running :func:`blurcam.newsroom.batch.run_job`.

Ray does the scheduling and the retries (a task whose worker or node dies is run
again, ``max_retries`` times); blurcam adds nothing of its own. The planning process
(the Ray driver) keeps the manifest, as in a local run, and writes it after every
finished file. Every node must see INPUT and OUTPUT_DIR at the same paths (shared
storage) and have the same blurcam installed (``pip install 'blurcam[ray]'``).

Outputs are written as everywhere else: to a hidden partial name on the shared
folder, renamed into place when complete. A worker killed mid-file cannot remove its
partial file; once every task has finished, the driver removes those.
"""
from __future__ import annotations

import logging
import os
import time

from .batch import Events, FolderPlan, JobResult, record_result, remove_partials, run_job
from ..errors import ClusterError

log = logging.getLogger(__name__)

TASK_RETRIES = 3  # a file whose worker dies is run again up to this many times


def _ray_job(job, config) -> JobResult:
    import os

    import ray

    from ..cpu import SHARE_ENV

    # The task's CPUs, as Ray assigned them: its threads fit them, as a --jobs worker's do.
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    os.environ[SHARE_ENV] = str(max(1, int(cpus)))
    return run_job(job, config)


def _connect(address: str):
    """Join the cluster at ``address`` (host:port, ray://host:10001, auto) or start a local
    one (``local``: on 127.0.0.1 only, no dashboard). Returns the ray module."""
    host = address.split("://")[-1].rsplit(":", 1)[0]
    loopback = address == "local" or host in ("127.0.0.1", "localhost")
    if loopback:
        # Ray turns 127.0.0.1 into the machine's network address unless told that this
        # is a one-machine cluster; read when ray is imported, so set before.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'blurcam[ray]'") from None
    _probe(address)
    try:
        if address == "local":
            # Workers of a local cluster import this blurcam, wherever it came from.
            env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
            ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"env_vars": env} if env else None)
        elif loopback:
            ray.init(address=address, _node_ip_address="127.0.0.1", log_to_driver=False,
                     logging_level=logging.WARNING)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    return ray


def _probe(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on an address nothing listens at: ray.init waits minutes for it."""
    import socket

    target = address.split("://")[-1]
    if address in ("local", "auto") or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def run_ray(plan: FolderPlan, config, *, address: str, events: Events | None = None) -> list[JobResult]:
    """Run ``plan.todo`` as Ray tasks (one CPU each) on the cluster at ``address``.
    Same results, manifest and events as :func:`blurcam.newsroom.batch.run_local` (without per-frame
    progress); a KeyboardInterrupt cancels the tasks, cleans up and is re-raised."""
    events = events or Events()
    ray = _connect(address)
    results: list[JobResult] = []
    try:
        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(_ray_job)
        config_ref = ray.put(config)  # every setting, the detector's precision and runtime included
        pending = {}
        for job in plan.todo:
            pending[task.remote(job, config_ref)] = job
            events.started(job, None)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # retries used up, node lost, ...
                        reason = str(exc).strip().splitlines()[0][:200]
                        result = JobResult(job.key, "failed", f"Ray task failed: {reason}", 25)
                    record_result(plan, job, result)
                    results.append(result)
                    events.finished(job, result)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            _wait_cancelled(ray, list(pending))
            raise
    finally:
        # Every task has finished or been cancelled: partial files now are a killed
        # worker's, never a running one's.
        for leftover in remove_partials(plan.output_dir, settle_s=10.0):
            log.info("removed %s, left by a lost Ray worker", leftover)
        ray.shutdown()
    return results


def _wait_cancelled(ray, refs, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while refs and time.monotonic() < deadline:
        _, refs = ray.wait(refs, num_returns=len(refs), timeout=1.0)
