"""Threads with bounded queues: one stop event, an end sentinel, errors re-raised in the
caller. The one worker-thread helper of the package: the frame loop's reader and
detector, the stream sink's sender and a live source's open all run under it."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable

END = object()  # end-of-stream sentinel on every queue
_POLL_S = 0.1


class Stop(Exception):
    """Raised inside a stage when another stage failed and everything must stop."""


class Stages:
    """Worker threads sharing one stop event; the first error is kept and re-raised."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.threads: list[threading.Thread] = []

    def start(self, name: str, target: Callable[[], None]) -> threading.Thread:
        """Run ``target`` in a daemon thread named ``blurcam-<name>``; an error it raises
        (other than Stop) is kept for ``check`` and stops every worker."""
        def run() -> None:
            try:
                target()
            except Stop:
                pass
            except BaseException as exc:  # re-raised in the caller by check()
                if self.error is None:
                    self.error = exc
                self.stop.set()

        thread = threading.Thread(target=run, name=f"blurcam-{name}", daemon=True)
        self.threads.append(thread)
        thread.start()
        return thread

    def put(self, q: queue.Queue, item) -> None:
        while True:
            if self.stop.is_set():
                raise Stop
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue):
        while True:
            self.check()
            if self.stop.is_set():
                raise Stop
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def poll(self, q: queue.Queue, timeout_s: float | None):
        """``get``, or with ``timeout_s`` None when nothing came within it (the caller
        then has time for other work, such as a watchdog)."""
        if timeout_s is None:
            return self.get(q)
        self.check()
        if self.stop.is_set():
            raise Stop
        try:
            return q.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def join(self) -> None:
        """Wait for every worker to return, in short waits (Ctrl-C reaches the caller
        meanwhile), then re-raise the first worker's error, if any."""
        for thread in self.threads:
            while thread.is_alive():
                thread.join(_POLL_S)
        self.check()

    def check(self) -> None:
        """Re-raise the first error a worker raised (the caller's turn to handle it)."""
        if self.error is not None:
            raise self.error

    def shutdown(self, queues: Iterable[queue.Queue]) -> None:
        """Stop all workers, drain queues so blocked puts return, join threads."""
        self.stop.set()
        for thread in self.threads:
            while thread.is_alive():
                for q in queues:
                    drain(q)
                thread.join(timeout=_POLL_S)


def put_while(q: queue.Queue, item, alive: Callable[[], bool], timeout_s: float | None = None) -> bool:
    """Put ``item``, waiting for room while ``alive()`` (a consumer thread still runs)
    and for at most ``timeout_s``; False if it could not be put."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while alive() and (deadline is None or time.monotonic() < deadline):
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def drain(q: queue.Queue) -> list:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items
