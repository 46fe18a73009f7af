"""The data that crosses stage boundaries: Faces (detections) and VideoInfo."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Faces:
    """Face boxes for one image, as parallel arrays.

    xyxy: (N, 4) float32 pixel corners x1, y1, x2, y2 (x2/y2 exclusive).
    score: (N,) float32 detector confidence in [0, 1].
    track_id: (N,) int64 persistence track, -1 when none.
    carried: (N,) bool, True when the box was not detected in this frame but added
        by persistence (held forward or back-filled).
    """

    xyxy: np.ndarray
    score: np.ndarray
    track_id: np.ndarray
    carried: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or self.xyxy.dtype != np.float32:
            raise ValueError(f"xyxy must be (N, 4) float32, got {self.xyxy.shape} {self.xyxy.dtype}")
        for name in ("score", "track_id", "carried"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")

    @classmethod
    def empty(cls) -> Faces:
        return cls.from_xyxy(np.zeros((0, 4), np.float32))

    @classmethod
    def from_xyxy(cls, xyxy, score=None, *, carried: bool = False) -> Faces:
        """Detections with no track; score defaults to 1."""
        xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        n = len(xyxy)
        score = np.ones(n, np.float32) if score is None else np.asarray(score, np.float32).reshape(n)
        return cls(xyxy, score, np.full(n, -1, np.int64), np.full(n, carried, bool))

    @classmethod
    def concat(cls, parts: list[Faces]) -> Faces:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("xyxy", "score", "track_id", "carried")))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Faces:
        """Select rows with a boolean mask or integer index array."""
        return Faces(self.xyxy[index].reshape(-1, 4), self.score[index].reshape(-1),
                     self.track_id[index].reshape(-1), self.carried[index].reshape(-1))


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about the input video stream.

    rotation_deg: display rotation (counter-clockwise degrees, as ffmpeg reports it)
        that players apply; pixels are stored unrotated.
    frame_rate: nominal rate (None if unknown); timestamps, not this, define timing.
    color: colour tags of the decoded planes as (name, FFmpeg enum value) pairs
        (color_range, colorspace, color_primaries, color_trc), for the encoder.
    """

    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None
    frames: int | None
    rotation_deg: int = 0
    is_live: bool = False
    color: tuple[tuple[str, int], ...] = ()


@dataclass
class Frame:
    """One decoded video frame on its way through the pipeline.

    planes: the picture as 8-bit 4:2:0 YCbCr, the layout decoders produce and
        encoders take, so no full-frame colour conversion is ever made: Y (H, W),
        Cb and Cr (ceil(H/2), ceil(W/2)) uint8, in stored (not display) orientation.
        Owned by the pipeline: redaction writes into them in place.
    index: 0-based decode order.
    pts: presentation timestamp in ``time_base`` units (None if the input had none).
    rotation_deg: display rotation, counter-clockwise degrees (0, 90, 180, -90).
    captured_s: ``time.monotonic()`` when the source delivered it (live latency).
    video_frame: the yuv420p ``av.VideoFrame`` whose buffers ``planes`` are views of,
        when the source made one (decoded input): the encoder takes it as it is, with
        no copy (720p: -1 ms of CPU a frame on the writing thread). None otherwise.
    """

    planes: tuple[np.ndarray, np.ndarray, np.ndarray]
    index: int
    pts: int | None
    time_base: Fraction
    rotation_deg: int = 0
    captured_s: float = 0.0
    video_frame: object | None = None

    @property
    def width(self) -> int:
        return self.planes[0].shape[1]

    @property
    def height(self) -> int:
        return self.planes[0].shape[0]

    def time_s(self, fallback_fps: float = 30.0) -> float:
        """Presentation time in seconds; a frame without a pts is placed at
        ``index / fallback_fps`` (the stream's nominal rate, where known)."""
        if self.pts is None:
            return self.index / fallback_fps
        return float(self.pts * self.time_base)

    @property
    def time_ms(self) -> int:
        """Presentation time in ms (index-based fallback at 30 fps when pts is missing)."""
        return round(self.time_s() * 1000)
