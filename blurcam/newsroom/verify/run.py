"""Checking a pair: read INPUT and OUTPUT side by side, sample frames, measure each
checked pair (measure.py), follow a finding back and forth, and collect the sheet.

Sampling: every k-th frame and the last, k chosen so the check costs about what the blur
did. When a checked frame has a residual face, the frames since the previous check and
up to the next are checked too, so the sheet shows every frame of that face. INPUT's
frames live in memory only while measured; no pixel of INPUT is written anywhere.
"""
from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...errors import PairError
from .measure import FaceFinder, Finding, VerifyConfig, measure_pair
from .sheet import ContactSheet

# Wall ms per 1280x720 frame once started, on 2 cores, of one verify check (decoding and
# converting both frames, one CenterFace pass at 2/3 scale, measuring a crowd): about
# 120 ms, from bench/verify_calibration.py's timing (7.3-11.2 s for 90 frames, 46 checks,
# ~1.5 s of it startup, on a shared machine); each preset's blur costs its ``Preset.blur_ms``.
# verify checks every ceil(check / blur)-th frame, so it costs at most about what the blur
# did; both scale alike with the machine, so the ratio carries to other CPUs better than
# either number.
CHECK_MS = 120.0
SCHEMA_VERSION = 2


def default_every(blur_preset: str | None, frames: int | None = None) -> int:
    """Frames per check so that verifying costs about what the blur with ``blur_preset``
    did: checks (frame 0, every k-th, and the last) x CHECK_MS <= frames x the preset's
    ``blur_ms`` (an unknown preset, a single backend or None: the default file preset's)."""
    from ...detect import DEFAULT_FILE_PRESET, PRESETS

    blur_ms = (PRESETS.get(blur_preset or DEFAULT_FILE_PRESET) or PRESETS[DEFAULT_FILE_PRESET]).blur_ms
    every = max(1, math.ceil(CHECK_MS / blur_ms))
    if frames:
        budget_checks = max(2.0, frames * blur_ms / CHECK_MS)
        while every < frames and math.ceil(frames / every) + 1 > budget_checks:
            every += 1
    return every


@dataclass
class VerifyResult:
    """What one pair's check found, and what it did not check."""

    input: str
    output: str
    frames: int = 0
    every: int = 1
    frames_checked: list[int] = field(default_factory=list)
    faces_checked: int = 0
    faces_too_small: int = 0  # detections under min_face_px in checked frames: not judged
    findings: list[Finding] = field(default_factory=list)  # residual ones only
    doubtful: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    match: float = 1.0  # median share of low-res pixels alike in checked pairs
    min_face_px: int = 24

    @property
    def residual_frames(self) -> list[int]:
        return sorted({f.frame for f in self.findings})

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def frames_skipped(self) -> int:
        return max(0, self.frames - len(self.frames_checked))

    def not_checked_line(self) -> str:
        """What a "no residual face" does not cover, in one line."""
        return (f"{self.frames_skipped} of {self.frames} frames skipped (sampled every {self.every}); "
                f"faces under {self.min_face_px} px not judged ({self.faces_too_small} seen); "
                "faces cut by the frame's edge only doubtful; faces the detector does not find")

    def to_json(self, config: VerifyConfig, *, full_paths: bool = False, sheet: list[dict] | None = None) -> dict:
        """The --json record. Paths are base names unless ``full_paths`` (a shared report
        should not reveal the user's folders)."""
        name = (lambda p: str(Path(p).resolve())) if full_paths else (lambda p: Path(p).name)
        return {"schema": SCHEMA_VERSION, "input": name(self.input), "output": name(self.output),
                "ok": self.ok, "frames": self.frames, "every": self.every,
                "threshold": config.threshold, "residual_score": config.residual_score,
                "large_face_px": config.large_face_px, "large_residual_score": config.large_residual_score,
                "detail_limit": config.detail_limit, "min_aligned": config.min_aligned,
                "min_face_px": config.min_face_px,
                "frames_checked": len(self.frames_checked), "faces_checked": self.faces_checked,
                "not_checked": {"frames_skipped": self.frames_skipped, "faces_under_min_px_seen": self.faces_too_small,
                                "summary": self.not_checked_line()},
                "residual_frames": self.residual_frames,
                "findings": [asdict(f) for f in self.findings],
                "doubtful": [asdict(f) for f in self.doubtful],
                "seconds": round(self.seconds, 3), "sheet": sheet or []}


class _Checker:
    """Checks one frame pair at a time; collects findings and the sheet."""

    def __init__(self, config: VerifyConfig, result: VerifyResult) -> None:
        self.config, self.result = config, result
        self.finder = FaceFinder(config)
        self.sheet = ContactSheet(config)
        self.matches: list[float] = []

    def close(self) -> None:
        self.finder.close()

    def check(self, index: int, time_s: float | None, rgb_in: np.ndarray, rgb_out: np.ndarray, k: int) -> bool:
        """Check one pair, both (H, W, 3) uint8 RGB of the same size; True if residual."""
        from ...detail import to_gray

        boxes, scores = self.finder.find(rgb_in, k)
        m = measure_pair(to_gray(rgb_in), to_gray(rgb_out), boxes, scores, self.config, index, time_s)
        self.matches.append(m.alike)
        self.result.frames_checked.append(index)
        self.result.faces_checked += len(m.faces)
        self.result.faces_too_small += m.too_small
        self.result.findings += [f for f in m.faces if f.residual]
        self.result.doubtful += [f for f in m.faces if f.doubtful]
        self.sheet.add(index, time_s, rgb_out, m.faces)
        return any(f.residual for f in m.faces)


def _open_pair(input_path: Path, output_path: Path):
    import av

    from ...errors import SourceError

    if not input_path.is_file():
        raise SourceError(f"{input_path}: input missing")
    if not output_path.is_file():
        raise PairError(f"{output_path}: output missing")
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
                blur_preset: str | None = None, on_progress=None) -> tuple[VerifyResult, ContactSheet]:
    """Check OUTPUT against INPUT; returns the result and the filled contact sheet
    (``sheet.render(result)`` draws it).

    ``blur_preset``: the preset OUTPUT was made with, to size the default sample.
    ``on_progress(frames_done, frames_total | None)`` after each decoded pair.
    Raises SourceError when INPUT is missing, PairError when OUTPUT is missing or is not
    a redaction of INPUT (different frame count or size, or unlike pictures).
    """
    from ...io.media import is_image_path

    config = config or VerifyConfig()
    input_path, output_path = Path(input_path), Path(output_path)
    result = VerifyResult(str(input_path), str(output_path), min_face_px=config.min_face_px)
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
        return result, checker.sheet
    finally:
        if checker is not None:
            checker.close()


def _read_image(path: Path, role: str) -> np.ndarray:
    import cv2

    from ...errors import SourceError

    if not path.is_file():
        raise (SourceError if role == "input" else PairError)(f"{path}: {role} missing")
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise PairError(f"{path}: {role} is not an image blurcam can read")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _check_video(input_path: Path, output_path: Path, config: VerifyConfig, result: VerifyResult,
                 blur_preset: str | None, on_progress):
    import av

    from ...view import quarter_turns

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
        # Frames since the last check, kept as decoded (unconverted: the sampling skips
        # their conversion) so a finding can be followed back to where the face appeared.
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


def sheet_png(sheet: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG bytes."""
    import cv2

    from ...errors import SinkError

    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise SinkError("cannot encode the contact sheet")
    return png.tobytes()


def json_bytes(record: dict) -> bytes:
    return json.dumps(record, indent=1).encode()
