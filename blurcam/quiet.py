"""Native libraries' chatter on stderr, kept off the user's terminal.

MediaPipe's C++ (absl logging, LiteRT) writes lines such as "WARNING: Logging before
InitGoogle()" and "Input tensor memory is not aligned ..." straight to file descriptor 2,
on a rare frame (1 of 28 ``blur`` processes in one count), and no environment setting
reaches that log. So a blurcam process gives Python's own ``sys.stderr`` a duplicate of
fd 2 (:func:`separate_python_stderr`), after which :func:`native_quiet` points fd 2 at
/dev/null while a native call runs without losing anything Python writes meanwhile from
another thread (progress, warnings, errors). In a process that has not separated (blurcam
used as a library), ``native_quiet()`` changes nothing: a host program's stderr is not
blurcam's to mute; ``native_quiet(always=True)`` mutes it anyway, for the moments that
are blurcam's alone (loading a model).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading

_lock = threading.Lock()
_separated = False
_users = 0  # threads inside native_quiet: the first redirects fd 2, the last restores it
_saved_fd: int | None = None


def separate_python_stderr() -> None:
    """From now on ``sys.stderr`` writes to its own duplicate of fd 2 (the same terminal or
    file), so muting fd 2 mutes native libraries only. For a blurcam process's entry points
    (the CLI, worker processes); idempotent; does nothing where fd 2 cannot be duplicated."""
    global _separated
    with _lock:
        if _separated:
            return
        old = sys.stderr
        try:
            old.flush()
            fd = os.dup(2)
        except (AttributeError, OSError, ValueError):
            return
        sys.stderr = open(fd, "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                          errors=getattr(old, "errors", None) or "backslashreplace")
        _separated = True


@contextlib.contextmanager
def native_quiet(always: bool = False):
    """fd 2 goes to /dev/null for the duration, when this process separated its Python
    stderr (or ``always``). Threads may overlap: one redirect is shared, and fd 2 is
    restored when the last of them leaves."""
    global _users, _saved_fd
    with _lock:
        mute = always or _separated
        if mute:
            if _users == 0:
                try:
                    saved = os.dup(2)
                    null = os.open(os.devnull, os.O_WRONLY)
                except OSError:
                    mute = False
                else:
                    os.dup2(null, 2)
                    os.close(null)
                    _saved_fd = saved
            if mute:
                _users += 1
    try:
        yield
    finally:
        if mute:
            with _lock:
                _users -= 1
                if _users == 0 and _saved_fd is not None:
                    os.dup2(_saved_fd, 2)
                    os.close(_saved_fd)
                    _saved_fd = None
