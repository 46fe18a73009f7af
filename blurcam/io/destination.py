"""Where a live run writes: a network URL, stdout, or a local recording."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import SinkError
from ..urls import mask_url

_RECORDING_FORMATS = {".ts": "mpegts", ".m2ts": "mpegts", ".mkv": "matroska", ".flv": "flv"}


@dataclass(frozen=True)
class Destination:
    """Where a StreamSink writes. ``shown`` is safe to log: credentials are masked."""

    target: str
    format: str
    network: bool
    shown: str

    @classmethod
    def parse(cls, destination: str | Path, format: str | None = None) -> Destination:
        text = str(destination)
        if text == "-":
            return cls(text, format or "mpegts", False, "stdout")
        scheme = urlsplit(text).scheme.lower() if "://" in text else ""
        if scheme in ("rtmp", "rtmps"):
            return cls(text, format or "flv", True, mask_url(text))
        if scheme in ("udp", "tcp", "srt"):
            return cls(text, format or "mpegts", True, mask_url(text))
        if scheme:
            raise SinkError(f"{scheme}://: unsupported live destination (use rtmp://, udp://, tcp://, a file or -)")
        fmt = format or _RECORDING_FORMATS.get(Path(text).suffix.lower())
        if fmt is None:
            raise SinkError(f"{text}: a live recording must be .ts, .mkv or .flv (a streamable container)")
        return cls(text, fmt, False, text)
