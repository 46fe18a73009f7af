"""Media sources: demux with PyAV, decode video to 4:2:0 Frames, pass audio packets through."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import av

from ..errors import SourceError, TruncatedInputError, UnsupportedMediaError
from ..types import Frame, VideoInfo
from .convert import color_tags, owned_yuv420p, plane_arrays

log = logging.getLogger(__name__)


def _looks_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(12)[4:8] == b"ftyp"
    except OSError:
        return False


def open_input(url: str | Path, *, format: str | None = None, options: dict | None = None,
               timeout_s: float | None = None) -> av.container.InputContainer:
    """Open a file, URL or device for reading; every failure becomes a SourceError."""
    name = str(url) if isinstance(url, (str, Path)) else "stdin"
    target = str(url) if isinstance(url, (str, Path)) else url  # or a binary file object (stdin)
    try:
        kwargs = {"timeout": timeout_s} if timeout_s else {}
        return av.open(target, "r", format=format, options=options or {}, **kwargs)
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
        raise SourceError(f"{name}: cannot open: {exc}") from None


class MediaSource:
    """Decodes the first video stream of a container and passes audio packets through.

    ``items()`` yields, in demux order, :class:`Frame` objects for video and
    ``av.Packet`` objects for the audio streams in ``audio_streams`` (to be
    remuxed, never decoded). Subtitle, data (GPS, telemetry) and attachment
    streams are discarded at the demuxer and never read.
    """

    def __init__(self, url: str | Path, *, audio: bool = True, format: str | None = None,
                 options: dict | None = None, live: bool = False) -> None:
        self.url = str(url) if isinstance(url, (str, Path)) else "stdin"
        self.container = open_input(url, format=format, options=options)
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
        for s in self.container.streams:
            if s is not self.video and s not in self.audio_streams:
                s.discard = av.stream.Discard.all  # the demuxer drops its packets unread
        cc = self.video.codec_context
        self.frames_decoded = 0
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
        yield from head
        yield from self._rest

    def _demux(self) -> Iterator[Frame | av.Packet]:
        streams = [self.video, *self.audio_streams]
        index = 0
        try:
            for packet in self.container.demux(streams):
                if packet.stream is self.video:
                    for frame in packet.decode():
                        yield self._to_frame(frame, index)
                        index += 1
                elif packet.size:  # size 0 marks a demuxer flush packet, not data
                    yield packet
        except av.EOFError:
            pass
        except (av.InvalidDataError, av.FFmpegError) as exc:
            raise TruncatedInputError(f"{self.url}: input is damaged or truncated after frame {index}: {exc}") from None
        finally:
            self.frames_decoded = index
        expected = self.info.frames
        if expected and index < expected * 0.98 and not self.info.is_live:
            raise TruncatedInputError(f"{self.url}: input is truncated: decoded {index} of {expected} frames")

    def _to_frame(self, frame: av.VideoFrame, index: int) -> Frame:
        rotation = int(round(frame.rotation or 0))
        if index == 0:  # the encoder tags the output as these planes are
            self._color = color_tags(frame)
        owned = owned_yuv420p(frame)
        return Frame(planes=plane_arrays(owned), index=index, pts=frame.pts,
                     time_base=frame.time_base or self.video.time_base, rotation_deg=rotation, video_frame=owned)

    def close(self) -> None:
        self.container.close()
