"""What blurcam reads and writes, by file-name extension: the one media table.

    VIDEO_FORMATS        video containers blurcam writes: extension -> FFmpeg muxer
    RECORDING_FORMATS    the streamable ones a live run may record to (mp4 cannot be
                         written to a pipe or as it goes)
    VIDEO_EXTENSIONS     videos a folder run and the review desk take as input: every
                         container blurcam writes, and common camera ones it only reads
    IMAGE_EXTENSIONS     stills, read and written alike
    MEDIA_EXTENSIONS     VIDEO_EXTENSIONS + IMAGE_EXTENSIONS

Extensions are lower case with the dot; compare ``path.suffix.lower()``. A single-file
``blurcam blur`` reads whatever FFmpeg opens; these tables decide only what a folder scan
or an upload counts as media, and which container an output name asks for.
"""
from __future__ import annotations

from pathlib import Path

VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
                 ".ts": "mpegts", ".m2ts": "mpegts", ".flv": "flv", ".avi": "avi"}
# Muxers that need no seeking back: a recording can be read while it grows.
_STREAMABLE_MUXERS = ("mpegts", "matroska", "flv")
RECORDING_FORMATS = {ext: fmt for ext, fmt in VIDEO_FORMATS.items() if fmt in _STREAMABLE_MUXERS}
# Read only: an output named like these becomes an .mp4 (see output_suffix).
_READ_ONLY_VIDEO = (".mts", ".mpg", ".mpeg", ".3gp", ".wmv")
VIDEO_EXTENSIONS = tuple(VIDEO_FORMATS) + _READ_ONLY_VIDEO
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_media_path(path: str | Path) -> bool:
    """A video or image by its name (what a folder scan takes)."""
    return Path(path).suffix.lower() in MEDIA_EXTENSIONS


def output_suffix(input_path: str | Path) -> str:
    """The extension of the redacted copy of ``input_path``: its own when blurcam writes
    that format, ``.mp4`` for a video in a container it only reads (.mpg, .3gp, a GIF)."""
    suffix = Path(input_path).suffix
    return suffix if suffix.lower() in IMAGE_EXTENSIONS or suffix.lower() in VIDEO_FORMATS else ".mp4"


def frame_count(path: str | Path) -> int | None:
    """Frames in ``path`` as its container header says (for progress): 1 for an image,
    None when the header does not say or the file cannot be opened (the run that
    follows reports what is wrong with it). A local file: never give it a URL."""
    if is_image_path(path):
        return 1
    import av

    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].frames or None
    except Exception:  # any failure here is the real open's to report
        return None
