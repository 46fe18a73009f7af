"""blurcam.quiet: MediaPipe's native log lines stay off the terminal, Python's own do not.

Each case runs in a child process, because it rewires that process's file descriptor 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent


def stderr_of(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_a_native_write_inside_native_quiet_is_muted_and_python_lines_from_other_threads_are_not():
    err = stderr_of("""
import os, sys, threading
from blurcam.quiet import native_quiet, separate_python_stderr
separate_python_stderr()
inside, done = threading.Event(), threading.Event()
def other_thread():
    inside.wait()
    print("python line while muted", file=sys.stderr)
    done.set()
t = threading.Thread(target=other_thread); t.start()
with native_quiet():
    os.write(2, b"W0000 native chatter\\n")
    inside.set(); done.wait()
t.join()
os.write(2, b"native line after\\n")
print("python line after", file=sys.stderr)
""")
    assert "native chatter" not in err
    assert err.splitlines() == ["python line while muted", "native line after", "python line after"]


def test_without_separation_native_quiet_leaves_a_host_programs_stderr_alone():
    err = stderr_of("""
import os
from blurcam.quiet import native_quiet
with native_quiet():
    os.write(2, b"host line\\n")
with native_quiet(always=True):
    os.write(2, b"muted on purpose\\n")
os.write(2, b"restored\\n")
""")
    assert err.splitlines() == ["host line", "restored"]


def test_overlapping_threads_share_one_mute_and_fd_2_comes_back():
    """Thread A enters, B enters, A leaves, B leaves: still muted until B leaves, then fd 2
    is the terminal again (not /dev/null, as with one save-and-restore per thread)."""
    err = stderr_of("""
import os, threading
from blurcam.quiet import native_quiet, separate_python_stderr
separate_python_stderr()
a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
def a():
    with native_quiet():
        a_in.set(); b_in.wait()
    a_out.set()
def b():
    a_in.wait()
    with native_quiet():
        b_in.set(); a_out.wait()
        os.write(2, b"muted by B\\n")
ta, tb = threading.Thread(target=a), threading.Thread(target=b)
ta.start(); tb.start(); ta.join(); tb.join()
os.write(2, b"back\\n")
""")
    assert err.splitlines() == ["back"]
