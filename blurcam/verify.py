"""``blurcam verify INPUT OUTPUT``: independent evidence that a redacted output is safe to publish.

For a sample of frame pairs (every ``every``-th frame, the last one, and every frame
near a finding) it
  1. detects faces in INPUT and in OUTPUT with the strongest preset (``thorough``) at a
     low threshold: more sensitive than any preset blurcam redacts with;
  2. for every face found in either, measures how much of INPUT's facial detail the
     OUTPUT still carries there (:func:`blurcam.detail.detail_kept`);
  3. calls a face *residual* when more than ``detail_limit`` of it survives.

The contact sheet and the JSON are built from OUTPUT's pixels and from box positions
and numbers only: no pixel of INPUT is ever written anywhere. INPUT frames live in
memory just long enough to be measured against.

A check costs two ``thorough`` detections per sampled frame; ``every`` defaults to the
ratio of that cost to the blur's, so verifying costs about what the blur did.
"""
from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import PairError

# Wall ms per 1280x720 frame once started, on 2 cores: each preset's blur (README speed
# table, bench/e2e.py: 1000 / "fps after startup") and one verify check (two ``thorough``
# detections, conversions and measuring; bench/verify_bench.py). verify checks every
# ceil(check / blur)-th frame, so it costs about what the blur did; both scale alike
# with the machine, so the ratio carries to other CPUs better than either number.
BLUR_MS = {"fast": 14.9, "live": 30.4, "balanced": 69.0, "thorough": 244.0}
CHECK_MS = 660.0
SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class VerifyConfig:
    """detector/threshold: what looks for faces (in both INPUT and OUTPUT).
    every: check every k-th frame (1: all); None: match the blur's cost (see module doc).
    detail_limit: share of a face's feature-scale detail allowed to survive (0-1);
        compression keeps ~0.9, redaction ~0.
    residual_score: detector confidence from which a box that keeps its detail is a
        residual face; below it (down to ``threshold``) it is listed as doubtful. On the
        test clips, coffee cups score 0.06-0.08 at ``thorough``, a helmet and a camera
        0.22-0.31, the faces 0.9.
    min_face_px: boxes less high than this are doubtful at most: no face that small
        carries identifying detail, and the smallest CenterFace boxes are often noise.
    sheet_samples: sampled frames shown on the sheet (besides every residual frame)."""

    detector: str = "thorough"
    threshold: float = 0.05
    every: int | None = None
    detail_limit: float = 0.3
    residual_score: float = 0.5
    min_face_px: int = 10
    sheet_samples: int = 12
    max_residual_tiles: int = 120

    def __post_init__(self) -> None:
        if self.every is not None and self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if not 0.0 < self.detail_limit < 1.0:
            raise ValueError(f"detail_limit must be in (0, 1), got {self.detail_limit}")


def default_every(blur_preset: str | None, frames: int | None = None) -> int:
    """Frames per check so that verifying costs about what the blur with ``blur_preset``
    did: checks (frame 0, every k-th, and the last) x CHECK_MS <= frames x BLUR_MS."""
    blur_ms = BLUR_MS.get(blur_preset or "balanced", BLUR_MS["balanced"])
    every = max(1, math.ceil(CHECK_MS / blur_ms))
    if frames:
        budget_checks = max(2.0, frames * blur_ms / CHECK_MS)
        while every < frames and math.ceil(frames / every) + 1 > budget_checks:
            every += 1
    return every


@dataclass
class Finding:
    """One face looked at: box (x1, y1, x2, y2) in stored-frame pixels; found_in: input,
    output or both; score: the detector's confidence; detail: share of INPUT's detail kept
    in OUTPUT (None: nothing to measure). residual: detail over the limit on a box scored
    at least ``residual_score``; doubtful: detail over the limit on a lower-scored box
    (at thresholds this low, most are textures: shown, and failing only with strict)."""

    frame: int
    time_s: float | None
    box: list[float]
    found_in: str
    score: float
    detail: float | None
    residual: bool
    doubtful: bool = False


