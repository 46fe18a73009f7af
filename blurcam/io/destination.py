"""Where a live run writes: a network URL, stdout, or a local recording."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UsageError
from ..urls import mask_url
from .media import RECORDING_FORMATS


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
            raise UsageError(f"{scheme}://: unsupported live destination (use rtmp://, udp://, tcp://, a file or -)")
        fmt = format or RECORDING_FORMATS.get(Path(text).suffix.lower())
        if fmt is None:
            raise UsageError(f"{text}: a live recording must be {', '.join(RECORDING_FORMATS)} (a streamable container)")
        return cls(text, fmt, False, text)

    def identity(self) -> tuple:
        """What makes two destinations the same place: a recording's file however it is
        spelled (./x.ts, a symlink, a hard link), a URL as written, stdout."""
        if self.network or self.target == "-":
            return ("url", self.target)
        try:
            st = os.stat(self.target)
            return ("file", st.st_dev, st.st_ino)
        except OSError:  # not there yet: its absolute path, symlinked folders resolved
            return ("path", str(Path(self.target).resolve()))


def parse_destinations(destinations: list[str]) -> list[Destination]:
    """Parse every destination of one run, before anything is opened: UsageError for
    an unsupported one or one given twice (two writers on one file would destroy it)."""
    parsed, seen = [], {}
    for text in destinations:
        dest = Destination.parse(text)
        key = dest.identity()
        if key in seen:
            raise UsageError(f"{dest.shown}: given twice with --to (as {seen[key]}); each destination once")
        seen[key] = dest.shown
        parsed.append(dest)
    return parsed
