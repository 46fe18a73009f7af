"""The contact sheet: a PNG a journalist can look at, drawn from OUTPUT's pixels only.

Residual frames come first (red boxes), then an even spread of checked frames; the
header says what was found and what was not checked. Thumbnails are kept by halving,
so memory stays bounded whatever the video's length.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .measure import Finding, VerifyConfig


class ContactSheet:
    """Collects thumbnails of OUTPUT frames (``add``), then draws the sheet (``render``)."""

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

    def add(self, index: int, time_s: float | None, rgb_out: np.ndarray, faces: list[Finding]) -> None:
        """One checked OUTPUT frame ((H, W, 3) uint8 RGB) and the faces judged in it."""
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

    def render(self, result, columns: int = 4) -> tuple[np.ndarray, list[dict]]:
        """The sheet as (H, W, 3) uint8 RGB, and where each tile came from
        ([{frame, xywh, scale, residual}]). ``result``: the run's VerifyResult."""
        import cv2

        n = self.config.sheet_samples
        samples = self.samples if len(self.samples) <= n else \
            [self.samples[round(i)] for i in np.linspace(0, len(self.samples) - 1, n)]
        residual = sorted(self.residual, key=lambda t: t[0])
        tiles = [(t, True) for t in residual] + [(t, False) for t in samples]
        tw = max([t[0][2].shape[1] for t in tiles] + [self.width_px])
        th = max([t[0][2].shape[0] for t in tiles] + [1])
        label_h, pad, head_h = 22, 6, 86
        rows = max(1, math.ceil(len(tiles) / columns))
        sheet = np.full((head_h + rows * (th + label_h + pad) + pad, max(columns * (tw + pad) + pad, 900), 3),
                        245, np.uint8)
        verdict = "RESIDUAL FACES FOUND" if not result.ok else "no residual face found in what was checked"
        colour = (200, 0, 0) if not result.ok else (0, 120, 0)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(sheet, f"blurcam verify: {verdict}", (pad, 24), font, 0.7, colour, 2)
        line = (f"{Path(result.output).name}: {result.frames} frames, checked {len(result.frames_checked)} "
                f"(every {result.every}), {result.faces_checked} face boxes judged, residual in {len(result.residual_frames)} "
                f"frames, {len(result.doubtful)} doubtful boxes")
        if self.residual_dropped:
            line += f" ({self.residual_dropped} more not shown)"
        cv2.putText(sheet, line, (pad, 46), font, 0.45, (40, 40, 40), 1)
        cv2.putText(sheet, f"NOT checked: {result.not_checked_line()}", (pad, 64), font, 0.45, (150, 60, 0), 1)
        cv2.putText(sheet, "red: face detail left  orange: doubtful (low score, detail left)  green: face destroyed",
                    (pad, 80), font, 0.38, (90, 90, 90), 1)
        placed = []
        for slot, ((index, time_s, thumb, scale, faces), is_residual) in enumerate(tiles):
            x0 = pad + (slot % columns) * (tw + pad)
            y0 = head_h + (slot // columns) * (th + label_h + pad)
            h, w = thumb.shape[:2]
            tile = thumb.copy()
            for f in faces:
                b = (np.asarray(f.box) * scale).round().astype(int)
                c = (220, 0, 0) if f.residual else (255, 140, 0) if f.doubtful else (0, 170, 0)
                cv2.rectangle(tile, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), c, 2 if f.residual else 1)
            sheet[y0:y0 + h, x0:x0 + w] = tile
            stamp = "--:--.--" if time_s is None else f"{int(time_s // 60):02d}:{time_s % 60:05.2f}"
            text = f"#{index} {stamp}" + ("  RESIDUAL" if is_residual else "")
            cv2.putText(sheet, text, (x0, y0 + h + 16), font, 0.45, (200, 0, 0) if is_residual else (40, 40, 40), 1)
            placed.append({"frame": index, "xywh": [x0, y0, w, h], "scale": round(scale, 6), "residual": is_residual})
        return sheet, placed
