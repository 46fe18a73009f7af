"""The review desk's files and jobs: what each file is, where its work lives, and the
render + verify job that runs in a child process (so the page stays responsive and a
job goes on whatever the page does).

    Desk(workdir, roots)        the session: items, one job at a time, FIFO
    desk.add_path(path)         a file the user named (never written to)
    await desk.add_upload(name, chunks)    an upload, kept only in the private workdir
    desk.set_regions(item_id, doc)  the file's regions (blurcam.regions schema)
    desk.start(item_id, preset) queue render + verify with them
    desk.export(item_id, path, overwrite)  copy output, report, regions, verify JSON

Per item, in ``workdir/items/<id>/``: ``NAME.blurred.EXT`` (the redacted output),
``.report.json``, ``.regions.json`` (beside the output, as blurcam blur reads it),
``.verify.json`` and ``.sheet.png`` (made from OUTPUT pixels only). Uploads are in
``workdir/uploads/<id>/``. The workdir is 0700 and removed when the desk closes.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...detect import DEFAULT_LIVE_PRESET, PRESETS as DETECTOR_PRESETS
from ...errors import BlurcamError, OutputExistsError, SinkError, UsageError
from ...io.atomic import copy_atomically, refuse_same_file, write_atomically
from ...io.media import MEDIA_EXTENSIONS, frame_count, is_image_path, is_media_path
from ...regions import parse_regions

log = logging.getLogger(__name__)

# The desk redacts files: every preset but the live one, in detect.PRESETS's order.
PRESETS = tuple(name for name in DETECTOR_PRESETS if name != DEFAULT_LIVE_PRESET)
MANIFEST_MAX_BYTES = 32 * 2**20  # a folder run's manifest the desk reads (about 100 000 files)
RUNS_FRESH_S = 2.0  # a folder run's state is read again at least this often


class UploadTooLarge(UsageError):
    """An upload over the desk's limit (the server answers 413)."""


@dataclass
class Item:
    """One file on the desk. state: added, queued, rendering, verifying, done, failed."""

    id: str
    name: str
    source: Path
    uploaded: bool
    folder: str = ""
    state: str = "added"
    phase_done: int = 0
    phase_total: int | None = None
    progress: float = 0.0
    error: str | None = None
    preset: str = "balanced"
    renders: int = 0
    regions: dict = field(default_factory=lambda: {"schema": "blurcam-regions", "version": 1, "regions": []})
    verify: dict | None = None
    summary: dict | None = None
    exported: list[str] = field(default_factory=list)
    regions_from: str | None = None  # regions picked up from a file kept in an earlier session
    kept_regions: set[str] = field(default_factory=set)  # regions files keep_regions wrote
    updated_s: float = field(default_factory=time.time)

    @property
    def is_image(self) -> bool:
        return is_image_path(self.source)

    def public(self, full: bool = False) -> dict:
        """What the page sees (no path of an upload: it is private). ``full`` adds the
        regions, verify findings and per-frame summary; polls get the short form."""
        short = {"id": self.id, "name": self.name, "folder": self.folder, "uploaded": self.uploaded,
                "image": self.is_image, "state": self.state, "progress": round(self.progress, 4),
                "phase_done": self.phase_done, "phase_total": self.phase_total, "error": self.error,
                "preset": self.preset, "renders": self.renders, "exported": self.exported,
                "regions_from": self.regions_from,
                "source": None if self.uploaded else str(self.source)}
        if full:
            short.update(regions=self.regions, verify=self.verify, summary=self.summary)
        return short


