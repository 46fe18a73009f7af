"""Rebuild samples/faces.mp4 and samples/faces.gt.json from scikit-image's photos.

    pip install scikit-image && python samples/make_sample.py

Three faces at 40, 90 and 200 px high move across a face-free background for
2 s at 30 fps (960x540), with a 440 Hz tone and made-up identifying tags
(location, creation time, title) that blurcam must strip.
"""
from __future__ import annotations

import json
from pathlib import Path

from blurcam.synth import Placement, background, registry_sprites, render, write_clip

HERE = Path(__file__).resolve().parent
SIZE_WH = (960, 540)
N_FRAMES = 60
FAKE_TAGS = {"title": "sample march", "location": "+48.8584+002.2945/", "comment": "camera serial 0000",
             "creation_time": "2026-01-01T12:00:00Z",
             "com.apple.quicktime.location.ISO6709": "+48.8584+002.2945+035.000/"}


def placements() -> list[Placement]:
    astronaut, camera = registry_sprites()
    return [Placement(astronaut, 360, (40, 120), (300, 80)),   # face ~200 px
            Placement(camera, 170, (800, 330), (620, 300)),    # face ~90 px (in profile)
            Placement(astronaut, 100, (820, 30), (700, 90))]   # face ~40 px


def main() -> None:
    frames, boxes = zip(*render(placements(), background(SIZE_WH), N_FRAMES))
    write_clip(HERE / "faces.mp4", frames, fps=30, metadata=FAKE_TAGS, crf=24)
    (HERE / "faces.gt.json").write_text(json.dumps(
        {"size": list(SIZE_WH), "fps": 30,
         "frames": [[[round(v, 2) for v in b] + [1.0] for b in fb.tolist()] for fb in boxes]}))
    print(HERE / "faces.mp4", len(frames), "frames")


if __name__ == "__main__":
    main()
