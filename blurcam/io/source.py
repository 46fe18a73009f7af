"""Media sources: demux with PyAV, decode video to 4:2:0 Frames, pass audio packets through."""
from __future__ import annotations

import errno
import itertools
import logging
import os
import queue
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import av

from ..errors import SourceError, TruncatedInputError, UnsupportedMediaError, UsageError
from ..stages import Stages
from ..types import Frame, VideoInfo
from ..urls import mask_secrets, mask_url
from .convert import color_tags, owned_yuv420p, plane_arrays

log = logging.getLogger(__name__)
_MAX_ERRORS = 1000  # --salvage gives up on an input that keeps failing
_DISCONNECTED = (errno.EIO, errno.ECONNRESET, errno.EPIPE)  # how FFmpeg reports a sender that hung up


def _looks_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(12)[4:8] == b"ftyp"
    except OSError:
        return False


def open_input(url: str | Path, *, format: str | None = None, options: dict | None = None,
               timeout_s: float | None = None) -> av.container.InputContainer:
    """Open a file, URL or device for reading; every failure becomes a SourceError."""
    name = mask_url(str(url)) if isinstance(url, (str, Path)) else "stdin"
    target = str(url) if isinstance(url, (str, Path)) else url  # or a binary file object (stdin)
    try:
        kwargs = {"timeout": timeout_s} if timeout_s else {}
        return av.open(target, "r", format=format, options=options or {}, **kwargs)
    except av.ExitError:
        raise SourceError(f"{name}: no data within {_first(timeout_s):g} s (is the source sending?)") from None
    except FileNotFoundError:
        raise SourceError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{name}: is a directory, not a media file") from None
    except PermissionError:
        raise SourceError(f"{name}: permission denied") from None
    except av.InvalidDataError:
        if _looks_like_mp4(Path(name)):
            raise TruncatedInputError(f"{name}: MP4 file is truncated or damaged (index missing)") from None
        raise SourceError(f"{name}: not a media file blurcam can read") from None
    except (av.FFmpegError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SourceError(f"{name}: cannot open: {mask_secrets(reason)}") from None


def _hole(steps: dict[int, int], frames: int) -> str | None:
    """Frames missing from the middle of a constant-rate video, from its timestamp steps
    (``steps``: pts step -> count): a hole keeps the duration and the end, and Matroska
    and MPEG-TS have no frame count to compare with. A stream whose steps are not
    regular (variable frame rate) is not judged. Returns the reason, or None."""
    total = sum(steps.values())
    if total < 10:
        return None
    ordered = sorted(steps.items())
    half, seen = total / 2, 0
    for step, count in ordered:  # the median step
        seen += count
        if seen >= half:
            median = step
            break
    if median <= 0:
        return None
    regular = sum(c for s, c in ordered if abs(s - median) <= 0.1 * median)
    if regular < 0.9 * total:
        return None
    missing = sum(c * (round(s / median) - 1) for s, c in ordered if s > 1.5 * median)
    if missing > max(2, 0.02 * (frames + missing)):
        return f"about {missing} of {frames + missing} frames missing (timestamps jump)"
    return None


def _decodes(packet: av.Packet) -> bool:
    """Whether an audio packet decodes (with its stream's decoder, otherwise unused:
    audio is remuxed). A broken one would stop the muxer."""
    try:
        packet.decode()
        return True
    except (av.FFmpegError, ValueError):
        return False


def _first(timeout_s) -> float:
    """The open timeout (a listener has none: then the read timeout, which FFmpeg's
    stream probing runs under)."""
    return (timeout_s[0] or timeout_s[1]) if isinstance(timeout_s, tuple) else timeout_s


class MediaSource:
    """Decodes the first video stream of a container and passes audio packets through.

    ``items()`` yields, in demux order, :class:`Frame` objects for video and
    ``av.Packet`` objects for the audio streams in ``audio_streams`` (to be
    remuxed, never decoded). Subtitle, data (GPS, telemetry) and attachment
    streams are discarded at the demuxer and never read. ``until_disconnect``: a
    listening source (see :func:`listen_input`), whose sender closing the connection
    is the end of the stream, not damage.
    """

    def __init__(self, url: str | Path, *, audio: bool = True, format: str | None = None,
                 options: dict | None = None, live: bool = False, salvage: bool = False,
                 timeout_s: float | tuple[float, float] | None = None,
                 mic: tuple[str, str] | None = None, until_disconnect: bool = False) -> None:
        self.url = mask_url(str(url)) if isinstance(url, (str, Path)) else "stdin"
        self.salvage = salvage
        self.until_disconnect = until_disconnect
        self._read_timeout_s = timeout_s[1] if isinstance(timeout_s, tuple) else timeout_s
        self.damaged = False  # salvage: something could not be read (see frames_expected)
        self.container = open_input(url, format=format, options=options, timeout_s=timeout_s)
        try:
            self.video = next(s for s in self.container.streams if s.type == "video"
                              and not (s.disposition & av.stream.Disposition.attached_pic))
        except StopIteration:
            self.container.close()
            raise UnsupportedMediaError(f"{self.url}: has no video stream") from None
        if self.video.codec_context is None:
            self.container.close()
            raise UnsupportedMediaError(f"{self.url}: video codec {self.video.codec.name!r} cannot be decoded")
        self.video.thread_type = "AUTO"
        self.audio_streams = [s for s in self.container.streams if s.type == "audio"] if audio else []
        self._mic = _Microphone(*mic, timeout_s=timeout_s) if audio and mic and not self.audio_streams else None
        if self._mic is not None and self._mic.stream is not None:
            self.audio_streams = [self._mic.stream]
        for s in self.container.streams:
            if s is not self.video and s not in self.audio_streams:
                s.discard = av.stream.Discard.all  # the demuxer drops its packets unread
        cc = self.video.codec_context
        self.frames_decoded = 0
        self._last_time_s: float | None = None  # of the latest decoded frame
        self._last_pts: int | None = None  # of the latest decoded frame, in the stream's time base
        self._steps: dict[int, int] = {}  # pts step between decoded frames -> how often
        self._color: tuple = ()
        self.info = VideoInfo(width=cc.width, height=cc.height, time_base=self.video.time_base,
                              frame_rate=self.video.average_rate or self.video.guessed_rate,
                              frames=self.video.frames or None, is_live=live)
        # Decode up to the first frame now: its size and display rotation define the output.
        self._rest = self._demux()
        self._head: list[Frame | av.Packet] = []
        try:
            for item in self._rest:
                self._head.append(item)
                if isinstance(item, Frame):
                    self.info = replace(self.info, width=item.width, height=item.height,
                                        rotation_deg=item.rotation_deg, color=self._color)
                    break
        except BaseException:
            self.container.close()
            raise
        if not any(isinstance(item, Frame) for item in self._head):
            self.container.close()
            raise UnsupportedMediaError(f"{self.url}: no video frame could be decoded")

    def items(self) -> Iterator[Frame | av.Packet]:
        """Yield Frames (video, decoded) and Packets (audio, for remuxing) in demux order.
        One pass only."""
        head, self._head = self._head, []
        if self._mic is None:
            yield from head
            yield from self._rest
            return
        for item in itertools.chain(head, self._rest):
            yield item
            yield from self._mic.packets()

    def _demux(self) -> Iterator[Frame | av.Packet]:
        """Demux and decode. A damaged input raises TruncatedInputError, or with
        ``salvage`` is read past: a packet that does not decode is skipped, and after
        a demuxer error reading resumes where the demuxer resynchronises (the next
        Matroska cluster, MPEG-TS packet...), up to ``_MAX_ERRORS`` times."""
        streams = [self.video, *self.audio_streams]
        index = errors = 0
        try:
            while True:
                try:
                    for packet in self.container.demux(streams):
                        if packet.is_corrupt and packet.size:  # MPEG-TS: continuity or PES size errors
                            self._damaged(index, "the demuxer found corrupt or missing packets")
                        if packet.stream is self.video:
                            for frame in self._decode(packet):
                                if self._last_pts is not None and (frame.pts is None
                                                                   or frame.pts <= self._last_pts):
                                    self._damaged(index, "timestamps jump back or are missing")
                                    continue  # salvage: a frame out of order cannot be written
                                yield self._to_frame(frame, index)
                                index += 1
                        elif packet.size and (not self.damaged or _decodes(packet)):
                            # size 0 marks a demuxer flush packet, not data; once a salvaged
                            # input is damaged, audio that no longer decodes is left out
                            yield packet
                    break
                except av.EOFError:
                    break
                except (av.InvalidDataError, av.FFmpegError) as exc:
                    if self.info.is_live and self._read_timeout_s and isinstance(exc, av.ExitError):  # read timeout
                        raise SourceError(f"{self.url}: nothing received for {self._read_timeout_s:g} s after "
                                          f"frame {index} (did the sender stop?)") from None
                    if self.until_disconnect and isinstance(exc, av.OSError) and exc.errno in _DISCONNECTED:
                        log.info("%s: the sender closed the connection after frame %d", self.url, index)
                        break
                    if not self.salvage or errors >= _MAX_ERRORS:
                        raise TruncatedInputError(f"{self.url}: input is damaged or truncated after frame "
                                                  f"{index}: {mask_secrets(exc)} (--salvage keeps what decodes)") from None
                    errors += 1
                    self.damaged = True
                    log.warning("%s: damaged after frame %d (%s); reading on", self.url, index, mask_secrets(exc))
        finally:
            self.frames_decoded = index
        if self.info.is_live:
            return
        expected = self.info.frames
        short = f"decoded {index} of {expected} frames" if expected and index < expected * 0.98 else None
        v = self.video
        duration_s = (float(v.duration * v.time_base) if v.duration and v.time_base
                      else self.container.duration / 1e6 if self.container.duration else None)
        if short is None and duration_s and self._last_time_s is not None:
            # No frame count (Matroska, MPEG-TS): the video must reach the stated duration.
            if self._last_time_s < duration_s - max(1.0, 0.05 * duration_s):
                short = f"video ends at {self._last_time_s:.1f} s of {duration_s:.1f} s"
        if short is None and not expected:
            short = _hole(self._steps, index)
        if short:
            if not self.salvage:
                raise TruncatedInputError(f"{self.url}: input is truncated or damaged: {short} "
                                          "(--salvage keeps what decodes)")
            self.damaged = True

    def _damaged(self, index: int, why: str) -> None:
        """Damage found while reading on: TruncatedInputError, or with salvage noted (and read past)."""
        if not self.salvage:
            raise TruncatedInputError(f"{self.url}: input is damaged after frame {index}: {why} "
                                      "(--salvage keeps what decodes)")
        if not self.damaged:
            log.warning("%s: damaged after frame %d (%s); reading on", self.url, index, why)
        self.damaged = True

    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            return packet.decode()
        except (av.InvalidDataError, av.FFmpegError):
            if not self.salvage:
                raise
            self.damaged = True  # one broken packet: skip it, the decoder recovers at a keyframe
            return []

    @property
    def frames_expected(self) -> int | None:
        """The frame count the container's header promised, if it said."""
        return self.info.frames

    def _to_frame(self, frame: av.VideoFrame, index: int) -> Frame:
        if frame.pts is not None:
            if self._last_pts is not None and not self.info.is_live:  # a stream is not judged
                step = frame.pts - self._last_pts
                self._steps[step] = self._steps.get(step, 0) + 1
            self._last_pts = frame.pts
        if frame.pts is not None and frame.time_base is not None:
            self._last_time_s = float(frame.pts * frame.time_base)
        rotation = int(round(frame.rotation or 0))
        if index == 0:  # the encoder tags the output as these planes are
            self._color = color_tags(frame)
        owned = owned_yuv420p(frame)
        return Frame(planes=plane_arrays(owned), index=index, pts=frame.pts,
                     time_base=frame.time_base or self.video.time_base, rotation_deg=rotation, video_frame=owned)

    def close(self) -> None:
        if self._mic is not None:
            self._mic.close()
        self.container.close()


class _Microphone:
    """A separate audio input (ALSA on Linux, where the camera has none), read in its
    own thread; ``packets()`` returns what arrived since the last call. ``stream`` is
    None when the microphone cannot be opened: the stream then goes out silent."""

    def __init__(self, url: str, format: str, *, timeout_s=None) -> None:
        self.stream = None
        self._queue: queue.Queue = queue.Queue(maxsize=512)
        try:
            self.container = open_input(url, format=format, timeout_s=timeout_s)
            self.stream = self.container.streams.audio[0]
        except (SourceError, IndexError) as exc:
            log.warning("no microphone (%s); streaming without sound", exc)
            return
        self._thread = threading.Thread(target=self._read, name="blurcam-mic", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for packet in self.container.demux(self.stream):
                if packet.size:
                    try:
                        self._queue.put_nowait(packet)
                    except queue.Full:  # nobody is reading (the video stalled): drop, never block
                        pass
        except (av.FFmpegError, OSError, ValueError) as exc:
            log.warning("microphone stopped (%s)", exc)

    def packets(self) -> list[av.Packet]:
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        if self.stream is not None:
            self.container.close()


# ---- live sources -----------------------------------------------------------------

def has_format(name: str, available=None) -> bool:
    """Whether PyAV's FFmpeg has the (de)muxer ``name``. PyAV lists aliases together
    (``video4linux2,v4l2``), so each entry is split on commas."""
    entries = av.formats_available if available is None else available
    return any(name in entry.split(",") for entry in entries)


@dataclass(frozen=True)
class CameraInput:
    """How to open a platform's camera (and microphone) with FFmpeg's device demuxers."""

    url: str
    format: str
    options: dict
    mic: tuple[str, str] | None = None  # (url, format) of a separate microphone input (Linux)


def camera_input(camera: int = 0, *, size: str | None = None, fps: int | None = None, audio: bool = True,
                 platform: str = sys.platform) -> CameraInput:
    """The device input for camera number ``camera`` on ``platform``: avfoundation on
    macOS (camera and microphone in one input), dshow on Windows, v4l2 plus the ALSA
    default microphone on Linux (stamped with wall-clock time, as ALSA is, so the two
    inputs share one clock)."""
    options = {}
    if size:
        options["video_size"] = size
    if fps:
        options["framerate"] = str(fps)
    if platform == "darwin":
        return CameraInput(f"{camera}:{'0' if audio else 'none'}", "avfoundation", options)
    if platform == "win32":
        return CameraInput(f"video={camera}", "dshow", options)
    return CameraInput(f"/dev/video{camera}", "v4l2", {**options, "timestamps": "abs"},
                       mic=("default", "alsa") if audio else None)


def open_live_source(source: str | None, *, camera: int = 0, size: str | None = None, fps: int | None = None,
                     audio: bool = True, timeout_s: float = 10.0, listen: bool = False) -> MediaSource:
    """SOURCE: a URL (rtsp, rtmp, http, udp, tcp, srt), '-' for MPEG-TS/Matroska on stdin,
    a file, or None for the platform's camera number ``camera``. With ``listen``,
    SOURCE is an address to listen on for a pushed stream (see :func:`listen_input`).

    A source that sends nothing for ``timeout_s`` (at open, or later while reading)
    is a SourceError; Ctrl-C works while it is being opened (the open runs in a
    thread: FFmpeg's open cannot be interrupted from Python). A listener waits for
    its sender without a time limit (a phone may take minutes to start); once
    connected, ``timeout_s`` applies, and the sender hanging up ends the stream."""
    if listen:
        address = listen_input(source or "")
        check_listen(address)
        return _interruptible(lambda: MediaSource(address.url, audio=audio, options=address.options, live=True,
                                                  timeout_s=(None, timeout_s), until_disconnect=True))
    if source is None:
        cam = camera_input(camera, size=size, fps=fps, audio=audio)
        if not has_format(cam.format):
            raise SourceError(f"this PyAV build cannot open cameras ({cam.format} missing); pipe one in instead: "
                              f"ffmpeg -f {cam.format} -i {cam.url} -f mpegts - | blurcam live - --to ...")
        if not Path(cam.url).exists() and cam.format == "v4l2":
            raise SourceError(f"{cam.url}: no such camera (see: ls /dev/video*)")
        mic = cam.mic if cam.mic and has_format(cam.mic[1]) else None
        return _interruptible(lambda: MediaSource(cam.url, audio=audio, format=cam.format, options=cam.options,
                                                  live=True, timeout_s=timeout_s, mic=mic))
    if source == "-":
        _wait_readable(sys.stdin.buffer, timeout_s)
        return _interruptible(lambda: MediaSource(sys.stdin.buffer, audio=audio, live=True))
    if "://" in source:
        options = {"video_size": size} if size else {}
        return _interruptible(lambda: MediaSource(source, audio=audio, options=options, live=True,
                                                  timeout_s=(timeout_s, timeout_s)))
    return MediaSource(source, audio=audio, live=True)


@dataclass(frozen=True)
class ListenInput:
    """An address to receive a pushed stream on: ``url`` and ``options`` as FFmpeg opens
    them, ``host`` and ``port`` as bound, ``shown`` the URL with its key masked."""

    url: str
    options: dict
    host: str
    port: int
    shown: str


LISTEN_FORMS = "rtmp://HOST:PORT/APP/KEY or tcp://HOST:PORT"  # shown masked: rtmp://HOST:PORT/APP/***


def listen_input(url: str) -> ListenInput:
    """Parse a listening address; a UsageError names what is wrong. rtmp:// (FFmpeg's
    RTMP server: one publisher; port 1935 by default) and tcp:// (MPEG-TS, FLV or
    Matroska over a raw connection) are what PyAV's FFmpeg can listen on: its build has
    no SRT or RIST, and udp:// needs no listening (give it as SOURCE)."""
    if "://" not in url:  # not a URL: which part is a secret cannot be told, so nothing is echoed
        raise UsageError(f"--listen takes a URL: {LISTEN_FORMS}")
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UsageError(f"--listen {shown}: the port must be a number from 1 to 65535") from None
    scheme = parts.scheme.lower()
    if scheme in ("srt", "rist"):
        raise UsageError(f"--listen {shown}: the FFmpeg inside PyAV has no {scheme.upper()}; "
                         f"listen with {LISTEN_FORMS}")
    if scheme == "udp":
        raise UsageError(f"--listen {shown}: UDP needs no listening; give it as SOURCE: blurcam live {shown} --to ...")
    if scheme not in ("rtmp", "tcp"):  # not echoed: mask_url knows where secrets hide in known schemes only
        raise UsageError(f"--listen cannot listen with {scheme}://; give {LISTEN_FORMS}")
    if not parts.hostname:
        raise UsageError(f"--listen {shown}: no address to listen on; 127.0.0.1 for this machine only, "
                         "0.0.0.0 for every network it is on")
    if scheme == "rtmp" and not parts.path.strip("/"):
        raise UsageError(f"--listen {shown}: give the app name the sender pushes to: {LISTEN_FORMS}")
    if port is None and scheme == "tcp":
        raise UsageError(f"--listen {shown}: give a port: tcp://HOST:PORT")
    if port == 0:
        raise UsageError(f"--listen {shown}: port 0 is not a port a sender can be given")
    return ListenInput(url=url, options={"listen": "1"}, host=parts.hostname, port=port or 1935, shown=shown)


def check_listen(address: ListenInput) -> None:
    """A UsageError (one line) if ``address`` cannot be listened on: its port taken, the
    host not an address of this machine, a port under 1024 without the right. Binds
    and releases a socket as FFmpeg will (SO_REUSEADDR on POSIX), so the error comes
    before anything waits; nothing connects in between."""
    where = f"--listen {address.shown}"
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError):
        raise UsageError(f"{where}: {address.host} is not an address of this machine") from None
    with socket.socket(family, kind, proto) as probe:
        if os.name == "posix":  # as FFmpeg does; on Windows it would allow taking a busy port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
            probe.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"{where}: port {address.port} is in use (another program listens on it); "
                                 "choose another port") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(f"{where}: {address.host} is not an address of this machine; 127.0.0.1 for "
                                 "this machine only, 0.0.0.0 for every network it is on") from None
            if exc.errno == errno.EACCES:
                raise UsageError(f"{where}: ports under 1024 need administrator rights; use 1935 or "
                                 "another port above 1024") from None
            raise UsageError(f"{where}: cannot listen: {exc.strerror}") from None


def _wait_readable(stream, timeout_s: float) -> None:
    """SourceError unless ``stream`` has data (or EOF) within ``timeout_s`` (POSIX)."""
    import select

    try:
        ready, _, _ = select.select([stream], [], [], timeout_s)
    except (OSError, ValueError, TypeError):  # not selectable (Windows pipes): no first-packet timeout
        return
    if not ready:
        raise SourceError(f"stdin: no data within {timeout_s:g} s (is anything piped in?)")


def _interruptible(open_source: Callable[[], MediaSource]) -> MediaSource:
    """Run ``open_source`` in a worker thread (``Stages``: its error is raised here) and
    wait for it where Ctrl-C can reach us. An abandoned open (Ctrl-C) is left to its
    own timeout; nothing has been written yet."""
    opened: list[MediaSource] = []
    stages = Stages()
    stages.start("open", lambda: opened.append(open_source()))
    stages.join()
    return opened[0]