class Desk:
    """The session's items and its job runner (one child process at a time)."""

    def __init__(self, workdir: Path, roots: list[Path], *, max_upload_bytes: int) -> None:
        self.workdir, self.roots, self.max_upload_bytes = workdir, roots, max_upload_bytes
        self.items: dict[str, Item] = {}
        self._runs: dict[Path, tuple] = {}  # folder -> (manifest stamp, read at, folder_runs row)
        self.lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._process = None
        # OpenCV's import puts its own folder first on sys.path for a moment, and a process
        # spawned then copies that sys.path: its `import typing` finds cv2/typing and the
        # job dies at start ("the job stopped unexpectedly"). So cv2 is imported before the
        # runner thread can spawn a worker while another thread imports it.
        import cv2  # noqa: F401

        self._runner = threading.Thread(target=self._run, name="blurcam-review-jobs", daemon=True)
        self._runner.start()

    # files -----------------------------------------------------------------------

    def add_path(self, path: Path, folder: str = "") -> Item:
        path = path.resolve()
        item = Item(secrets.token_hex(6), path.name, path, uploaded=False, folder=folder)
        with self.lock:
            self.items[item.id] = item
        self.pick_up_regions(item)
        return item

    async def add_upload(self, name: str, chunks, declared_bytes: int | None = None) -> Item:
        """Store an upload (an async iterable of byte chunks) in the private workdir.
        The original never goes anywhere else; a too-large upload is removed as it fails."""
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(name).name).lstrip(".") or "upload"
        if not is_media_path(safe):
            raise UsageError(f"{safe}: not a video or image blurcam reads ({', '.join(MEDIA_EXTENSIONS)})")
        too_large = UploadTooLarge(f"{safe}: larger than the upload limit ({self.max_upload_bytes // 2**20} MiB)")
        if declared_bytes is not None and declared_bytes > self.max_upload_bytes:
            raise too_large
        item_id = secrets.token_hex(6)
        folder = self.workdir / "uploads" / item_id
        folder.mkdir(parents=True, mode=0o700)
        path = folder / safe
        size = 0
        try:
            with open(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_upload_bytes:
                        raise too_large
                    f.write(chunk)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if size == 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise UsageError(f"{safe}: empty file")
        item = Item(item_id, safe, path, uploaded=True)
        with self.lock:
            self.items[item.id] = item
        return item

    def get(self, item_id: str) -> Item:
        with self.lock:
            item = self.items.get(item_id)
        if item is None:
            raise KeyError(item_id)
        return item

    def folder_of(self, item: Item) -> Path:
        folder = self.workdir / "items" / item.id
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def output_of(self, item: Item) -> Path:
        return self.folder_of(item) / output_name(item.source)

    def default_export(self, item: Item) -> str:
        """Where the page proposes to export: beside the input, or in the first folder
        exports may go to (uploads)."""
        name = output_name(item.source)
        folder = item.source.parent if not item.uploaded and self.inside_roots(item.source.parent) else self.roots[0]
        return str(folder / name)

    def sidecar(self, item: Item, kind: str) -> Path:
        """``report.json``, ``regions.json``, ``verify.json`` or ``sheet.png`` beside the output."""
        out = self.output_of(item)
        return out.with_name(f"{out.stem}.{kind}")

    # folder runs -----------------------------------------------------------------

    def folder_runs(self) -> list[dict]:
        """The folder runs among the folders given: each folder holding a
        ``blurcam-manifest.json`` (a ``blurcam blur IN_DIR OUT_DIR`` output folder), with
        the manifest's files and their state: done, failed, not yet (planned, or stopped
        mid-run), or ``changed`` (done, but the output is gone or not the size recorded).
        Read only, again when the manifest changed or after ``RUNS_FRESH_S`` (a run may be
        going on, an output removed); nothing outside the folders given."""
        from ..batch import MANIFEST_NAME

        runs = []
        for root in self.roots:
            path = root / MANIFEST_NAME
            try:
                st = path.stat()
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._runs.get(root)
            if cached is None or cached[0] != stamp or time.monotonic() - cached[1] > RUNS_FRESH_S:
                cached = self._runs[root] = (stamp, time.monotonic(), self._read_run(root))
            runs.append(cached[2])
        return runs

    def _read_run(self, root: Path) -> dict:
        from ..batch import MANIFEST_NAME, Manifest
        from ...errors import ManifestError

        try:
            if (root / MANIFEST_NAME).stat().st_size > MANIFEST_MAX_BYTES:
                raise ManifestError(f"{MANIFEST_NAME}: larger than {MANIFEST_MAX_BYTES // 2**20} MiB, not read")
            files = Manifest(root).files
        except (ManifestError, OSError) as exc:
            return {"folder": str(root), "files": [], "error": str(exc)}
        rows = []
        for key, rec in sorted(files.items()):
            output = (root / key).resolve()
            if not output.is_relative_to(root):  # a hand-edited key like ../x: not looked at
                continue
            state = {"done": "done", "failed": "failed"}.get(rec.get("state"), "not yet")
            if state == "done":
                try:
                    if output.stat().st_size != rec.get("output_size"):
                        state = "changed"
                except OSError:
                    state = "changed"
            rows.append({"key": key, "source": rec.get("source", ""), "state": state,
                         "frames": rec.get("frames"), "faces": rec.get("faces"), "finished": rec.get("finished")})
        return {"folder": str(root), "files": rows, "error": None}

    def run_states(self, runs: list[dict]) -> dict[str, str]:
        """item id -> "STATE in the folder run OUT": for each file on the desk that is an
        input (its path under a folder given, as the manifest's source) or an output
        (under the run's folder, as its key) of a folder run."""
        found = {}
        with self.lock:
            items = [item for item in self.items.values() if not item.uploaded]
        for run in runs:
            folder = Path(run["folder"])
            by_key = {row["key"]: row["state"] for row in run["files"]}
            by_source = {row["source"]: row["state"] for row in run["files"]}
            for item in items:
                if item.source.is_relative_to(folder):
                    state = by_key.get(item.source.relative_to(folder).as_posix())
                    role = "output"
                else:
                    state = next((by_source[rel] for root in self.roots if root != folder
                                  and item.source.is_relative_to(root)
                                  and (rel := item.source.relative_to(root).as_posix()) in by_source), None)
                    role = "input"
                if state is not None:
                    found[item.id] = f"{role} of the folder run {folder.name}: {state}"
        return found

    # jobs ------------------------------------------------------------------------

    def set_regions(self, item_id: str, doc: dict) -> Item:
        parse_regions(doc, "regions")  # RegionsError (a UsageError) for a bad document
        item = self.get(item_id)
        with self.lock:
            # kept in memory: a reload gets them back; the regions.json sidecar stays the last
            # render's (so an export's regions rebuild its video); keep_regions writes them out
            item.regions = doc
        return item

    def start(self, item_id: str, preset: str) -> Item:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        item = self.get(item_id)
        with self.lock:
            if item.state in ("queued", "rendering", "verifying"):
                return item
            item.state, item.preset, item.error, item.progress = "queued", preset, None, 0.0
            item.phase_done, item.phase_total = 0, None
        self._queue.put(item.id)
        return item

    def _run(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        worker = _Worker(ctx)  # started now: it loads its models while the user adds files
        try:
            while not self._stop.is_set():
                try:
                    item_id = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                item = self.get(item_id)
                if not worker.process.is_alive():
                    worker = _Worker(ctx)
                try:
                    self._run_one(worker, item)
                except Exception as exc:  # never leave the runner dead and the file "queued"
                    log.exception("review job failed")
                    self._update(item, ("error", f"internal error: {type(exc).__name__}: {exc}"))
                finally:
                    worker.stop()
                if not self._stop.is_set():
                    worker = _Worker(ctx)  # the next job's process, warmed while the desk is idle
        finally:
            worker.stop()

    def _run_one(self, worker: "_Worker", item: Item) -> None:
        regions_path = self.sidecar(item, "regions.json")
        regions_path.write_text(json.dumps(item.regions, indent=1))
        spec = {"input": str(item.source), "output": str(self.output_of(item)),
                "report": str(self.sidecar(item, "report.json")), "regions": str(regions_path),
                "verify": str(self.sidecar(item, "verify.json")), "sheet": str(self.sidecar(item, "sheet.png")),
                "preset": item.preset}
        with self.lock:
            item.state = "rendering"
        self._process = worker.process
        worker.jobs.put(spec)
        finished = False
        while not finished and not self._stop.is_set():
            try:
                message = worker.messages.get(timeout=0.2)
            except queue.Empty:
                if not worker.process.is_alive() and worker.messages.empty():
                    self._update(item, ("error", "the job stopped unexpectedly"))
                    finished = True
                continue
            if message[0] != "ready":
                finished = self._update(item, message)
        self._process = None

    def _update(self, item: Item, message: tuple) -> bool:
        kind = message[0]
        with self.lock:
            item.updated_s = time.time()
            if kind in ("render", "verify"):
                _, done, total = message
                item.state, item.phase_done, item.phase_total = ("rendering" if kind == "render" else "verifying",
                                                                 done, total)
                share = done / total if total else 0.0
                # rendering is most of the work; verify costs about what the blur did
                item.progress = 0.5 * min(share, 1.0) + (0.5 if kind == "verify" else 0.0)
                return False
            if kind == "done":
                item.state, item.progress, item.renders = "done", 1.0, item.renders + 1
                item.verify, item.summary = message[1], message[2]
                return True
            item.state, item.error = "failed", message[1]
            return True

    def close(self) -> None:
        self._stop.set()
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(timeout=5)
        self._runner.join(timeout=10)

    # export ----------------------------------------------------------------------

    def inside_roots(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def _export_path(self, item: Item, target: str, suffix: str) -> Path:
        """``target`` as a path the desk may write: inside the folders given, ending in
        ``suffix``, not any input."""
        if not target or not target.strip():
            raise UsageError("give a file name to export to")
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = self.roots[0] / path
        path = path.parent.resolve() / path.name
        if not self.inside_roots(path):
            raise UsageError(f"{path}: outside the folders this desk may write to "
                             f"({', '.join(map(str, self.roots))})")
        if path.suffix.lower() != suffix.lower():
            raise UsageError(f"{path.name}: must end in {suffix} (the output's format)")
        with self.lock:
            inputs = [each.source for each in self.items.values()]
        for source in inputs:
            refuse_same_file(source, path, "export")
        return path

    def keep_regions(self, item_id: str, target: str, overwrite: bool) -> Path:
        """Write the item's regions now as ``TARGET_STEM.regions.json`` beside the export
        target ``target`` (the user's action: the desk writes nothing outside its private
        folder by itself). A desk started later over the same input picks them up when
        the target is the default one (:meth:`pick_up_regions`). Returns the path."""
        item = self.get(item_id)
        path = self._export_path(item, target, self.output_of(item).suffix)
        path = path.with_name(f"{path.stem}.regions.json")
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path}: already exists")
        if not path.parent.is_dir():
            raise SinkError(f"{path.parent}: folder does not exist")
        with self.lock:
            doc = json.dumps(item.regions, indent=1).encode()
        write_atomically(path, doc, overwrite=True)
        with self.lock:
            item.kept_regions.add(str(path))
        return path

    def pick_up_regions(self, item: Item) -> Path | None:
        """Load the regions kept beside the item's default export (by Export or
        :meth:`keep_regions` in an earlier session), if there are valid ones."""
        path = Path(self.default_export(item))
        path = path.with_name(f"{path.stem}.regions.json")
        try:
            doc = json.loads(path.read_text())
            parse_regions(doc, str(path))
        except (OSError, ValueError, BlurcamError) as exc:
            if path.exists():
                log.warning("%s: not picked up: %s", path, exc)
            return None
        with self.lock:
            item.regions, item.regions_from = doc, str(path)
        return path

    def export(self, item_id: str, target: str, overwrite: bool) -> list[Path]:
        """Copy the output and its sidecars (report, regions, verify JSON) to ``target``.
        ``target`` must be inside the folders given, not any input, and not an existing
        file unless ``overwrite``. Returns the paths written."""
        item = self.get(item_id)
        if item.state != "done":
            raise UsageError(f"{item.name}: not rendered yet")
        path = self._export_path(item, target, self.output_of(item).suffix)
        output = self.output_of(item)
        sidecars = {kind: path.with_name(f"{path.stem}.{kind}") for kind in ("report.json", "regions.json",
                                                                             "verify.json")}
        if not overwrite:
            for each in (path, *sidecars.values()):
                if each.exists() and str(each) not in item.kept_regions:  # kept by this desk a moment ago
                    raise OutputExistsError(f"{each}: already exists")
        if not path.parent.is_dir():
            raise SinkError(f"{path.parent}: folder does not exist")
        written = []
        for src, dst in [(output, path)] + [(self.sidecar(item, kind), dst) for kind, dst in sidecars.items()]:
            if not src.exists():
                continue
            copy_atomically(src, dst, overwrite=overwrite or str(dst) in item.kept_regions)
            written.append(dst)
        with self.lock:
            item.exported.append(str(path))
        return written


class _Worker:
    """One child process that loads the models now and then runs one job (``jobs.put(spec)``).
    The desk keeps one started while it is idle, so a job's progress starts moving at once
    instead of after the child's start-up (seconds on a busy laptop)."""

    def __init__(self, ctx) -> None:
        self.jobs, self.messages = ctx.Queue(), ctx.Queue()
        self.process = ctx.Process(target=serve_one_job, args=(self.jobs, self.messages),
                                   name="blurcam-review-job", daemon=True)
        self.process.start()

    def stop(self) -> None:
        if self.process.is_alive():
            self.jobs.put(None)  # an idle worker leaves by itself
            self.process.join(timeout=1)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)


def serve_one_job(jobs, messages) -> None:
    """A worker process: warm up (imports, a detector of each preset built and run once on
    a blank frame, so libraries and model files are loaded), say ("ready",), then run the
    one job it is given (see :func:`work`); None instead of a job: leave."""
    import signal

    from ...quiet import separate_python_stderr

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the desk, and the desk stops this job
    separate_python_stderr()  # MediaPipe's native log lines stay off the desk's terminal (blurcam.quiet)
    try:
        import numpy as np

        from ... import pipeline  # noqa: F401  (the job's imports, loaded before it is asked for)
        from .. import verify  # noqa: F401
        from ...detect import make_detector

        for preset in PRESETS:
            detector = make_detector(preset)
            try:
                detector.detect(np.zeros((360, 640, 3), np.uint8), 0)
            finally:
                detector.close()
    except Exception:  # the job itself will say what is wrong
        log.debug("warm-up failed", exc_info=True)
    messages.put(("ready",))
    spec = jobs.get()
    if spec is not None:
        work(spec, messages)


def output_name(source: Path) -> str:
    """NAME.blurred.EXT, as blurcam blur names it by default."""
    from ...pipeline import default_output_path

    return default_output_path(source).name


def work(spec: dict, messages) -> None:
    """The job, in a child process: render (with the regions file), then verify the
    output against the input; progress at most 4 times a second, then ("done",
    verify findings, per-frame summary) or ("error", one line)."""
    import logging as _logging

    from ...errors import BlurcamError as _BlurcamError
    from ...detect import DetectorConfig
    from ...pipeline import PipelineConfig, redact_path
    from ...regions import load_regions
    from ...io.atomic import write_atomically
    from ..verify import VerifyConfig, verify_pair
    from ..verify.run import json_bytes, sheet_png

    _logging.basicConfig(level=_logging.ERROR)
    last = [0.0]

    def tell(kind: str, done: int, total: int | None, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last[0] >= 0.25:
            last[0] = now
            messages.put((kind, done, total))

    try:
        total = frame_count(spec["input"])
        regions = load_regions(spec["regions"])
        config = PipelineConfig(detector=DetectorConfig(name=spec["preset"]), regions=regions if len(regions) else None,
                                apply_exclusions=not regions.face.all() if len(regions) else False)
        done = [0]

        def each(record) -> None:
            done[0] += 1
            tell("render", done[0], total)

        tell("render", 0, total, force=True)
        redact_path(spec["input"], spec["output"], config, overwrite=True, report=spec["report"], on_frame=each)
        tell("verify", 0, total, force=True)
        verify_config = VerifyConfig()
        result, collected = verify_pair(spec["input"], spec["output"], verify_config, blur_preset=spec["preset"],
                                        on_progress=lambda d, t: tell("verify", d, t))
        image, tiles = collected.render(result)
        findings = result.to_json(verify_config, sheet=tiles)
        write_atomically(Path(spec["sheet"]), sheet_png(image), overwrite=True)
        write_atomically(Path(spec["verify"]), json_bytes(findings), overwrite=True)
        messages.put(("done", findings, summarize(json.loads(Path(spec["report"]).read_text()),
                                                  *_stored_geometry(spec["output"]))))
    except _BlurcamError as exc:
        messages.put(("error", str(exc)))
    except Exception as exc:  # a bug: say what, in one line
        messages.put(("error", f"internal error: {type(exc).__name__}: {exc}"))


def summarize(report: dict, stored_wh: tuple[int, int] | None = None, rotation_deg: int = 0) -> dict:
    """What the page draws from a --report: per frame its time from the first frame
    and boxes [x1, y1, x2, y2, score, track, source] in pixels of the picture as
    displayed (the report's are stored-frame pixels; ``rotation_deg`` and the stored
    (width, height) map them), faces per second of video, and origin_s, the first
    frame's timestamp (a player's clock starts there, regions at 0)."""
    import numpy as np

    from ...view import boxes_to_stored, quarter_turns

    k = quarter_turns(rotation_deg) if stored_wh else 0
    display_wh = stored_wh if k % 2 == 0 else stored_wh[::-1]
    frames, per_second = [], {}
    for fr in report["frames"]:
        t = fr["time_s"] or 0.0
        xyxy = np.array([f["box"] for f in fr["faces"]], np.float32).reshape(-1, 4)
        if k:  # the stored frame is the displayed one turned back: the same map, the other way
            xyxy = boxes_to_stored(xyxy, (4 - k) % 4, display_wh)
        boxes = [[*(round(float(v), 1) for v in box), f["score"], f["track"], f["source"]]
                 for box, f in zip(xyxy, fr["faces"])]
        frames.append({"t": t, "boxes": boxes, "whole": fr["obscured_whole"]})
        second = int(t - (report["frames"][0]["time_s"] or 0.0))
        per_second[second] = max(per_second.get(second, 0), len(boxes))
    origin = frames[0]["t"] if frames else 0.0
    for fr in frames:
        fr["t"] = round(fr["t"] - origin, 6)
    seconds = max(per_second) + 1 if per_second else 0
    regions = report.get("regions") or {}
    return {"frames": frames, "origin_s": origin, "faces_per_second": [per_second.get(s, 0) for s in range(seconds)],
            "stats": report["summary"], "regions": regions.get("regions", []),
            "excluded": regions.get("excluded_boxes", [])}


def _stored_geometry(path: str) -> tuple[tuple[int, int] | None, int]:
    """((width, height) as stored, display rotation in degrees) of a video's first
    frame; (None, 0) for an image or what cannot be read."""
    if is_image_path(path):
        return None, 0
    import av

    try:
        with av.open(path) as c:
            frame = next(c.decode(video=0))
            return (frame.width, frame.height), int(round(frame.rotation or 0))
    except Exception:  # the boxes are then drawn as stored
        return None, 0
