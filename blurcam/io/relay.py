"""Network destinations in a child process, where a hang cannot reach the rest.

FFmpeg's connect, RTMP handshake and close hold the GIL with no timeout: a server
that accepts and then stalls (or an ``rtmps://`` TLS handshake that never ends)
froze every thread of blurcam, the local recording and Ctrl-C included. So each
network connection is a child process (``python -m blurcam.io.relay``) that encodes
and muxes; the parent only writes redacted frames and audio packets into its stdin
and owns the clock: a child that does not report "ready" in time, or stops reading,
is killed, and the parent reconnects with a new one or gives up.

Only redacted frames ever enter the pipe. The URL (a credential) goes through the
pipe too, never on the command line, where ``ps`` would show it.

Wire format, parent -> child (stdin), each message a 9-byte header (kind, payload
length) then the payload:

    C  pickle: (Destination, VideoInfo, EncoderConfig, AudioParams | None)
    V  <qqqq index, pts (or -1), time base num, den> <6I plane heights, widths> + Y, U, V
       planes (4:2:0, packed rows)
    A  <qqqq pts, dts (or -2**63), time base num, den> + packet bytes
    E  (empty) flush, write the trailer, exit 0

child -> parent (stdout), one line each: ``started`` (imports done: the connect
timeout runs from here), ``ready`` (connected), ``sent INDEX``, ``error REASON``.
"""
from __future__ import annotations

import ctypes
import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from fractions import Fraction

import numpy as np

from ..errors import SinkError
from ..types import Frame, VideoInfo
from .audio import AudioParams

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<cQ")
_META = struct.Struct("<qqqq")
_SHAPES = struct.Struct("<6I")  # Y, U, V plane (height, width)
_NO_TS = -(2 ** 63)
_EXIT_WAIT_S = 2.0
_STARTUP_S = 15.0  # Python and PyAV imports, on a slow laptop


