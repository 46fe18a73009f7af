"""SIGTERM and SIGHUP handled like Ctrl-C, so every way a run is stopped cleans up.

A closed terminal (SIGHUP), ``timeout`` or ``docker stop`` (SIGTERM) and Ctrl-C
(SIGINT) all raise :class:`Interrupted` in the main thread, once: the code that
aborts sinks and removes partial outputs on KeyboardInterrupt runs for each of them.
Later signals during that cleanup are recorded but not raised again, so the cleanup
finishes (kill -9 still ends the process at once; the next run in that folder
removes what it left, see ``blurcam.io.atomic.remove_stale_partials``).
"""
from __future__ import annotations

import os
import signal
import sys
import threading

_HANDLED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
received: int | None = None  # the first signal received, if any


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; ``exit_code`` is the shell's convention, 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def _handler(signum: int, _frame) -> None:
    global received
    if received is not None:
        return
    received = signum
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP (where the platform has them). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _HANDLED:
        signal.signal(sig, _handler)


def settle() -> None:
    """The command is over and its exit status chosen: a stop signal from now on (while
    the interpreter shuts down and joins threads) ends the process at once with 128 +
    the signal, instead of escaping as a KeyboardInterrupt that Python turns into death
    by SIGINT (exit -2, as if the run had crashed). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _HANDLED:
        signal.signal(sig, _after_the_command)


def _after_the_command(signum: int, _frame) -> None:
    leave(128 + signum)


def leave(code: int) -> None:
    """End a stopped run now with exit status ``code``, its output flushed, without the
    interpreter's teardown: native libraries (MediaPipe, onnxruntime) interrupted while
    they load can abort or crash there (seen: "terminate called without an active
    exception", exit -6; exit -11; a hang), turning a clean stop into a crash. Call it
    only once the command has removed what it must (partial outputs, workers)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


def exit_code(exc: BaseException | None = None) -> int:
    """128 + the signal that stopped the run (130 for a plain KeyboardInterrupt)."""
    signum = getattr(exc, "signum", None) or received or signal.SIGINT
    return 128 + int(signum)


def stopped_line(code: int, what: str | None = None) -> str:
    """The one line a stopped run prints for exit status ``code`` (128 + signal), e.g.
    ``blurcam: interrupted (SIGTERM); partial output removed``; ``what``: what was done about it."""
    name = "Ctrl-C" if code == 130 else {143: "SIGTERM", 129: "SIGHUP"}.get(code, f"signal {code - 128}")
    return f"blurcam: interrupted ({name})" + (f"; {what}" if what else "")