@dataclass
class VerifyResult:
    input: str
    output: str
    frames: int = 0
    every: int = 1
    frames_checked: list[int] = field(default_factory=list)
    faces_checked: int = 0
    findings: list[Finding] = field(default_factory=list)  # residual ones only
    doubtful: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    match: float = 1.0  # median share of low-res pixels alike in checked pairs
    tiles: list[dict] = field(default_factory=list)  # where each sheet tile came from

    @property
    def residual_frames(self) -> list[int]:
        return sorted({f.frame for f in self.findings})

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self, config: VerifyConfig) -> dict:
        return {"schema": SCHEMA_VERSION, "input": Path(self.input).name, "output": Path(self.output).name,
                "ok": self.ok, "frames": self.frames, "every": self.every,
                "detector": config.detector, "threshold": config.threshold, "detail_limit": config.detail_limit,
                "frames_checked": len(self.frames_checked), "faces_checked": self.faces_checked,
                "residual_frames": self.residual_frames,
                "findings": [asdict(f) for f in self.findings],
                "doubtful": [asdict(f) for f in self.doubtful],
                "seconds": round(self.seconds, 3), "sheet": self.tiles}


class _Sheet:
    """Thumbnails of OUTPUT frames for the contact sheet: every residual frame (up to a
    cap) and an even spread of sampled frames (kept by halving, so memory stays bounded
    whatever the video's length)."""

    def __init__(self, config: VerifyConfig, width_px: int = 320) -> None:
        self.config, self.width_px = config, width_px
        self.samples: list[tuple] = []
        self.residual: list[tuple] = []
        self.residual_dropped = 0
        self.stride, self.seen = 1, 0

    def thumb(self, rgb_out: np.ndarray) -> tuple[np.ndarray, float]:
        import cv2

        scale = min(1.0, self.width_px / rgb_out.shape[1])
        size = (max(1, round(rgb_out.shape[1] * scale)), max(1, round(rgb_out.shape[0] * scale)))
        return cv2.resize(rgb_out, size, interpolation=cv2.INTER_AREA), scale

    def add(self, index, time_s, rgb_out, faces: list[Finding]) -> None:
        if any(f.residual for f in faces):
            if len(self.residual) < self.config.max_residual_tiles:
                self.residual.append((index, time_s, *self.thumb(rgb_out), faces))
            else:
                self.residual_dropped += 1
            return
        if self.seen % self.stride == 0:
            self.samples.append((index, time_s, *self.thumb(rgb_out), faces))
            if len(self.samples) > 2 * self.config.sheet_samples:
                self.samples, self.stride = self.samples[::2], self.stride * 2
        self.seen += 1

    def render(self, result: VerifyResult, columns: int = 4) -> np.ndarray:
        """The sheet as (H, W, 3) uint8 RGB: a header, residual frames (red), samples."""
        import cv2

        n = self.config.sheet_samples
        samples = self.samples if len(self.samples) <= n else \
            [self.samples[round(i)] for i in np.linspace(0, len(self.samples) - 1, n)]
        tiles = [(t, True) for t in self.residual] + [(t, False) for t in samples]
        tw = max([t[0][2].shape[1] for t in tiles] + [self.width_px])
        th = max([t[0][2].shape[0] for t in tiles] + [1])
        label_h, pad, head_h = 22, 6, 70
        rows = max(1, math.ceil(len(tiles) / columns))
        sheet = np.full((head_h + rows * (th + label_h + pad) + pad, columns * (tw + pad) + pad, 3), 245, np.uint8)
        verdict = "RESIDUAL FACES FOUND" if not result.ok else "no residual face found"
        colour = (200, 0, 0) if not result.ok else (0, 120, 0)
        cv2.putText(sheet, f"blurcam verify: {verdict}", (pad, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2)
        line = (f"{Path(result.output).name}: {result.frames} frames, checked {len(result.frames_checked)} "
                f"(every {result.every}), {result.faces_checked} faces, residual in {len(result.residual_frames)} frames, "
                f"{len(result.doubtful)} doubtful boxes")
        if self.residual_dropped:
            line += f" ({self.residual_dropped} more not shown)"
        cv2.putText(sheet, line, (pad, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (40, 40, 40), 1)
        cv2.putText(sheet, "red: face detail left  orange: doubtful (low score, detail left)  green: face destroyed  yellow: output only",
                    (pad, 66), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (90, 90, 90), 1)
        result.tiles = []
        for slot, ((index, time_s, thumb, scale, faces), residual) in enumerate(tiles):
            x0 = pad + (slot % columns) * (tw + pad)
            y0 = head_h + (slot // columns) * (th + label_h + pad)
            h, w = thumb.shape[:2]
            tile = thumb.copy()
            for f in faces:
                b = (np.asarray(f.box) * scale).round().astype(int)
                c = ((220, 0, 0) if f.residual else (255, 140, 0) if f.doubtful
                     else (0, 170, 0) if f.found_in != "output" else (230, 190, 0))
                cv2.rectangle(tile, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), c, 2 if f.residual else 1)
            sheet[y0:y0 + h, x0:x0 + w] = tile
            stamp = "--:--.--" if time_s is None else f"{int(time_s // 60):02d}:{time_s % 60:05.2f}"
            text = f"#{index} {stamp}" + ("  RESIDUAL" if residual else "")
            cv2.putText(sheet, text, (x0, y0 + h + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (200, 0, 0) if residual else (40, 40, 40), 1)
            result.tiles.append({"frame": index, "xywh": [x0, y0, w, h], "scale": round(scale, 6),
                                 "residual": residual})
        return sheet


def _detect(detector, rgb: np.ndarray, k: int, calls: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Face boxes (N, 4) in stored-frame pixels, detected on the upright view, and scores (N,)."""
    from .view import boxes_to_stored, detect_image

    upright = np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb
    calls[0] += 1
    faces = detect_image(detector, upright, calls[0] * 33)
    return boxes_to_stored(faces.xyxy, k, (rgb.shape[1], rgb.shape[0])), faces.score


class _Checker:
    """Checks one frame pair at a time; collects findings and the sheet."""

    def __init__(self, config: VerifyConfig, result: VerifyResult) -> None:
        from .detect import make_detector

        self.config, self.result = config, result
        # One detector for both images: its models load once (half verify's startup).
        # It keeps no state between calls that could carry boxes from one image to the
        # other (thorough runs every pass on every call; MediaPipe only wants rising times).
        self.det_in = self.det_out = make_detector(config.detector, threshold=config.threshold)
        self.calls = [0]
        self.sheet = _Sheet(config)
        self.matches: list[float] = []

    def close(self) -> None:
        self.det_in.close()

    def check(self, index: int, time_s: float | None, rgb_in: np.ndarray, rgb_out: np.ndarray, k: int) -> bool:
        """Check one pair, both (H, W, 3) uint8 RGB of the same size; True if residual."""
        import cv2

        from .boxes import box_iou
        from .detail import detail_kept, to_gray

        boxes_in, score_in = _detect(self.det_in, rgb_in, k, self.calls)
        boxes_out, score_out = _detect(self.det_out, rgb_out, k, self.calls)
        # One candidate per face: the most confident box among those that overlap, from
        # either image; ``found_in`` says which images it was seen in.
        boxes = np.concatenate([boxes_in, boxes_out])
        scores = np.concatenate([score_in, score_out])
        side = np.array([1] * len(boxes_in) + [2] * len(boxes_out))
        order = np.argsort(-scores, kind="stable")
        iou = box_iou(boxes, boxes) if len(boxes) else np.zeros((0, 0))
        taken = np.zeros(len(boxes), bool)
        gray_in, gray_out = to_gray(rgb_in), to_gray(rgb_out)
        faces = []
        for i in order:
            if taken[i]:
                continue
            group = (iou[i] > 0.4) & ~taken
            taken |= group
            seen = np.bitwise_or.reduce(side[group])
            where = {1: "input", 2: "output", 3: "both"}[int(seen)]
            kept = detail_kept(gray_in, gray_out, boxes[i])
            leaked = kept is not None and kept > self.config.detail_limit
            tiny = boxes[i, 3] - boxes[i, 1] < self.config.min_face_px
            faces.append(Finding(index, time_s, [round(float(v), 1) for v in boxes[i]], where,
                                 round(float(scores[i]), 3), None if kept is None else round(kept, 3),
                                 bool(leaked and not tiny and scores[i] >= self.config.residual_score),
                                 bool(leaked and (tiny or scores[i] < self.config.residual_score))))
        small = (32, 18)
        a = cv2.resize(gray_in, small, interpolation=cv2.INTER_AREA)
        b = cv2.resize(gray_out, small, interpolation=cv2.INTER_AREA)
        self.matches.append(float((np.abs(a - b) < 16).mean()))
        self.result.frames_checked.append(index)
        self.result.faces_checked += len(faces)
        self.result.findings += [f for f in faces if f.residual]
        self.result.doubtful += [f for f in faces if f.doubtful]
        self.sheet.add(index, time_s, rgb_out, faces)
        return any(f.residual for f in faces)


def _open_pair(input_path: Path, output_path: Path):
    import av

    for path, role in ((input_path, "input"), (output_path, "output")):
        if not path.is_file():
            raise PairError(f"{path}: {role} missing")
    containers = []
    for path, role in ((input_path, "input"), (output_path, "output")):
        try:
            c = av.open(str(path))
        except (av.FFmpegError, OSError) as exc:
            for o in containers:
                o.close()
            raise PairError(f"{path}: {role} cannot be read: {exc}") from None
        if not c.streams.video:
            c.close()
            for o in containers:
                o.close()
            raise PairError(f"{path}: {role} has no video stream")
        containers.append(c)
    return containers


def verify_pair(input_path: str | Path, output_path: str | Path, config: VerifyConfig | None = None, *,
                blur_preset: str | None = None, on_progress=None) -> tuple[VerifyResult, np.ndarray]:
    """Check OUTPUT against INPUT; returns the result and the contact sheet ((H, W, 3) RGB).

    ``blur_preset``: the preset OUTPUT was made with, to size the default sample.
    ``on_progress(frames_done, frames_total | None)`` after each decoded pair.
    Raises PairError when either file is missing or OUTPUT is not a redaction of INPUT
    (different frame count or size, or unlike pictures).
    """
    from .pipeline import is_image_path

    config = config or VerifyConfig()
    input_path, output_path = Path(input_path), Path(output_path)
    result = VerifyResult(str(input_path), str(output_path))
    started = time.perf_counter()
    checker = None
    try:
        if is_image_path(input_path):
            rgb_in, rgb_out = _read_image(input_path, "input"), _read_image(output_path, "output")
            if rgb_in.shape != rgb_out.shape:
                raise PairError(f"{output_path}: {rgb_out.shape[1]}x{rgb_out.shape[0]}, but the input is "
                                f"{rgb_in.shape[1]}x{rgb_in.shape[0]}: not its redaction")
            checker = _Checker(config, result)
            result.every, result.frames = 1, 1
            checker.check(0, None, rgb_in, rgb_out, 0)
        else:
            checker = _check_video(input_path, output_path, config, result, blur_preset, on_progress)
        if checker.matches and float(np.median(checker.matches)) < 0.5:
            raise PairError(f"{output_path}: does not look like a redaction of {input_path.name} "
                            f"(only {np.median(checker.matches):.0%} of the picture alike)")
        result.match = float(np.median(checker.matches)) if checker.matches else 1.0
        result.seconds = time.perf_counter() - started
        return result, checker.sheet.render(result)
    finally:
        if checker is not None:
            checker.close()


def _read_image(path: Path, role: str) -> np.ndarray:
    import cv2

    if not path.is_file():
        raise PairError(f"{path}: {role} missing")
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise PairError(f"{path}: {role} is not an image blurcam can read")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _check_video(input_path: Path, output_path: Path, config: VerifyConfig, result: VerifyResult,
                 blur_preset: str | None, on_progress):
    import av

    from .view import quarter_turns

    cin, cout = _open_pair(input_path, output_path)
    checker = None
    try:
        vin, vout = cin.streams.video[0], cout.streams.video[0]
        vin.thread_type = vout.thread_type = "AUTO"
        w_in, h_in = vin.codec_context.width, vin.codec_context.height
        w, h = vout.codec_context.width, vout.codec_context.height
        if (w, h) != (w_in - w_in % 2, h_in - h_in % 2):
            raise PairError(f"{output_path}: {w}x{h}, but the input is {w_in}x{h_in}: not its redaction")
        total = vin.frames or None
        if vin.frames and vout.frames and vin.frames != vout.frames:
            raise PairError(f"{output_path}: {vout.frames} frames, but the input has {vin.frames}: not its redaction")
        every = result.every = config.every or default_every(blur_preset, total)
        checker = _Checker(config, result)
        # Frames since the last check, kept (as decoded, unconverted) so a finding can be
        # followed back to where the face first appeared.
        recent: deque = deque(maxlen=max(0, every - 1))
        dense_until, index, last = -1, -1, None

        def rgb(frame) -> np.ndarray:
            return frame.to_ndarray(format="rgb24")[:h, :w]

        def check(i, fi, fo) -> bool:
            t = float(fo.pts * fo.time_base) if fo.pts is not None and fo.time_base else None
            return checker.check(i, t, rgb(fi), rgb(fo), quarter_turns(int(round(fo.rotation or 0))))

        gen_in, gen_out = cin.decode(vin), cout.decode(vout)
        try:
            while True:
                fi, fo = next(gen_in, None), next(gen_out, None)
                if fi is None and fo is None:
                    break
                index += 1
                if fi is None or fo is None:
                    longer = "output" if fi is None else "input"
                    raise PairError(f"{output_path}: frame counts differ (the {longer} has more than {index}): "
                                    "not a redaction of the input")
                last = None
                if index % every == 0 or index <= dense_until:
                    if check(index, fi, fo):
                        for j, bi, bo in list(recent):  # follow the face back
                            check(j, bi, bo)
                        dense_until = index + every - 1
                    recent.clear()
                else:
                    recent.append((index, fi, fo))
                    last = (index, fi, fo)
                if on_progress is not None:
                    on_progress(index + 1, total)
        except av.FFmpegError as exc:
            raise PairError(f"{output_path}: cannot decode the pair after frame {index}: {exc}") from None
        if last is not None:  # the last frame is always checked
            check(*last)
        result.frames = index + 1
        return checker
    except BaseException:
        if checker is not None:
            checker.close()
        raise
    finally:
        cin.close()
        cout.close()


def write_outputs(result: VerifyResult, sheet: np.ndarray, config: VerifyConfig, *,
                  sheet_path: Path | None, json_path: Path | None) -> None:
    """Write the sheet (PNG) and the JSON, each atomically; existing ones are replaced."""
    import cv2

    from .errors import SinkError
    from .io.atomic import write_atomically

    if sheet_path is not None:
        ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        if not ok:
            raise SinkError(f"{sheet_path}: cannot encode the sheet")
        write_atomically(Path(sheet_path), png.tobytes(), overwrite=True)
    if json_path is not None:
        write_atomically(Path(json_path), json.dumps(result.to_json(config), indent=1).encode(), overwrite=True)
