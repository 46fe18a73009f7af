"""Threads with bounded queues: one stop event, an end sentinel, errors re-raised in the caller."""
from __future__ import annotations

import queue
import threading
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

    def start(self, name: str, target: Callable[[], None]) -> None:
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

    def check(self) -> None:
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


def drain(q: queue.Queue) -> list:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items