def _die_with_parent() -> None:
    """In the child, Linux: SIGKILL when the parent dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RelayConnection:
    """One connection to a network destination, run by a child process.

    Same calls as the in-process connection: ``send_frame``, ``send_audio``,
    ``finish``, ``cut`` (from any thread: kills the child, so a blocked send
    returns at once), ``close_quietly``. Constructing it waits until the child has
    connected (SinkError after ``connect_timeout_s``). ``on_muxed(frame)`` is called
    from a reader thread once the child has muxed a frame (latency statistics).
    """

    def __init__(self, dest, info: VideoInfo, encoder, audio: AudioParams | None, connect_timeout_s: float,
                 on_muxed=None) -> None:
        self.dest = dest
        self.on_muxed = on_muxed
        self._inflight: dict[int, Frame] = {}
        self._lines: queue.Queue = queue.Queue()
        kwargs = {"preexec_fn": _die_with_parent} if sys.platform.startswith("linux") else {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # Ctrl-C in the terminal reaches the parent only
        self.process = subprocess.Popen([sys.executable, "-m", "blurcam.io.relay"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kwargs)
        self._reader = threading.Thread(target=self._read_lines, name="blurcam-relay-reader", daemon=True)
        self._reader.start()
        try:
            self._write(b"C", pickle.dumps((dest, info, encoder, audio)))
            self._expect("started", _STARTUP_S, "the relay process did not start")
            self._expect("ready", connect_timeout_s, f"no answer within {connect_timeout_s:g} s")
        except (OSError, SinkError) as exc:
            self.close_quietly()
            if isinstance(exc, SinkError):
                raise
            raise SinkError(f"{dest.shown}: cannot connect: the relay process ended") from None

    def _expect(self, word: str, timeout_s: float, late: str) -> None:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise SinkError(f"{self.dest.shown}: cannot connect: {late}") from None
        if line != word:
            reason = line[6:] if line and line.startswith("error ") else "the relay process ended"
            raise SinkError(f"{self.dest.shown}: cannot connect: {reason}")

    def _read_lines(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("sent "):
                frame = self._inflight.pop(int(line[5:]), None)
                if frame is not None and self.on_muxed is not None:
                    self.on_muxed(frame)
            else:
                self._lines.put(line)
        self._lines.put(None)

    def _write(self, kind: bytes, *payload) -> None:
        size = sum(memoryview(p).nbytes for p in payload)
        stdin = self.process.stdin
        stdin.write(_HEADER.pack(kind, size))
        for part in payload:
            stdin.write(part)
        stdin.flush()

    def send_frame(self, frame: Frame) -> None:
        tb = frame.time_base or Fraction(1, 1000)
        meta = _META.pack(frame.index, frame.pts if frame.pts is not None else -1, tb.numerator, tb.denominator)
        self._inflight[frame.index] = frame
        if len(self._inflight) > 256:  # acks lost (the child died): keep memory bounded
            self._inflight.pop(next(iter(self._inflight)))
        y, u, v = (np.ascontiguousarray(p) for p in frame.planes)
        shapes = _SHAPES.pack(*y.shape, *u.shape, *v.shape)
        self._write(b"V", meta, shapes, y.data, u.data, v.data)

    def send_audio(self, packet) -> None:
        tb = packet.time_base
        if packet.pts is None or tb is None:
            return
        dts = packet.dts if packet.dts is not None else _NO_TS
        self._write(b"A", _META.pack(packet.pts, dts, tb.numerator, tb.denominator), bytes(packet))

    def finish(self) -> None:
        """Ask the child to flush and close; wait a little, then kill it."""
        try:
            self._write(b"E")
            self.process.stdin.close()
        except OSError:
            pass
        try:
            code = self.process.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.cut()
            raise OSError("the relay did not finish in time") from None
        if code != 0:
            raise OSError(f"the relay ended with status {code}")

    def cut(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def close_quietly(self) -> None:
        self.cut()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            pass


# ---- child side -------------------------------------------------------------------

def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _child() -> int:
    """The relay process: connect, then mux what the parent sends until E or EOF."""
    import av
    import av.logging

    from .stream import Connection  # the same encode + mux code the parent uses for local outputs
    from ..urls import mask_secrets

    for sig in ("SIGINT", "SIGHUP", "SIGPIPE"):  # the parent decides when this process ends
        if hasattr(signal, sig):
            signal.signal(getattr(signal, sig), signal.SIG_IGN)
    av.logging.set_libav_level(av.logging.PANIC)  # FFmpeg would print the URL
    stdin, stdout = sys.stdin.buffer, sys.stdout

    def say(line: str) -> None:
        stdout.write(line + "\n")
        stdout.flush()

    try:
        kind, size = _HEADER.unpack(_read_exact(stdin, _HEADER.size))
        dest, info, encoder, audio = pickle.loads(_read_exact(stdin, size))
        say("started")
        conn = Connection(dest, info, encoder, audio)
    except SinkError as exc:
        say(f"error {mask_secrets(str(exc)).partition(': ')[2] or exc}")
        return 3
    except EOFError:
        return 2
    say("ready")
    try:
        while True:
            kind, size = _HEADER.unpack(_read_exact(stdin, _HEADER.size))
            payload = _read_exact(stdin, size)
            if kind == b"E":
                conn.finish()
                return 0
            a, b, num, den = _META.unpack_from(payload)
            if kind == b"V":
                shapes = _SHAPES.unpack_from(payload, _META.size)
                planes, offset = [], _META.size + _SHAPES.size
                for rows, cols in zip(shapes[0::2], shapes[1::2]):
                    planes.append(np.frombuffer(payload, np.uint8, rows * cols, offset).reshape(rows, cols))
                    offset += rows * cols
                frame = Frame(planes=tuple(planes), index=a, pts=None if b == -1 else b, time_base=Fraction(num, den))
                conn.send_frame(frame)
                say(f"sent {a}")
            elif kind == b"A":
                packet = av.Packet(payload[_META.size:])
                packet.pts, packet.dts, packet.time_base = a, (None if b == _NO_TS else b), Fraction(num, den)
                conn.send_audio(packet)
    except EOFError:  # the parent went away: close what we have
        conn.close_quietly()
        return 0
    except (av.FFmpegError, OSError) as exc:
        say(f"error {mask_secrets(getattr(exc, 'strerror', None) or type(exc).__name__)}")
        conn.close_quietly()
        return 4


if __name__ == "__main__":
    sys.exit(_child())
