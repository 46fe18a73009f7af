"""The live sink: redacted video to an RTMP server, UDP/TCP, stdout or a local recording,
reconnecting. (Parsing destinations: io/destination.py; the relay process that runs a
network connection: io/relay.py; audio re-encoding: io/audio.py; fan-out: io/fanout.py.)

    sink = StreamSink("rtmp://example.org/live/KEY", source.info, audio_streams=source.audio_streams)
    for item in redacted_items:             # Frames and audio Packets, in demux order
        ...write_frame / write_audio...
    sink.commit()                           # or sink.abort() on error

Destinations and containers:

    rtmp://, rtmps://   FLV (H.264 + AAC), reconnects when the server goes away
    tcp://              MPEG-TS, reconnects
    udp://              MPEG-TS (a connectionless send rarely fails, so rarely reconnects)
    -                   MPEG-TS on stdout; a closed pipe is fatal
    *.ts, *.mkv, *.flv  a local recording of the same redacted frames, written as it goes
                        (not atomically: a recording cut short by a crash stays playable)

Threads: ``write_frame`` only hands the frame to a bounded queue; one sender thread
encodes, muxes and (re)connects. So a stalled or vanished network never blocks the
caller for long: at most ``max_block_s`` once per stall, then frames are dropped.
(A local recording is the exception: it waits for the disk and drops nothing.)

Disconnects: while a network destination is gone, frames are discarded and counted
(never buffered to disk), and the sender reconnects with exponential backoff
(``backoff_initial_s`` doubling up to ``backoff_max_s``). Each connection is a fresh
container: new header, a new encoder (so a keyframe comes first), and timestamps
rebased so the connection starts at 0 ms and stays strictly increasing. After
``reconnect_for_s`` without a connection the sink gives up, and the next call raises
SinkError.

Audio: the first source audio stream is sent as AAC (FLV and most RTMP servers take
nothing else): AAC packets are copied (ADTS AAC from an MPEG-TS source is untested);
any other codec is decoded (each connection has its own decoder) and re-encoded to AAC.
Audio and video share one time origin, so they stay in sync across reconnects.

Isolation: FFmpeg's connect, RTMP handshake and close hold the GIL with no timeout,
so a server that accepts and then stalls would freeze every thread. Each network
connection therefore runs in a child process (``blurcam.io.relay``) fed with redacted
frames; the sender thread here only writes into its pipe. A child that does not
connect in time, or stops taking frames for ``stall_timeout_s``, is killed, and the
destination reconnects or gives up while the others go on. stdout and recordings,
which cannot hang on a network, are written in-process.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from collections.abc import Callable

import av

from ..errors import SinkError
from ..stages import END, Stages, drain, put_while
from ..types import Frame, VideoInfo
from .audio import AudioParams
from .connection import Connection, error_reason
from .destination import Destination
from .fanout import copy_packet
from .relay import RelayConnection
from .atomic import check_output_path, disk_error
from .sink import EncoderConfig

log = logging.getLogger(__name__)

_POLL_S = 0.1
_JOIN_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class StreamConfig:
    """Live-output settings (times in seconds).

    keyframe_interval_s: GOP length; a new viewer waits at most this long for a picture.
    reconnect_for_s: give up (SinkError) after this long without a connection.
    backoff_initial_s / backoff_max_s: wait before the first reconnect attempt, doubled
        after each failure up to the maximum.
    connect_timeout_s: how long one connection attempt (TCP, TLS, RTMP handshake) may take.
    stall_timeout_s: a send blocked this long (network silently gone: no reset, no
        error, as when a phone loses signal) counts as a disconnect.
    queue_frames: frames waiting for the sender thread (bounded memory).
    max_block_s: how long ``write_frame`` waits on a full queue before dropping;
        after one such drop it does not wait again until the sender catches up.
    finish_timeout_s: how long ``commit`` waits for a network destination to take the
        end of the stream before cutting it (Ctrl-C must end a run within seconds).
    """

    keyframe_interval_s: float = 2.0
    reconnect_for_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    connect_timeout_s: float = 5.0
    stall_timeout_s: float = 10.0
    queue_frames: int = 8
    max_block_s: float = 0.5
    finish_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        for name in ("keyframe_interval_s", "backoff_initial_s", "backoff_max_s", "connect_timeout_s",
                     "stall_timeout_s", "finish_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("reconnect_for_s", "max_block_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s}) must be >= "
                             f"backoff_initial_s ({self.backoff_initial_s})")
        if self.queue_frames < 1:
            raise ValueError(f"queue_frames must be >= 1, got {self.queue_frames}")


class StreamSink:
    """Writes redacted frames (plus audio) to a live destination; see the module docstring.

    Same calls as FileSink: ``write_frame`` in presentation order, ``write_audio``
    with packets from ``audio_streams``, then exactly one of ``commit`` / ``abort``,
    all from one thread. The sink takes ownership of ``frame.planes``: do not modify
    them after ``write_frame``. The first connection is made in the constructor
    (SinkError if it fails, unless ``required`` is False: a network destination
    beside others then keeps retrying in the background while they go on); later
    failures of a network destination are retried, others (stdout closed, disk full)
    raise SinkError from the next call.

    Counters (read any time): frames_sent, frames_dropped (queue full or
    disconnected), reconnects (successful ones); ``backlog``: frames handed to it and
    not yet sent (or dropped); ``frame_s``: seconds the sender takes per frame
    (encode, mux, write; an exponential average). The frame loop reads the last two
    to keep a stream's latency bounded when the sink is what is behind.
    """

    def __init__(self, destination: str | Path, info: VideoInfo, *, audio_streams: list = (),
                 encoder: EncoderConfig | None = None, config: StreamConfig | None = None,
                 format: str | None = None, overwrite: bool = False,
                 on_sent: Callable[[Frame], None] | None = None, required: bool = True) -> None:
        self.dest = Destination.parse(destination, format)
        self.on_sent = on_sent  # called in the sender thread once a frame is muxed (latency stats)
        if not self.dest.network and self.dest.target != "-":
            check_output_path(Path(self.dest.target), overwrite)
        self.info = info
        self.config = config or StreamConfig()
        fps = float(info.frame_rate or 30)
        encoder = encoder or EncoderConfig(crf=23)
        self.encoder = replace(encoder, live=True, keyframe_interval=encoder.keyframe_interval
                               or max(1, round(fps * self.config.keyframe_interval_s)))
        self.audio_stream = audio_streams[0] if audio_streams else None
        self.frames_sent = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self._frame_s = 0.0
        self._backlog = 0
        self._lock = threading.Lock()  # guards frames_dropped and _backlog, written from both threads
        self._queue: queue.Queue = queue.Queue(maxsize=self.config.queue_frames)
        self._connected = threading.Event()  # state, read by the caller: frames are dropped while clear
        self._flowing = threading.Event()  # state: clear after a drop, until the sender catches up
        self._wake = threading.Event()  # commit or abort: cut a backoff wait short
        # The sender thread runs under Stages: its error is kept there and raised from the
        # caller's next call (``_check``); abort sets its stop event.
        self._stages = Stages()
        self._send_started: float | None = None  # monotonic time of the send in progress
        self._closed = False  # commit or abort was called: a disconnected sender quits
        try:
            self._conn: Connection | RelayConnection | None = self._connect()
        except SinkError as exc:
            if required or not self.dest.network:
                raise
            log.warning("%s; retrying in the background, the other destinations go on", exc)
            self._conn = None
        if self._conn is not None:
            self._connected.set()
        self._flowing.set()
        self._thread = self._stages.start("stream-sender", self._send_loop)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def backlog(self) -> int:
        return self._backlog

    @property
    def frame_s(self) -> float:
        """Seconds per frame: the average, or the send in progress if it is taking longer
        (a stalled write shows at once, not when it ends)."""
        started = self._send_started
        return max(self._frame_s, time.monotonic() - started if started is not None else 0.0)

    def _frame_done(self, n: int = 1) -> None:
        with self._lock:
            self._backlog -= n

    def write_frame(self, frame: Frame) -> None:
        """Queue one frame; returns within ``max_block_s``. Drops it while disconnected."""
        self._check()
        self._cut_if_stalled()
        if not (self._connected.is_set() and self._enqueue(frame)):
            self._count_dropped(1)

    def write_audio(self, packet: av.Packet) -> None:
        """Queue a copy of one audio packet (none while disconnected or when the queue is full)."""
        self._check()
        if self._connected.is_set() and packet.stream is self.audio_stream and packet.size:
            self._enqueue(copy_packet(packet))

    def _enqueue(self, item: Frame | av.Packet) -> bool:
        frame = isinstance(item, Frame)
        if frame:
            with self._lock:
                self._backlog += 1
        if not self.dest.network and self.dest.target != "-":
            # A recording keeps everything: back-pressure, no drops.
            if not put_while(self._queue, item, self._thread.is_alive):
                self._frame_done(frame)
                self._check()
            return True
        try:
            if self._flowing.is_set():
                self._queue.put(item, timeout=self.config.max_block_s)
            else:
                self._queue.put_nowait(item)
            return True
        except queue.Full:
            self._frame_done(frame)
            self._flowing.clear()
            return False

    def commit(self) -> None:
        """Send what is queued, flush the encoder, close the connection. Raises SinkError
        if the sender failed (or gave up reconnecting)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        # A recording waits for the disk; a network destination gets a few seconds.
        wait_s = self.config.finish_timeout_s if self.dest.network else _JOIN_TIMEOUT_S
        deadline = time.monotonic() + wait_s
        put_while(self._queue, END, self._thread.is_alive, wait_s)
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._stages.stop.set()
            self._cut()
            self._thread.join(timeout=_POLL_S * 10)
            raise SinkError(f"{self.dest.shown}: timed out sending the end of the stream")
        self._check()

    def abort(self) -> None:
        """Stop at once, discarding queued frames. Safe to call more than once."""
        self._closed = True
        self._stages.stop.set()
        self._wake.set()
        self._drain()
        self._thread.join(timeout=self.config.finish_timeout_s if self.dest.network else _JOIN_TIMEOUT_S)
        if self._thread.is_alive():  # stuck in a blocking send
            self._cut()
            self._thread.join(timeout=_POLL_S * 10)
        if self._thread.is_alive():
            log.warning("%s: sender thread did not stop", self.dest.shown)

    def _cut_if_stalled(self) -> None:
        started = self._send_started
        if started is not None and time.monotonic() - started > self.config.stall_timeout_s:
            log.warning("%s: no progress for %.0f s, dropping the connection", self.dest.shown,
                        time.monotonic() - started)
            self._cut()

    def _cut(self) -> None:
        conn = self._conn  # may be replaced meanwhile: cutting a closed connection is harmless
        if conn is not None:
            conn.cut()

    def _check(self) -> None:
        """Raise the sender's error (a SinkError), if it failed."""
        self._stages.check()

    def _count_dropped(self, n: int) -> None:
        with self._lock:
            self.frames_dropped += n

    def _drain(self) -> None:
        frames = sum(isinstance(item, Frame) for item in drain(self._queue))
        self._count_dropped(frames)
        self._frame_done(frames)

    def _connect(self) -> Connection | RelayConnection:
        if self.dest.network:
            audio = AudioParams.of(self.audio_stream) if self.audio_stream is not None else None
            return RelayConnection(self.dest, self.info, self.encoder, audio, self.config.connect_timeout_s,
                                   on_muxed=self._muxed)
        return Connection(self.dest, self.info, self.encoder, self.audio_stream)

    def _muxed(self, frame: Frame) -> None:
        """A relay process has muxed ``frame`` (called from its reader thread)."""
        if self.on_sent is not None:
            self.on_sent(frame)

    # ---- sender thread ---------------------------------------------------------------

    def _send_loop(self) -> None:
        """The sender thread (under ``self._stages``: a SinkError it raises is the caller's)."""
        try:
            while not self._stages.stop.is_set():
                if self._conn is None:
                    if self._closed:
                        return  # committed while disconnected: nothing left to flush
                    self._reconnect()
                    continue
                try:
                    item = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if item is END:
                    self._finish()
                    return
                self._send(item)
        except SinkError:
            raise
        except Exception as exc:  # a bug, not a network failure: report it, never hang the caller
            log.exception("%s: sender failed", self.dest.shown)
            raise SinkError(f"{self.dest.shown}: sender failed: {exc}") from exc
        finally:
            self._connected.clear()
            if self._conn is not None:
                self._conn.close_quietly()
                self._conn = None

    def _send(self, item: Frame | av.Packet) -> None:
        self._send_started = started = time.monotonic()
        try:
            if isinstance(item, Frame):
                self._conn.send_frame(item)
                self.frames_sent += 1
                self._flowing.set()
                if self.on_sent is not None and not self.dest.network:  # a relay reports once muxed
                    self.on_sent(item)
            else:
                self._conn.send_audio(item)
        except (av.FFmpegError, OSError) as exc:
            if self.dest.target == "-":
                raise SinkError(f"stdout: write failed: {error_reason(exc)}") from None
            if not self.dest.network:
                raise disk_error(exc, self.dest.shown) from None
            log.warning("%s: connection lost (%s); frames are dropped until it is back",
                        self.dest.shown, error_reason(exc))
            self._disconnect()
            self._count_dropped(isinstance(item, Frame))
        finally:
            self._send_started = None
            if isinstance(item, Frame):
                took = time.monotonic() - started
                self._frame_s = took if not self._frame_s else self._frame_s + 0.2 * (took - self._frame_s)
                self._frame_done()

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        try:
            conn.finish()
        except (av.FFmpegError, OSError) as exc:
            conn.close_quietly()
            if not self.dest.network:
                raise SinkError(f"{self.dest.shown}: cannot finish the stream: {error_reason(exc)}") from None
            log.warning("%s: connection lost at the end of the stream (%s)", self.dest.shown, error_reason(exc))

    def _disconnect(self) -> None:
        self._connected.clear()
        self._conn.close_quietly()
        self._conn = None
        self._drain()

    def _reconnect(self) -> None:
        """Attempts with exponential backoff until connected, stopped or out of time."""
        lost_at = time.monotonic()
        delay = self.config.backoff_initial_s
        while not self._wake.wait(delay):
            try:
                self._conn = self._connect()
            except SinkError as exc:
                waited = time.monotonic() - lost_at
                if waited + delay > self.config.reconnect_for_s:
                    raise SinkError(f"{self.dest.shown}: gave up reconnecting after {waited:.0f} s: {exc}") from None
                log.info("%s: reconnect failed, next attempt in %.1f s", self.dest.shown, delay)
                delay = min(delay * 2, self.config.backoff_max_s)
                continue
            self._drain()  # anything queued while reconnecting is stale
            self.reconnects += 1
            self._flowing.set()
            self._connected.set()
            log.warning("%s: reconnected after %.1f s", self.dest.shown, time.monotonic() - lost_at)
            return
