"""Sinks: encode redacted frames, remux audio, write atomically, strip metadata.

Only the pipeline's redaction stage hands frames to a sink, so nothing a sink
writes was ever unredacted.
"""
from __future__ import annotations

import errno
import logging
import os
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import DiskFullError, OutputExistsError, SinkError
from ..types import Frame, VideoInfo
from .convert import holds, planes_to_videoframe

log = logging.getLogger(__name__)

_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
VIDEO_CODECS = ("libx264", "libx265", "libvpx-vp9", "mpeg4")


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """Video encoder settings. crf: constant quality (lower is better, 0-51 for x264).
    preset: x264/x265 speed preset. live: low-latency tuning (no B-frames, zerolatency).
    threads: encoder threads; None: FFmpeg's choice (about 1.5 per core), except that
        ``redact_file`` with a detector-bound preset gives it the cores left beside
        the detector."""

    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    pix_fmt: str = "yuv420p"
    keyframe_interval: int | None = None
    live: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.codec not in VIDEO_CODECS:
            raise ValueError(f"codec must be one of {', '.join(VIDEO_CODECS)}, got {self.codec!r}")
        if not 0 <= self.crf <= 63:
            raise ValueError(f"crf must be in [0, 63], got {self.crf}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


def _disk_error(exc: BaseException, where: str) -> Exception:
    code = getattr(exc, "errno", None)
    if code in _DISK_FULL:
        return DiskFullError(f"{where}: disk full (or file size limit reached) while writing")
    return SinkError(f"{where}: write failed: {exc}")


def scrub_metadata(container: av.container.OutputContainer) -> None:
    """Remove every container and stream tag, and keep the muxer from adding its own.

    Tags such as location, com.apple.quicktime.location.ISO6709, creation_time,
    make, model, serial, title, comment and encoder identify a device, a place or a
    time. Rather than a deny-list, nothing is copied at all; ``bitexact`` stops the
    muxer writing its version string as ``encoder`` and a creation time.
    """
    container.metadata.clear()
    for stream in container.streams:
        stream.metadata.clear()
    container.flags |= av.container.Flags.bitexact.value


class VideoEncoder:
    """Adds one encoded video stream to ``container`` and feeds it redacted Frames.

    Frames keep their source pts and time base, so variable frame rate and the
    input's timing survive exactly; the display rotation is copied to the stream.
    4:2:0 cannot be encoded at an odd width or height: such a frame loses its last
    column or row.
    """

    def __init__(self, container: av.container.OutputContainer, config: EncoderConfig, info: VideoInfo) -> None:
        self.config = config
        self.width, self.height = info.width, info.height
        if config.pix_fmt == "yuv420p" and (info.width % 2 or info.height % 2):
            self.width, self.height = info.width - info.width % 2, info.height - info.height % 2
            log.warning("%dx%d is odd-sized; 4:2:0 output is cropped to %dx%d",
                        info.width, info.height, self.width, self.height)
        stream = container.add_stream(config.codec, rate=info.frame_rate or Fraction(30))
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, config.pix_fmt
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        options = {"crf": str(config.crf)}
        if config.codec in ("libx264", "libx265"):
            options["preset"] = config.preset
        if config.live:
            options["tune"] = "zerolatency"
            stream.codec_context.max_b_frames = 0
        if config.keyframe_interval:
            stream.codec_context.gop_size = config.keyframe_interval
        stream.codec_context.options = options
        stream.thread_type = "AUTO"
        if config.threads:
            stream.codec_context.thread_count = config.threads
        for name, value in info.color:  # the planes pass through untouched, so do their tags
            setattr(stream.codec_context, name, value)
        if info.rotation_deg:
            stream.set_display_rotation(info.rotation_deg)
        stream.metadata.clear()
        self.stream = stream

    def encode(self, frame: Frame) -> list[av.Packet]:
        planes, vf = frame.planes, frame.video_frame
        if (frame.width, frame.height) != (self.width, self.height):
            w, h = self.width, self.height
            planes = (planes[0][:h, :w], planes[1][:h // 2, :w // 2], planes[2][:h // 2, :w // 2])
        if vf is None or self.config.pix_fmt != "yuv420p" or not holds(vf, planes):
            vf = planes_to_videoframe(planes, self.config.pix_fmt)
        vf.pts = frame.pts if frame.pts is not None else frame.index
        vf.time_base = frame.time_base
        return self.stream.encode(vf)

    def flush(self) -> list[av.Packet]:
        return self.stream.encode(None)


class FileSink:
    """Writes a redacted video (plus remuxed audio) to ``path``, atomically.

    Everything goes to a hidden temporary file beside ``path``; ``commit()``
    renames it into place, ``abort()`` (or any error) removes it. Call
    ``write_frame`` in presentation order and ``write_audio`` with packets from the
    source's audio streams, then exactly one of ``commit`` / ``abort``.
    """

    def __init__(self, path: str | Path, info: VideoInfo, *, audio_streams: list,
                 encoder: EncoderConfig | None = None, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        check_output_path(self.path, overwrite)
        self.tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.partial{self.path.suffix}")
        try:
            self.container = av.open(str(self.tmp), "w", format=_format_for(self.path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._remove_tmp()
            raise SinkError(f"{self.path}: cannot create output: {exc}") from None
        scrub_metadata(self.container)
        self.video = VideoEncoder(self.container, encoder or EncoderConfig(), info)
        self.audio_map = {}
        for src in audio_streams:
            out = self.container.add_stream_from_template(src)
            out.metadata.clear()
            self.audio_map[src.index] = out
        self.frames_written = 0

    def write_frame(self, frame: Frame) -> None:
        try:
            for packet in self.video.encode(frame):
                self.container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise _disk_error(exc, str(self.path)) from None
        self.frames_written += 1

    def write_audio(self, packet: av.Packet) -> None:
        """Remux one audio packet unchanged (no decode, no re-encode)."""
        try:
            self._mux_audio(packet)
        except (av.FFmpegError, OSError) as exc:
            raise _disk_error(exc, str(self.path)) from None

    def _mux_audio(self, packet: av.Packet) -> None:
        out = self.audio_map.get(packet.stream.index)
        if out is None:
            return
        packet.stream = out
        self.container.mux(packet)

    def commit(self) -> None:
        """Flush the encoder, close the file and move it to ``path``."""
        try:
            for packet in self.video.flush():
                self.container.mux(packet)
            self.container.close()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise _disk_error(exc, str(self.path)) from None
        if self.frames_written == 0:
            self.abort()
            raise SinkError(f"{self.path}: no video frames to write")
        try:
            self._move_into_place()
        except FileExistsError:
            self._remove_tmp()
            raise OutputExistsError(f"{self.path}: already exists (use --overwrite)") from None
        except OSError as exc:
            self._remove_tmp()
            raise SinkError(f"{self.path}: cannot move output into place: {exc}") from None

    def _move_into_place(self) -> None:
        if self.overwrite:
            os.replace(self.tmp, self.path)
            return
        try:
            # A hard link fails if ``path`` appeared meanwhile: no clobbering in a race.
            os.link(self.tmp, self.path)
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links (FAT, some network mounts)
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)

    def abort(self) -> None:
        """Close and delete the partial output. Safe to call more than once."""
        try:
            self.container.close()
        except Exception:  # already failed; the file is deleted either way
            pass
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            os.unlink(self.tmp)
        except (FileNotFoundError, AttributeError):
            pass


def write_atomically(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to a temporary file beside ``path``, then move it into place."""
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise OutputExistsError(f"{path}: already exists (use --overwrite)") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _disk_error(exc, str(path)) from None


def _format_for(path: Path) -> str | None:
    ext = path.suffix.lower()
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
            ".ts": "mpegts", ".flv": "flv", ".avi": "avi"}.get(ext)


def check_output_path(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, if ``path`` cannot be written."""
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --overwrite)")
    if path.is_dir():
        raise SinkError(f"{path}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SinkError(f"{parent}: output folder does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SinkError(f"{parent}: output folder is not writable")
