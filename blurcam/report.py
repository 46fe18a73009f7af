"""The --report JSON: what was redacted where, so a journalist can check the work.

Schema (version 1):

    {"schema": 1, "blurcam": "0.1.0",
     "input": str, "output": str,     # base names (absolute paths with --report-full-paths)
     "settings": {...PipelineConfig as plain values...,   # regions: null (see "regions")
                  "detector": {"name", "threshold", "centerface_every", "precision", "runtime"}},
     "versions": {"python", "av", "ffmpeg", "mediapipe", "opencv", "numpy"},
     "models": {file name: sha256},   # the model files the run's detector loaded
     "summary": {"frames", "faces_detected", "faces_carried", "frames_with_faces",
                 "frames_obscured_whole", "seconds", "fps"},
     "frames": [{"index": int, "time_s": float | null, "obscured_whole": bool,
                 "faces": [{"box": [x1, y1, x2, y2],      # detector box, pixels
                            "region": [x1, y1, x2, y2],   # destroyed pixels, int, x2/y2 exclusive
                            "score": float, "track": int,
                            "source": "detected" | "carried" | "region",
                            "region_id": str}]}]},   # region_id: only for "region"
     "regions": null | {"schema_version": 1, "apply_exclusions": bool,
                 "regions": [{"id", "kind", "start", "end", "applied": bool, "frames": int,
                              "first_frame": int | null, "last_frame": int | null}],
                 "excluded_boxes": [{"frame", "region", "box", "score"}]}
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

from . import __version__
from .io.atomic import write_atomically
from .urls import mask_url
from .runstats import FrameRecord, RunStats
from .regions import REGION_TRACK_BASE, RegionPass

SCHEMA_VERSION = 1


class ReportBuilder:
    """Collects FrameRecords (pass ``add`` as the pipeline's ``on_frame``).
    ``region_ids``: the ids of the run's manual regions, to name their boxes."""

    def __init__(self, region_ids: tuple[str, ...] = ()) -> None:
        self.frames: list[dict] = []
        self.region_ids = region_ids

    def add(self, record: FrameRecord) -> None:
        f = record.faces
        faces = []
        for i in range(len(f)):
            track = int(f.track_id[i])
            face = {"box": [round(v, 1) for v in f.xyxy[i].tolist()],
                    "region": record.regions[i].tolist() if i < len(record.regions) else None,
                    "score": round(float(f.score[i]), 3), "track": track,
                    "source": "carried" if f.carried[i] else "detected"}
            if track <= REGION_TRACK_BASE:  # a manual region's box (regions.RegionPass)
                face.update(track=-1, source="region", region_id=self.region_ids[REGION_TRACK_BASE - track])
            faces.append(face)
        self.frames.append({"index": record.index,
                            "time_s": None if record.time_s is None else round(record.time_s, 6),
                            "obscured_whole": record.obscured_whole, "faces": faces})

    def build(self, *, input_path, output_path, settings: dict, stats: RunStats,
              full_paths: bool = False, regions: RegionPass | None = None) -> dict:
        """The report. ``settings``: the run's settings as plain JSON values,
        ``{"config": {...}, "models": {file name: sha256}}``
        (:func:`blurcam.pipeline.settings_record`). ``input``/``output`` are the files'
        base names: a report is shared with editors, and a full path shows the user's home
        and folder names. With ``full_paths`` they are absolute paths."""
        return {
            "schema": SCHEMA_VERSION,
            "blurcam": __version__,
            "input": report_name(input_path, full_paths),
            "output": report_name(output_path, full_paths),
            "settings": settings["config"],
            "versions": versions(),
            "models": settings["models"],
            "summary": {
                "frames": stats.frames,
                "faces_detected": stats.faces_detected,
                "faces_carried": stats.faces_carried,
                "frames_with_faces": sum(1 for fr in self.frames if fr["faces"]),
                "frames_obscured_whole": stats.frames_obscured_whole,
                "seconds": round(stats.seconds, 3),
                "fps": round(stats.fps, 2),
            },
            "regions": None if regions is None else regions.tally.to_json(regions.regions, regions.apply_exclusions),
            "frames": self.frames,
        }


def report_name(path: str | Path, full_path: bool = False) -> str:
    """How a report names a file: its base name, or its absolute path with ``full_path``
    (URLs keep their address, masked)."""
    text = str(path)
    if "://" in text:
        return mask_url(text)
    return str(Path(path).absolute()) if full_path else Path(path).name


def versions() -> dict[str, str]:
    import av
    import cv2
    import mediapipe
    import numpy

    return {"python": platform.python_version(), "av": av.__version__,
            "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
            "mediapipe": getattr(mediapipe, "__version__", "?"), "opencv": cv2.__version__,
            "numpy": numpy.__version__}


def write_report(path: str | Path, report: dict, *, overwrite: bool = False) -> None:
    """Write ``report`` as JSON, atomically: complete or absent (DiskFullError, SinkError)."""
    write_atomically(Path(path), json.dumps(report, indent=1).encode(), overwrite=overwrite)
