"""Stages, the one owner of worker errors: what a worker raises reaches the caller, and
every other worker stops. (The frame loop's workers: test_policy.py.)"""
from __future__ import annotations

import queue
import socket
import threading
import time

import pytest

from blurcam.errors import SinkError, SourceError
from blurcam.io.source import open_live_source
from blurcam.stages import END, Stages, Stop


def test_a_worker_error_reaches_the_caller_and_stops_the_other_workers():
    stages, q = Stages(), queue.Queue(maxsize=1)
    stopped = threading.Event()

    def fails() -> None:
        time.sleep(0.05)
        raise SinkError("disk full")

    def waits() -> None:
        try:
            while True:
                stages.put(q, "item")  # blocks on the full queue until the stop
        except Stop:
            stopped.set()
            raise

    stages.start("fails", fails)
    stages.start("waits", waits)
    with pytest.raises(SinkError, match="disk full"):
        stages.join()
    assert stopped.is_set()
    with pytest.raises(SinkError):  # and again, for as long as the caller asks
        stages.get(q)


def test_a_worker_that_ends_leaves_nothing_to_raise():
    stages, q = Stages(), queue.Queue(maxsize=2)
    stages.start("ends", lambda: stages.put(q, END))
    stages.join()
    assert stages.get(q) is END and stages.error is None


def test_a_live_source_that_cannot_be_opened_is_a_source_error_from_its_open_thread():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceError, match="cannot open"):
        open_live_source(f"tcp://127.0.0.1:{port}", timeout_s=2.0)
    assert not [t for t in threading.enumerate() if t.name == "blurcam-open"]
