"""Synthetic test clips: real face photos moving over a background, with exact face boxes.

Used by samples/make_sample.py, the tests and ``blurcam bench``. Photos come from the
caller (scikit-image's ``astronaut`` and ``camera`` in this project), so this module
needs nothing beyond numpy, OpenCV and PyAV.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


@dataclass(frozen=True)
class Sprite:
    """A photo crop with one face. image: (h, w, 3) uint8 RGB; face_xyxy: face box in its pixels."""

    image: np.ndarray
    face_xyxy: tuple[float, float, float, float]


@dataclass(frozen=True)
class Placement:
    """A sprite drawn ``height_px`` tall, its top-left moving linearly from ``start_xy`` to ``end_xy``."""

    sprite: Sprite
    height_px: int
    start_xy: tuple[float, float]
    end_xy: tuple[float, float]


def render(placements: Sequence[Placement], background: np.ndarray, n_frames: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (frame (H, W, 3) uint8 RGB, face boxes (N, 4) float32 xyxy clipped to the frame)."""
    h_bg, w_bg = background.shape[:2]
    scaled = []
    for p in placements:
        s = p.height_px / p.sprite.image.shape[0]
        img = cv2.resize(p.sprite.image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        scaled.append((img, np.array(p.sprite.face_xyxy, np.float32) * s))
    for t in range(n_frames):
        u = t / max(1, n_frames - 1)
        frame = background.copy()
        boxes = []
        for p, (img, face) in zip(placements, scaled):
            x = round(p.start_xy[0] + (p.end_xy[0] - p.start_xy[0]) * u)
            y = round(p.start_xy[1] + (p.end_xy[1] - p.start_xy[1]) * u)
            h, w = img.shape[:2]
            x1, y1, x2, y2 = max(0, x), max(0, y), min(w_bg, x + w), min(h_bg, y + h)
            if x2 <= x1 or y2 <= y1:
                continue
            frame[y1:y2, x1:x2] = img[y1 - y:y2 - y, x1 - x:x2 - x]
            box = face + np.array([x, y, x, y], np.float32)
            box = np.clip(box, 0, [w_bg, h_bg, w_bg, h_bg])
            if box[2] > box[0] and box[3] > box[1]:
                boxes.append(box)
        yield frame, np.array(boxes, np.float32).reshape(-1, 4)


def write_clip(path: str | Path, frames: Iterable[np.ndarray], *, fps: int = 30,
               audio: bool = True, metadata: dict[str, str] | None = None, crf: int = 18,
               pts: Sequence[int] | None = None, time_base: Fraction | None = None,
               rotation_deg: int = 0) -> None:
    """Encode RGB frames to H.264 (+ a 440 Hz AAC tone) with optional container tags.

    pts/time_base: explicit timestamps (for variable frame rate clips); default 1/fps steps.
    """
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    time_base = time_base or Fraction(1, fps)
    # use_metadata_tags: the MP4 muxer writes every tag (make, model, ISO6709...), not just known ones.
    options = {"movflags": "use_metadata_tags"} if metadata and str(path).endswith((".mp4", ".mov")) else {}
    with av.open(str(path), "w", options=options) as out:
        if metadata:
            out.metadata.update(metadata)
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.time_base = vs.codec_context.time_base = time_base
        vs.codec_context.options = {"crf": str(crf), "preset": "veryfast"}
        if rotation_deg:
            vs.set_display_rotation(rotation_deg)
        as_ = None
        if audio:
            as_ = out.add_stream("aac", rate=48000)
            as_.layout = "mono"
        spf = 48000 // fps
        for i, img in enumerate(itertools.chain([first], frames)):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = pts[i] if pts is not None else i
            vf.time_base = time_base
            for packet in vs.encode(vf):
                out.mux(packet)
            if as_ is not None:
                n = np.arange(i * spf, (i + 1) * spf)
                tone = (0.2 * np.sin(2 * np.pi * 440 * n / 48000)).astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, i * spf
                for packet in as_.encode(af):
                    out.mux(packet)
        for s in (vs, as_):
            if s is not None:
                for packet in s.encode(None):
                    out.mux(packet)


def registry_sprites() -> list[Sprite]:
    """Head-and-shoulders crops of scikit-image's ``astronaut`` and ``camera`` photos
    (public domain: NASA; MIT's cameraman), with hand-checked face boxes."""
    from skimage import data

    astronaut = data.astronaut()  # face at x 172-280, y 62-178 of 512x512
    camera = np.repeat(data.camera()[..., None], 3, axis=2)  # face at x 186-258, y 98-200
    return [Sprite(np.ascontiguousarray(astronaut[0:300, 76:376]), (96, 62, 204, 178)),
            Sprite(np.ascontiguousarray(camera[40:280, 102:342]), (84, 58, 156, 160))]


def background(size_wh: tuple[int, int]) -> np.ndarray:
    """A textured, face-free background: scikit-image's ``coffee`` photo, resized."""
    from skimage import data

    return cv2.resize(data.coffee(), size_wh, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Crowd:
    """A still crowd to film: ``canvas`` (H, W, 3) uint8 RGB and its faces (N, 4) float32 xyxy."""

    canvas: np.ndarray
    faces_xyxy: np.ndarray


def crowd(size_wh: tuple[int, int], *, faces: int | None = None, seed: int = 7,
          face_px: tuple[int, int] = (12, 60), margin: float = 1.4) -> Crowd:
    """A dense crowd made from registry photos: scikit-image's ``lfw_subset`` faces (100
    real 25x25 face crops, tinted) with hair and shoulders, in rows on its ``rocket``
    scene, ``face_px`` tall from the back row to the front one (perspective), on a
    canvas ``margin`` times the frame so a camera can move over it.

    faces: keep only this many of the people (chosen at random, the rest of the scene
    unchanged): a sparse clip of the same scene, size and motion. None: all (about
    1,100 at 1280x720)."""
    from skimage import data

    w, h = round(size_wh[0] * margin), round(size_wh[1] * margin)
    rng = np.random.default_rng(seed)
    lfw = (data.lfw_subset()[:100] * 255).astype(np.uint8)  # the first 100 are faces
    canvas = cv2.resize(data.rocket(), (w, h), interpolation=cv2.INTER_CUBIC)
    small, large = face_px
    people = []  # (x, y, side), back rows first, so nearer people are drawn over them
    y = 4.0
    while True:
        side = round(small + (large - small) * y / h)
        if y + side * 2 > h:
            break
        x = float(rng.uniform(0, side))
        while x + side < w:
            people.append((round(x), round(y + rng.uniform(-0.1, 0.1) * side), side))
            x += side * rng.uniform(1.4, 1.8)
        y += side * 1.5  # the row in front hides shoulders, never faces
    if faces is not None:
        keep = np.sort(rng.choice(len(people), size=min(faces, len(people)), replace=False))
        people = [people[i] for i in keep]
    tones = np.array([[224, 172, 140], [198, 134, 96], [141, 85, 54], [240, 200, 170], [110, 70, 45]], np.float32)
    boxes = []
    for x, y, side in people:
        cx = x + side // 2
        colour = tuple(int(v) for v in rng.integers(10, 90, 3))
        cv2.ellipse(canvas, (cx, y + 2 * side), (int(side * 1.3), int(side * 0.9)), 0, 180, 360,
                    tuple(int(v) for v in rng.integers(30, 200, 3)), -1)  # shoulders
        cv2.ellipse(canvas, (cx, y + side // 2 - side // 6), (int(side * 0.7), int(side * 0.8)), 0, 0, 360,
                    colour, -1)  # hair
        grey = cv2.resize(lfw[rng.integers(0, 100)], (side, side), interpolation=cv2.INTER_CUBIC)
        tone = tones[rng.integers(0, len(tones))] / 160
        canvas[y:y + side, x:x + side] = np.clip(grey[..., None] * tone, 0, 255).astype(np.uint8)
        boxes.append((x, y, x + side, y + side))
    return Crowd(canvas, np.array(boxes, np.float32).reshape(-1, 4))


def _area(xyxy: np.ndarray) -> np.ndarray:
    return (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])


def film(scene: Crowd, size_wh: tuple[int, int], n_frames: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A camera panning over ``scene`` and zooming in to 80% and out again, one sweep
    per 90 frames (back and forth). Yields (frame (H, W, 3) uint8 RGB, faces (N, 5)
    float32: xyxy clipped to the frame and the share of the face inside it, as
    ``mkclip.py`` writes its ground truth)."""
    w, h = size_wh
    ch, cw = scene.canvas.shape[:2]
    for t in range(n_frames):
        u = (t % 180) / 89 if t % 180 < 90 else (179 - t % 180) / 89
        zoom = 1.0 - 0.2 * np.sin(np.pi * u)
        view_w, view_h = w * zoom, h * zoom
        x0, y0 = (cw - view_w) * u, (ch - view_h) * (0.5 + 0.4 * np.sin(2 * np.pi * u))
        s = w / view_w
        m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)
        frame = cv2.warpAffine(scene.canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        b = (scene.faces_xyxy - np.array([x0, y0, x0, y0], np.float32)) * s
        c = np.clip(b, 0, [w, h, w, h])
        share = _area(c) / np.maximum(_area(b), 1e-9)
        seen = share > 0
        yield frame, np.hstack([c[seen], share[seen, None]]).astype(np.float32)
