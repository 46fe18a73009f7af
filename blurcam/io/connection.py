"""One live output container on one connection, in this process: encoders, time origin, mux.

Used for stdout and local recordings, and inside the relay process (io/relay.py) for
network destinations.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import replace
from fractions import Fraction

import av

from ..errors import SinkError
from ..types import Frame, VideoInfo
from ..urls import mask_secrets
from .audio import AudioParams, AudioTranscoder
from .destination import Destination
from .sink import EncoderConfig, VideoEncoder, scrub_metadata

log = logging.getLogger(__name__)

_MS = Fraction(1, 1000)


def error_reason(exc: BaseException) -> str:
    """The error without its filename (PyAV puts the full URL, stream key and all, there)."""
    return mask_secrets(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)


class _StdoutWriter:
    """stdout for the muxer: unbuffered and not seekable, so each write leaves at once."""

    def __init__(self) -> None:
        self.file = sys.stdout.buffer

    def write(self, data: bytes) -> int:
        self.file.write(data)
        self.file.flush()
        return len(data)


class Connection:
    """One container on one connection, in this process: its own encoders and time origin.

    Used for stdout and recordings, and inside the relay process for network
    destinations. ``audio``: the source's stream (AAC is copied, anything else
    re-encoded to AAC) or its AudioParams (always re-encoded: the relay process has
    no stream to copy from).

    Timestamps: the first frame sent is 0 ms; audio is rebased by the same origin,
    and audio from before it is dropped (it would precede the first keyframe).
    """

    def __init__(self, dest: Destination, info: VideoInfo, encoder: EncoderConfig,
                 audio: av.audio.stream.AudioStream | AudioParams | None) -> None:
        self.dest = dest
        self.frame_rate = info.frame_rate or Fraction(30)
        container_options = {}
        if dest.format == "flv":
            container_options["flvflags"] = "no_duration_filesize"  # nothing to seek back to
        # Every packet leaves at once: to a viewer, and to a recording, which then holds all
        # that was sent if the machine dies (FFmpeg would otherwise write 256 kB at a time).
        container_options["flush_packets"] = "1"
        try:
            target = _StdoutWriter() if dest.target == "-" else dest.target
            self.container = av.open(target, "w", format=dest.format, container_options=container_options)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(f"{dest.shown}: cannot open: {error_reason(exc)}") from None
        try:
            scrub_metadata(self.container)
            self.video = VideoEncoder(self.container, encoder, replace(info, time_base=_MS))
            self.transcoder: AudioTranscoder | None = None
            self.audio_out = self._add_audio(audio) if audio is not None else None
            self.container.start_encoding()  # connects and writes the header now, not at the first frame
        except (av.FFmpegError, OSError) as exc:
            self.close_quietly()
            raise SinkError(f"{dest.shown}: cannot connect: {error_reason(exc)}") from None
        self.origin_s: Fraction | None = None
        self.last_ms = -1
        self.last_audio_dts: int | None = None

    def _add_audio(self, src) -> av.audio.stream.AudioStream:
        if isinstance(src, av.audio.stream.AudioStream) and src.codec_context.name == "aac":
            out = self.container.add_stream_from_template(src)
            out.metadata.clear()
            return out
        params = src if isinstance(src, AudioParams) else AudioParams.of(src)
        # AAC-LC in FLV: at most stereo.
        self.transcoder = AudioTranscoder(self.container, params, "aac", max_channels=2)
        log.info("%s: re-encoding %s audio to AAC", self.dest.shown, params.codec)
        return self.transcoder.stream

    def send_frame(self, frame: Frame) -> None:
        t = frame.time_s(float(self.frame_rate))
        if self.origin_s is None:
            self.origin_s = t
        ms = max(round((t - self.origin_s) * 1000), self.last_ms + 1)
        self.last_ms = ms
        for packet in self.video.encode(replace(frame, pts=ms, time_base=_MS)):
            self.container.mux(packet)

    def send_audio(self, packet: av.Packet) -> None:
        """Send ``packet`` (a private copy: its timestamps and stream are changed)."""
        if self.audio_out is None or packet.pts is None or self.origin_s is None:
            return
        if packet.pts * packet.time_base < self.origin_s:
            return
        if self.transcoder is not None:
            self.container.mux(self.transcoder.encode(packet, self.origin_s))
            return
        offset = round(self.origin_s / packet.time_base)
        dts = (packet.dts if packet.dts is not None else packet.pts) - offset
        if self.last_audio_dts is not None and dts <= self.last_audio_dts:
            return  # the muxer rejects non-increasing timestamps
        self.last_audio_dts = dts
        packet.pts, packet.dts = packet.pts - offset, dts
        packet.stream = self.audio_out
        self.container.mux(packet)

    def finish(self) -> None:
        """Flush the encoders and write the trailer."""
        self.container.mux(self.video.flush())
        if self.transcoder is not None:
            self.container.mux(self.transcoder.flush())
        self.container.close()

    def cut(self) -> None:
        """Nothing to cut: a local output cannot stall on a network."""

    def close_quietly(self) -> None:
        try:
            self.container.close()
        except Exception:  # the connection is already broken; nothing more to send
            pass
