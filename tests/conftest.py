"""Test media built in the test session from scikit-image photos (real faces), never from ../shared."""
from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from blurcam.synth import Placement, background, registry_sprites, render, write_clip

pytest_plugins = ("rtmp_server",)  # the real nginx-rtmp fixture for the live tests

IDENTIFYING_TAGS = {
    "title": "protest march", "comment": "camera serial 12345", "location": "+40.7128-074.0060/",
    "com.apple.quicktime.location.ISO6709": "+40.7128-074.0060+010.000/",
    "creation_time": "2026-05-01T12:00:00Z", "make": "Acme", "model": "Phone 9", "artist": "Jane Doe",
}


@dataclass
class Clip:
    path: Path
    frames: list[np.ndarray]  # (H, W, 3) uint8 RGB, as encoded (before compression)
    boxes: list[np.ndarray]  # per frame (N, 4) float32 exact face boxes


def decode_rgb(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _clip(path: Path, placements, size_wh=(640, 360), n_frames=30, **kw) -> Clip:
    frames, boxes = zip(*render(placements, background(size_wh), n_frames))
    write_clip(path, frames, **kw)
    return Clip(path, list(frames), list(boxes))


def two_faces_clip(path: Path, sprites, n_frames: int, size_wh=(640, 360), **kw) -> Clip:
    """The live tests' clip: the astronaut (200 px) and the cameraman (160 px) moving
    across a 640x360 background at 30 fps, ``n_frames`` long."""
    astronaut, camera = sprites
    placements = [Placement(astronaut, 200, (20, 80), (160, 40)), Placement(camera, 160, (460, 120), (400, 160))]
    return _clip(path, placements, size_wh=size_wh, n_frames=n_frames, fps=30, **kw)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def sprites():
    return registry_sprites()


@pytest.fixture(scope="session")
def face_clip(media_dir, sprites) -> Clip:
    """640x360, 30 frames at 30 fps, two frontal faces (~110 and ~60 px) moving,
    AAC audio, identifying tags."""
    astronaut, _ = sprites
    placements = [Placement(astronaut, 200, (20, 80), (140, 40)),
                  Placement(astronaut, 110, (420, 30), (480, 200))]
    return _clip(media_dir / "faces.mp4", placements, metadata=IDENTIFYING_TAGS)


@pytest.fixture(scope="session")
def vfr_clip(media_dir, sprites) -> Clip:
    """Variable frame rate: irregular timestamps in a 1/90000 time base."""
    astronaut, _ = sprites
    pts = np.cumsum([0] + [3000, 3000, 6000, 1500] * 5)[:20].tolist()
    return _clip(media_dir / "vfr.mp4", [Placement(astronaut, 200, (40, 60), (200, 100))], n_frames=20,
                 pts=pts, time_base=Fraction(1, 90000), audio=False)


@pytest.fixture(scope="session")
def gt_json(face_clip) -> Path:
    path = face_clip.path.with_suffix(".gt.json")
    path.write_text(json.dumps({"size": [640, 360], "frames": [b.tolist() for b in face_clip.boxes]}))
    return path


@pytest.fixture(scope="session")
def missed_face_clip(media_dir, sprites) -> Clip:
    """640x360, 30 frames at 30 fps: an upright face (~80 px) and an upside-down one
    (a photo hung the wrong way, a person lying down) that ``--quality fast`` misses in
    every frame. boxes[i][1] is the upside-down face. Identifying tags, AAC audio. Its
    timestamps start at 1.5 s, as in a clip cut from a longer recording (players show
    it from 1.5 s; regions count from its first frame)."""
    from blurcam.synth import Sprite

    astronaut, _ = sprites
    h = astronaut.image.shape[0]
    x1, y1, x2, y2 = astronaut.face_xyxy
    flipped = Sprite(np.ascontiguousarray(astronaut.image[::-1]), (x1, h - y2, x2, h - y1))
    placements = [Placement(astronaut, 200, (20, 80), (80, 60)), Placement(flipped, 200, (380, 100), (420, 120))]
    return _clip(media_dir / "missed.mp4", placements, metadata=IDENTIFYING_TAGS, pts=[45 + i for i in range(30)],
                 time_base=Fraction(1, 30))
