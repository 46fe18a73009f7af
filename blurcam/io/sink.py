"""Sinks: encode redacted frames, remux audio, write atomically, strip metadata.

Only the pipeline's redaction stage hands frames to a sink, so nothing a sink
writes was ever unredacted.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av

from ..errors import SinkError, UsageError
from ..types import Frame, VideoInfo
from .atomic import check_output_path, create_partial, disk_error, move_into_place, unlock
from .audio import AudioParams, AudioTranscoder, can_copy, target_codec
from .convert import holds, planes_to_videoframe
from .media import VIDEO_FORMATS


log = logging.getLogger(__name__)

VIDEO_CODECS = ("libx264", "libx265", "libvpx-vp9", "mpeg4")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """Video encoder settings. crf: constant quality (lower is better, 0-51 for x264).
    codec: None picks it from the container (VP9 for WebM, H.264 otherwise).
    preset: x264/x265 speed preset. live: low-latency tuning (no B-frames, zerolatency).
    threads: encoder threads; None: FFmpeg's choice (about 1.5 per core), except that
        ``redact_file`` with a detector-bound preset gives it the cores left beside
        the detector."""

    codec: str | None = None
    crf: int = 18
    preset: str = "veryfast"
    pix_fmt: str = "yuv420p"
    keyframe_interval: int | None = None
    live: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.codec is not None and self.codec not in VIDEO_CODECS:
            raise ValueError(f"codec must be one of {', '.join(VIDEO_CODECS)}, got {self.codec!r}")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {self.preset!r}")
        if not 0 <= self.crf <= 63:
            raise ValueError(f"crf must be in [0, 63], got {self.crf}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


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
        codec = config.codec or default_codec(container.format.name)
        try:
            stream = container.add_stream(codec, rate=info.frame_rate or Fraction(30))
        except ValueError:  # e.g. H.264 into WebM
            raise UsageError(f"{codec} cannot be written to a {container.format.name} file; "
                             f"leave --codec out to get the container's own") from None
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, config.pix_fmt
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        options = {"crf": str(config.crf)}
        if codec in ("libx264", "libx265"):
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


class Sink(Protocol):
    """Where redacted frames go (FileSink, StreamSink, FanOut, PreviewSink).

    ``write_frame`` in presentation order, each frame already redacted (a sink may
    keep its planes: do not modify them after); ``write_audio`` with packets of the
    source's audio streams; then exactly one of ``commit`` (finish: flush, close,
    move into place) or ``abort`` (discard what is unfinished; safe to repeat).
    A sink that sends from a thread of its own (StreamSink, FanOut) also has
    ``backlog`` (frames taken and not yet sent) and ``frame_s`` (its seconds per frame),
    which a stream's frame loop reads to keep its latency bounded.
    """

    def write_frame(self, frame: Frame) -> None: ...

    def write_audio(self, packet: av.Packet) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class FileSink:
    """Writes a redacted video (plus audio) to ``path``, atomically.

    Everything goes to a hidden temporary file beside ``path`` (locked while it is
    written, so a later run can tell it from one left by a killed process);
    ``commit()`` renames it into place, ``abort()`` (or any error) removes it. Call
    ``write_frame`` in presentation order and ``write_audio`` with packets from the
    source's audio streams, then exactly one of ``commit`` / ``abort``. Audio is
    copied where the container takes its codec and re-encoded where it does not.
    """

    def __init__(self, path: str | Path, info: VideoInfo, *, audio_streams: list,
                 encoder: EncoderConfig | None = None, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        fmt = _format_for(self.path)
        check_output_path(self.path, overwrite)
        self.tmp, self._lock = create_partial(self.path)
        try:
            self.container = av.open(str(self.tmp), "w", format=fmt)
            scrub_metadata(self.container)
            self.video = VideoEncoder(self.container, encoder or EncoderConfig(), info)
            self.audio_map: dict[int, av.audio.stream.AudioStream] = {}
            self.transcoders: dict[int, AudioTranscoder] = {}
            fmt = self.container.format.name.split(",")[0]
            for src in audio_streams:
                if can_copy(src.codec_context.name, fmt):
                    out = self.container.add_stream_from_template(src)
                    out.metadata.clear()
                    self.audio_map[src.index] = out
                else:
                    log.info("re-encoding %s audio to %s for %s", src.codec_context.name, target_codec(fmt), fmt)
                    self.transcoders[src.index] = AudioTranscoder(self.container, AudioParams.of(src), target_codec(fmt),
                                                                 max_channels=8)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.abort()
            raise SinkError(f"{self.path}: cannot create output: {exc}") from None
        except BaseException:
            self.abort()
            raise
        self.frames_written = 0

    def write_frame(self, frame: Frame) -> None:
        try:
            for packet in self.video.encode(frame):
                self.container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise disk_error(exc, str(self.path)) from None
        self.frames_written += 1

    def write_audio(self, packet: av.Packet) -> None:
        """Remux one audio packet unchanged, or re-encode it where the container needs."""
        try:
            transcoder = self.transcoders.get(packet.stream.index)
            if transcoder is not None:
                self.container.mux(transcoder.encode(packet))
                return
            out = self.audio_map.get(packet.stream.index)
            if out is not None:
                packet.stream = out
                self.container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise disk_error(exc, str(self.path)) from None

    def commit(self) -> None:
        """Flush the encoders, close the file and move it to ``path``."""
        try:
            for packet in self.video.flush():
                self.container.mux(packet)
            for transcoder in self.transcoders.values():
                self.container.mux(transcoder.flush())
            self.container.close()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise disk_error(exc, str(self.path)) from None
        if self.frames_written == 0:
            self.abort()
            raise SinkError(f"{self.path}: no video frames to write")
        try:
            move_into_place(self.tmp, self.path, self.overwrite)
        except BaseException:
            self._remove_tmp()
            raise
        finally:
            unlock(self._lock)

    def abort(self) -> None:
        """Close and delete the partial output. Safe to call more than once."""
        try:
            self.container.close()
        except Exception:  # already failed (or never opened); the file is deleted either way
            pass
        self._remove_tmp()
        unlock(self._lock)

    def _remove_tmp(self) -> None:
        try:
            os.unlink(self.tmp)
        except (FileNotFoundError, AttributeError):
            pass


def default_codec(format_name: str) -> str:
    """The video codec for a container when --codec is not given."""
    return "libvpx-vp9" if format_name.split(",")[0] == "webm" else "libx264"


def _format_for(path: Path) -> str:
    fmt = VIDEO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: a video can be written as {', '.join(VIDEO_FORMATS)}, "
                         f"not {path.suffix or 'a file without an extension'}")
    return fmt
