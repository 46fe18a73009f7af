"""Audio for sinks: copy packets where the container takes the codec, else re-encode.

Copying is lossless and free, so it is the default. Where the output container
cannot carry the source codec (PCM in FLV or MPEG-TS, AAC in WebM), the audio is
decoded and re-encoded to the container's usual codec instead of failing or being
written as an unplayable data stream. FFmpeg's own list of supported codecs is not
used: it accepts PCM for FLV (the muxer then fails) and lists nothing for MPEG-TS.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av

# Audio codecs each output format can carry as they are; None: any codec.
_COPYABLE: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"}),
    "mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"}),
    "webm": frozenset({"opus", "vorbis"}),
    "flv": frozenset({"aac", "mp3"}),
    "mpegts": frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "opus"}),
    "avi": frozenset({"mp3", "ac3", "mp2", "pcm_s16le", "pcm_u8"}),
    "matroska": None,
}
_TRANSCODE_TO = {"webm": "libopus"}  # everything else gets AAC
_RATES = {
    "aac": (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000),
    "libopus": (48000, 24000, 16000, 12000, 8000),
}


def can_copy(codec_name: str, format_name: str | None) -> bool:
    """Whether packets of ``codec_name`` can be muxed into ``format_name`` unchanged."""
    allowed = _COPYABLE.get(format_name or "", frozenset({"aac", "mp3"}))
    return allowed is None or codec_name in allowed


def target_codec(format_name: str | None) -> str:
    """The codec audio is re-encoded to for ``format_name``."""
    return _TRANSCODE_TO.get(format_name or "", "aac")


@dataclass(frozen=True)
class AudioParams:
    """What a decoder needs to know about a source audio stream (picklable: the
    network relay process gets it instead of the stream)."""

    codec: str
    sample_rate: int
    layout: str
    extradata: bytes | None = None

    @classmethod
    def of(cls, stream: av.audio.stream.AudioStream) -> AudioParams:
        ctx = stream.codec_context
        return cls(ctx.name, ctx.sample_rate, ctx.layout.name, bytes(ctx.extradata) if ctx.extradata else None)


class AudioTranscoder:
    """Decodes one source audio stream and re-encodes it into a new stream of ``container``.

    Its own decoder (the source's may be shared by other sinks). ``encode(packet,
    origin_s)`` returns packets ready to mux; timestamps are sample-exact, shifted so
    that media time ``origin_s`` (seconds) is 0, so the encoder's re-chunking into its
    frame size is gapless. Call ``flush()`` once at the end.
    """

    def __init__(self, container: av.container.OutputContainer, src: AudioParams,
                 codec: str, max_channels: int = 2) -> None:
        self.decoder = av.CodecContext.create(src.codec, "r")
        self.decoder.sample_rate, self.decoder.layout = src.sample_rate, src.layout
        if src.extradata:
            self.decoder.extradata = src.extradata
        rates = _RATES.get(codec, ())
        rate = src.sample_rate if not rates or src.sample_rate in rates else 48000
        channels = self.decoder.layout.nb_channels
        layout = "mono" if channels == 1 else "stereo" if max_channels <= 2 or channels > max_channels else src.layout
        self.stream = container.add_stream(codec, rate=rate, layout=layout)
        self.stream.metadata.clear()
        self.rate = rate

    def encode(self, packet: av.Packet, origin_s: Fraction | int = 0) -> list[av.Packet]:
        out = []
        for frame in self.decoder.decode(packet):
            if frame.pts is None or frame.time_base is None:
                continue
            frame.pts = round((frame.pts * frame.time_base - origin_s) * self.rate)
            if frame.pts < 0:
                continue
            frame.time_base = Fraction(1, self.rate)
            out += self.stream.encode(frame)
        return out

    def flush(self) -> list[av.Packet]:
        return self.stream.encode(None)
