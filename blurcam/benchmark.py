"""End-to-end speed on one clip: the transcode floor, blurcam per preset, deface if installed.

The floor is the video itself: decode and re-encode the same file with the same
encoder settings and nothing else. blurcam's cost is reported as a ratio to it.
Each measurement runs in its own subprocess, so peak RSS is that run's own and one
run's warm caches do not help the next.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av


@dataclass
class Measurement:
    """One run: frames written, wall seconds of the job itself, the process's peak RSS.

    startup_s: of ``seconds``, the time outside the frame loop: imports and model
        loading before it, closing the output after it; None when unknown (deface).
    cpu_s: CPU seconds of the process, all threads, user + system (0 when unknown).
    """

    name: str
    frames: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    error: str = ""
    startup_s: float | None = None
    cpu_s: float = 0.0

    @property
    def fps(self) -> float:
        """Frames per second of the whole job, startup included: what a user waits for."""
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def running_fps(self) -> float:
        """Frames per second once started: the rate a long video approaches."""
        running = self.seconds - (self.startup_s or 0.0)
        return self.frames / running if running > 0 else 0.0

    @property
    def cpu_ms_per_frame(self) -> float:
        """CPU time per frame, all threads: steadier than fps on a shared machine."""
        return self.cpu_s / self.frames * 1000 if self.frames else 0.0


def transcode_floor(src: str, *, crf: int = 18, preset: str = "veryfast") -> int:
    """Decode and re-encode ``src`` with blurcam's encoder settings; nothing else. Returns frames.

    The packets go to FFmpeg's null muxer: this copy of the footage is not redacted, so it
    is never written anywhere.
    """
    with av.open(src) as inp, av.open(os.devnull, "w", format="null") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vs = out.add_stream("libx264", rate=vin.average_rate or 30)
        vs.width, vs.height, vs.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vs.time_base = vs.codec_context.time_base = vin.time_base
        vs.codec_context.options = {"crf": str(crf), "preset": preset}
        frames = 0
        for frame in inp.decode(vin):
            if frame.format.name != "yuv420p":
                frame = frame.reformat(format="yuv420p")
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in vs.encode(frame):
                out.mux(packet)
            frames += 1
        for packet in vs.encode(None):
            out.mux(packet)
    return frames


def child_main(argv: list[str]) -> None:
    """Entry point of one measurement subprocess: ``KIND SRC DST [CONFIG_JSON]``; prints JSON."""
    from .memory import tune_allocator

    tune_allocator()  # as the CLI does
    kind, src, dst = argv[:3]
    started, cpu_started = time.perf_counter(), _cpu_s()
    if kind == "floor":
        frames, startup = transcode_floor(src), 0.0
    elif kind == "blurcam":
        from .detect import DetectorConfig
        from .pipeline import PipelineConfig, redact_file

        settings = json.loads(argv[3])  # bench_settings()
        detector = DetectorConfig(name=settings.pop("detector"), **settings)
        stats = redact_file(src, dst, PipelineConfig(detector=detector), overwrite=True)
        frames, startup = stats.frames, max(0.0, time.perf_counter() - started - stats.seconds)
    else:
        raise SystemExit(f"unknown measurement {kind!r}")
    seconds = time.perf_counter() - started
    print(json.dumps({"frames": frames, "seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
                      "startup_s": startup, "cpu_s": _cpu_s() - cpu_started}))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    """This process's peak RSS. /proc's VmHWM is per address space; getrusage's
    ru_maxrss is not (Linux carries it across exec from the parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS, kB on Linux


def _run_child(name: str, argv: list[str], timeout_s: float, tree: str | Path | None = None) -> Measurement:
    """Run one measurement subprocess; ``tree``: import blurcam from this checkout instead."""
    env = cwd = None
    if tree is not None:  # ``python -m`` puts the working directory first on sys.path
        cwd = Path(tree).resolve()
        env = {**os.environ, "PYTHONPATH": str(cwd)}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        return Measurement(name, error=f"timed out after {timeout_s:.0f} s")
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return Measurement(name, error=lines[-1] if lines else f"exit {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return Measurement(name, result["frames"], result["seconds"], result["peak_rss_mb"],
                       startup_s=result.get("startup_s"), cpu_s=result.get("cpu_s", 0.0))


def _deface_run(src: str, dst: str, timeout_s: float, exe: str | None = None) -> Measurement:
    """deface on the same clip with its default detection settings and our encoder
    settings, if its command is installed (``exe``, or ``deface`` on PATH)."""
    exe = exe or shutil.which("deface")
    if exe is None:
        return Measurement("deface", error="not installed")
    # The wrapper's own RSS is tiny; RUSAGE_CHILDREN then reports deface's peak.
    script = ("import json,resource,subprocess,sys,time;t=time.perf_counter();"
              "r=subprocess.run(sys.argv[1:],capture_output=True);"
              "s=time.perf_counter()-t;"
              "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
              "print(json.dumps({'rc':r.returncode,'seconds':s,'peak_rss_mb':u.ru_maxrss/1024,"
              "'cpu_s':u.ru_utime+u.ru_stime}))")
    encoder = json.dumps({"codec": "libx264", "output_params": ["-crf", "18", "-preset", "veryfast"]})
    try:
        proc = subprocess.run([sys.executable, "-S", "-c", script, exe, src, "-o", dst, "--ffmpeg-config", encoder],
                              capture_output=True, text=True, timeout=timeout_s)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return Measurement("deface", error="failed or timed out")
    if result["rc"] != 0:
        return Measurement("deface", error=f"exit {result['rc']}")
    with av.open(dst) as c:
        frames = c.streams.video[0].frames or sum(1 for _ in c.decode(video=0))
    return Measurement("deface", frames, result["seconds"], result["peak_rss_mb"], cpu_s=result["cpu_s"])


def bench_settings(spec: str) -> dict:
    """A measurement child's settings for the preset ``spec``, ``NAME[:K][@PRECISION[/RUNTIME]]``
    (see :func:`run_benchmark`), as JSON values: {"detector", "centerface_every", and
    "precision", "runtime" when given}, the same keys for an earlier checkout's child.
    Raises UsageError for an unknown preset, precision or runtime."""
    from .detect import PRESETS, DetectorConfig
    from .errors import UsageError

    head, _, inference = spec.partition("@")  # "live@fp32", "balanced@int8/openvino"
    preset, _, every = head.partition(":")  # "balanced:1" = CenterFace on every frame
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {spec!r}; choose from {', '.join(PRESETS)}")
    if every and not (every.isdigit() and int(every) >= 1):
        raise UsageError(f"{spec!r}: CenterFace cadence must be a whole number >= 1, got {every!r}")
    precision, _, runtime = inference.partition("/")
    settings = {"detector": preset, "centerface_every": int(every) if every else None}
    settings.update({k: v for k, v in (("precision", precision), ("runtime", runtime)) if v})
    DetectorConfig(name=preset, **{k: v for k, v in settings.items() if k != "detector"})  # checks them
    return settings


def run_benchmark(clip: str | Path, presets: list[str], *, include_deface: bool = True,
                  deface_exe: str | None = None, timeout_s: float = 1800,
                  before: str | Path | None = None) -> list[Measurement]:
    """Measure the floor, each preset and (optionally) deface on ``clip``, one after another.
    A preset may be given as ``NAME:K`` to run CenterFace on every K-th frame, and
    followed by ``@PRECISION`` or ``@PRECISION/RUNTIME`` (``balanced@fp32``,
    ``live@int8/openvino``) to choose CenterFace's model and runtime.
    ``before``: a checkout of an earlier blurcam; each preset is also run from it (rows
    named "before: ..."), so a change is measured before and after in one run."""
    clip = str(Path(clip).resolve())
    results = []
    # The temporary folder only ever holds blurcam's redacted outputs, and deface's when asked
    # for; the floor's unredacted re-encode goes to the null muxer.
    with tempfile.TemporaryDirectory(prefix="blurcam-bench-") as tmp:
        child = [sys.executable, "-m", "blurcam.benchmark"]
        results.append(_run_child("transcode floor", [*child, "floor", clip, os.devnull], timeout_s))
        for i, spec in enumerate(presets):
            settings = bench_settings(spec)
            config = json.dumps(settings)
            every, inference = settings["centerface_every"], spec.partition("@")[2]
            name = (f"blurcam {settings['detector']}" + (f" (CenterFace every {every})" if every else "")
                    + (f" {inference}" if inference else ""))
            if before is not None:
                results.append(_run_child(f"before: {name}", [*child, "blurcam", clip, f"{tmp}/b{i}.mp4", config],
                                          timeout_s, before))
            results.append(_run_child(name, [*child, "blurcam", clip, f"{tmp}/{i}.mp4", config], timeout_s))
        if include_deface:
            results.append(_deface_run(clip, f"{tmp}/deface.mp4", timeout_s, deface_exe))
    return results


def format_table(results: list[Measurement]) -> str:
    """Markdown table: fps (whole job) and its ratio to the floor and to deface, startup,
    fps once started, CPU ms per frame, peak RSS."""
    floor = next((m for m in results if m.name == "transcode floor" and not m.error), None)
    deface = next((m for m in results if m.name == "deface" and not m.error and m.fps), None)
    rows = ["| run | frames | fps | x floor | x deface | startup s | fps after startup | CPU ms/frame | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for m in results:
        if m.error:
            rows.append(f"| {m.name} | - | - | - | - | - | - | - | {m.error} |")
            continue
        ratio_floor = f"{m.fps / floor.fps:.2f}" if floor else "-"
        ratio_deface = f"{m.fps / deface.fps:.1f}" if deface else "-"
        startup = "-" if m.startup_s is None else f"{m.startup_s:.2f}"
        running = "-" if m.startup_s is None else f"{m.running_fps:.1f}"
        cpu = f"{m.cpu_ms_per_frame:.1f}" if m.cpu_s else "-"
        rows.append(f"| {m.name} | {m.frames} | {m.fps:.1f} | {ratio_floor} | {ratio_deface} | {startup} | {running} "
                    f"| {cpu} | {m.peak_rss_mb:.0f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    child_main(sys.argv[1:])


def sample_clip(dst: str | Path, *, size_wh: tuple[int, int] = (1280, 720), frames: int = 300) -> Path:
    """The default benchmark clip: samples/faces.mp4 scaled to ``size_wh`` and played
    forwards and backwards to ``frames`` frames (30 fps, H.264 + AAC-free)."""
    import cv2

    from .synth import write_clip

    src = next((p for p in (Path(__file__).resolve().parent / "samples" / "faces.mp4",
                            Path(__file__).resolve().parent.parent / "samples" / "faces.mp4") if p.exists()), None)
    if src is None:
        raise FileNotFoundError("samples/faces.mp4 is not installed with blurcam")
    with av.open(str(src)) as c:
        base = [cv2.resize(f.to_ndarray(format="rgb24"), size_wh, interpolation=cv2.INTER_CUBIC)
                for f in c.decode(video=0)]
    loop = base + base[::-1]
    write_clip(dst, (loop[i % len(loop)] for i in range(frames)), fps=30, audio=False, crf=20)
    return Path(dst)


CROWD_SPARSE_FACES = 40  # people kept in the sparse clip (~10 in each frame): the same scene, size, length, camera


def crowd_clip(dst: str | Path, *, size_wh: tuple[int, int] = (1280, 720), frames: int = 90,
               faces: int | None = None, seed: int = 7) -> Path:
    """A crowd clip every reader can make: :func:`blurcam.synth.crowd` (about 1,100
    lfw_subset faces 12-60 px tall on scikit-image's ``rocket``) filmed by a panning,
    zooming camera (:func:`blurcam.synth.film`), 30 fps, H.264, no audio. ``faces``:
    keep only that many people (a sparse clip of the same scene). Writes the exact face
    boxes of every frame beside it, as ``DST.gt.json`` in mkclip.py's format:
    ``{"size": [W, H], "fps": 30, "frames": [[[x1, y1, x2, y2, share inside], ...], ...]}``."""
    from .synth import crowd, film, write_clip

    dst = Path(dst)
    scene = crowd(size_wh, faces=faces, seed=seed)
    boxes = []

    def frames_of():
        for frame, gt in film(scene, size_wh, frames):
            boxes.append(gt.round(2).tolist())
            yield frame

    write_clip(dst, frames_of(), fps=30, audio=False, crf=20)
    gt_path = dst.with_name(dst.name.rsplit(".", 1)[0] + ".gt.json")
    gt_path.write_text(json.dumps({"size": list(size_wh), "fps": 30, "frames": boxes}))
    return dst


def crowd_ratio(sparse: list[Measurement], dense: list[Measurement]) -> str:
    """One line per run measured on both: CPU ms per frame, dense over sparse."""
    lines = []
    for d in dense:
        s = next((m for m in sparse if m.name == d.name and not m.error and m.cpu_s), None)
        if s is not None and d.cpu_s and not d.error:
            lines.append(f"{d.name}: CPU per frame dense / sparse = {d.cpu_ms_per_frame:.1f} / "
                         f"{s.cpu_ms_per_frame:.1f} ms = {d.cpu_ms_per_frame / s.cpu_ms_per_frame:.2f}x "
                         f"(wall {d.seconds / max(s.seconds, 1e-9):.2f}x)")
    return "\n".join(lines)
