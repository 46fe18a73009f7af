"""Command line: a thin Typer shell over blurcam.pipeline.

Only this module turns BlurcamError and stop signals into a one-line message and an
exit code, in one place: every command's body runs inside :func:`cli_errors`.
"""
from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer

from .errors import BlurcamError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Remove faces from video, irreversibly, before anything is stored or sent.")
log = logging.getLogger("blurcam")


@contextmanager
def cli_errors(what: str = "partial output removed") -> Iterator[None]:
    """Around every command's body: the one place errors and stop signals become exit statuses.

    A BlurcamError is one line, ``blurcam: error: MESSAGE`` (secrets masked), and its
    ``exit_code``. Ctrl-C, SIGTERM and SIGHUP (blurcam.signals) are one line,
    ``blurcam: interrupted (NAME); WHAT``, and 130, 143 or 129, also when the signal
    surfaced as a BlurcamError (an import cut short by Ctrl-C fails as ImportError).
    Anything else, typer.Exit included, passes through.
    """
    from . import signals
    from .urls import mask_secrets

    try:
        yield
    except BlurcamError as exc:
        if signals.received is None:
            typer.echo(f"blurcam: error: {mask_secrets(exc)}", err=True)
            raise typer.Exit(exc.exit_code) from None
        _interrupted(signals.exit_code(None), what)
    except KeyboardInterrupt as exc:
        _interrupted(signals.exit_code(exc), what)


def _interrupted(code: int, what: str) -> None:
    from .signals import stopped_line

    typer.echo(stopped_line(code, what), err=True)
    raise typer.Exit(code) from None


def _frame_progress(display, name: str, total_frames: int | None) -> Callable:
    """``blur``'s on_frame for one file: its row on ``display`` (blurcam.progress) counts
    frames against ``total_frames`` (None: unknown) and notes the fps and faces so far."""
    task = display.add_task(name, total=total_frames)
    started = time.perf_counter()
    frames = faces = 0

    def on_frame(record) -> None:
        nonlocal frames, faces
        frames += 1
        faces += len(record.faces)
        fps = frames / max(time.perf_counter() - started, 1e-9)
        display.update(task, completed=frames, note=f"{fps:5.1f} fps  faces {faces}")

    return on_frame


def _detector_config(quality: str, threshold: float | None, precision: str, runtime: str | None,
                     detect_every: int | None = None):
    """The DetectorConfig of --quality, --threshold, --precision, --runtime, --detect-every."""
    from .detect import DEFAULT_RUNTIME, DetectorConfig

    return _build(DetectorConfig, name=quality, threshold=threshold, centerface_every=detect_every,
                  precision=precision, runtime=runtime or DEFAULT_RUNTIME)


@app.command()
def blur(
    paths: Annotated[list[str], typer.Argument(metavar="INPUT [OUTPUT] | INPUT... -o OUTPUT_DIR", help="Video (mp4, mov, mkv, ...) or image (jpg, png, webp) and where to write it (default INPUT.blurred.EXT); or folders and files, mirrored under --output-dir.", show_default=False)],
    output_dir: Annotated[Optional[str], typer.Option("--output-dir", "-o", help="Folder mode: mirror every video and image of the INPUTs here (resumable; see README).", show_default=False)] = None,
    jobs: Annotated[Optional[int], typer.Option(help="Folder mode: files redacted at once, each in its own process. Default: what the cores and memory allow for the preset.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Folder mode: redo every file, even those the manifest says are done.")] = False,
    ray: Annotated[Optional[str], typer.Option(help="Folder mode on a Ray cluster: ADDRESS (host:port or ray://host:10001), auto (RAY_ADDRESS or the running cluster) or local (start one on this machine). Needs pip install 'blurcam\\[ray]'.", show_default=False)] = None,
    mode: Annotated[str, typer.Option(help="blur (smoothed noisy cell means), pixelate or solid.")] = "blur",
    threshold: Annotated[Optional[float], typer.Option(help="Detector confidence, 0-1: lower finds more faces and redacts more background. Default: the preset's.", show_default=False)] = None,
    pad: Annotated[float, typer.Option(help="Box growth about its centre (1.5 = 50% larger).")] = 1.5,
    hold: Annotated[int, typer.Option(help="Frames a face stays redacted after its last detection.")] = 15,
    lookback: Annotated[int, typer.Option(help="Frames before a face's first detection that are also redacted.")] = 15,
    quality: Annotated[str, typer.Option("--quality", "--detector", help="Detector preset: fast, balanced, thorough or live (speed vs recall, see README); or one backend: mediapipe, mediapipe-full, mediapipe-short, centerface.")] = "balanced",
    detect_every: Annotated[Optional[int], typer.Option(help="Run CenterFace on every k-th frame only (MediaPipe and persistence cover the rest). Default: the preset's.", show_default=False)] = None,
    precision: Annotated[str, typer.Option(help="CenterFace model: int8 (default, faster) or fp32 (the reference).")] = "int8",
    runtime: Annotated[Optional[str], typer.Option(help="CenterFace runtime: onnxruntime or openvino (pip install 'blurcam\\[openvino]'). Default: onnxruntime.", show_default=False)] = None,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Drop audio instead of copying it.")] = False,
    crf: Annotated[int, typer.Option(help="Encoder quality (x264: 0-51, lower is better).")] = 18,
    preset: Annotated[str, typer.Option(help="Encoder speed preset (x264/x265).")] = "veryfast",
    codec: Annotated[Optional[str], typer.Option(help="libx264, libx265, libvpx-vp9 or mpeg4. Default: VP9 for .webm, else libx264.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists (never the input).")] = False,
    report: Annotated[Optional[str], typer.Option(help="Write a JSON report of every redacted box.", show_default=False)] = None,
    report_full_paths: Annotated[bool, typer.Option("--report-full-paths", help="Name the input and output in the report by their absolute paths (default: base names only, so a shared report shows no folder names).")] = False,
    regions: Annotated[Optional[Path], typer.Option(help="Manual regions JSON (see README, 'Manual regions'): boxes always redacted on top of the detector's, over their time spans.", show_default=False)] = None,
    apply_exclusions: Annotated[bool, typer.Option("--apply-exclusions", help="Let the regions file's not-a-face regions remove boxes the detector is under 0.5 sure of (listed in the report).")] = False,
    salvage: Annotated[bool, typer.Option("--salvage", help="Redact and write every frame of a damaged or truncated video that still decodes (exit 12 if any was lost).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress line.")] = False,
) -> None:
    """Redact every face in a video or image file.

    The output keeps resolution, frame count, timing, rotation and audio. Subtitle, data (GPS, telemetry) and attachment streams and all metadata are removed. It is written under a temporary name and renamed into place only when complete.

    Folders: blurcam blur CARD/ [MORE...] -o OUT/ mirrors every video and image under OUT/, several files at once, skipping those done before with the same settings (OUT/blurcam-manifest.json).
    """
    from .errors import EXIT_SALVAGED
    from .io.media import frame_count, is_image_path
    from .io.sink import EncoderConfig
    from .pipeline import PipelineConfig, default_output_path, redact_path
    from .progress import progress_display
    from .redact import RedactConfig
    from .regions import load_regions
    from .track import TrackConfig

    with cli_errors():
        paths = [_local_path(p, "input" if i == 0 or output_dir is not None or len(paths) > 2 else "output")
                 for i, p in enumerate(paths)]
        output_dir = None if output_dir is None else _local_path(output_dir, "output")
        report = None if report is None else _local_path(report, "report")
        if report_full_paths and report is None:
            raise UsageError("--report-full-paths is an option of --report FILE.json")
        detector = _detector_config(quality, threshold, precision, runtime, detect_every)
        if apply_exclusions and regions is None:
            raise UsageError("--apply-exclusions needs --regions FILE.json")
        manual = load_regions(regions) if regions is not None else None
        config = _build(PipelineConfig, detector=detector, audio=not no_audio,
                        regions=manual, apply_exclusions=apply_exclusions, salvage=salvage, redact=_build(RedactConfig, mode=mode, pad=pad),
                        track=_build(TrackConfig, hold_frames=hold, lookback_frames=lookback),
                        encoder=_build(EncoderConfig, codec=codec, crf=crf, preset=preset))
        if output_dir is not None or len(paths) > 2 or any(p.is_dir() for p in paths) or jobs or force or ray:
            from .newsroom.batch_cli import blur_folder

            if manual is not None:
                raise UsageError("--regions applies to one video: give INPUT [OUTPUT], not a folder")
            return blur_folder(paths, output_dir, config, jobs=jobs, force=force, ray=ray, quiet=quiet,
                               report=report)
        input, output = paths[0], (paths[1] if len(paths) > 1 else None)
        output = output or default_output_path(input)
        display = progress_display(quiet=quiet)
        with display:
            on_frame = _frame_progress(display, input.name, None if is_image_path(input) else frame_count(input))
            stats = redact_path(input, output, config, overwrite=overwrite, report=report,
                                report_full_paths=report_full_paths, on_frame=on_frame)
        if stats.frames_obscured_whole:
            typer.echo(f"blurcam: warning: the detector failed on {stats.frames_obscured_whole} frames; "
                       "they were obscured whole", err=True)
        if not quiet:
            typer.echo(f"{output}: {stats.frames} frames, {stats.faces_detected} face detections, "
                       f"{stats.faces_carried} carried boxes, {stats.fps:.1f} fps", err=True)
        if stats.damaged:
            expected = f" of about {stats.frames_expected}" if stats.frames_expected else ""
            typer.echo(f"blurcam: warning: {input} is damaged; salvaged {stats.frames}{expected} frames "
                       "(every frame that decoded, all redacted); the rest is lost", err=True)
            raise typer.Exit(EXIT_SALVAGED)


@app.command()
def live(
    source: Annotated[Optional[str], typer.Argument(help="URL (rtsp, rtmp, http, udp, tcp, srt), - for MPEG-TS/Matroska on stdin, a file, or nothing for the camera.", show_default=False)] = None,
    to: Annotated[list[str], typer.Option("--to", help="Destination, repeatable: rtmp://host/app/key, udp://host:port, tcp://host:port, - (stdout, MPEG-TS), or a .ts/.mkv/.flv recording.")] = [],
    camera: Annotated[int, typer.Option(help="Camera number when no SOURCE is given.")] = 0,
    size: Annotated[Optional[str], typer.Option(help="Camera capture size, e.g. 1280x720.", show_default=False)] = None,
    fps: Annotated[Optional[int], typer.Option(help="Camera capture frame rate.", show_default=False)] = None,
    realtime: Annotated[Optional[bool], typer.Option("--realtime/--fast", " /--no-realtime", help="A file SOURCE is played at its real pace, as a camera delivers frames (the default for files); --fast reads it as fast as it decodes, dropping what the detector cannot keep up with.", show_default=False)] = None,
    duration: Annotated[Optional[float], typer.Option(help="Stop after this many seconds of source time.", show_default=False)] = None,
    quality: Annotated[str, typer.Option("--quality", "--detector", help="Detector preset: fast, balanced, thorough or live (see README for what each finds and costs). Whether this machine keeps up shows in the stats line; dropped frames are never sent.")] = "live",
    threshold: Annotated[Optional[float], typer.Option(help="Detector confidence, 0-1. Default: the preset's.", show_default=False)] = None,
    precision: Annotated[str, typer.Option(help="CenterFace model: int8 (default, faster) or fp32 (the reference).")] = "int8",
    runtime: Annotated[Optional[str], typer.Option(help="CenterFace runtime: onnxruntime or openvino (pip install 'blurcam\\[openvino]'). Default: onnxruntime.", show_default=False)] = None,
    mode: Annotated[str, typer.Option(help="blur, pixelate or solid.")] = "blur",
    hold: Annotated[int, typer.Option(help="Frames a face stays redacted after its last detection.")] = 10,
    delay: Annotated[float, typer.Option(help="Seconds every frame (and its audio) waits before it is sent, so a face found late is painted back over the frames before it and CenterFace may skip frames when the machine is behind (see README). 0: the lowest latency (a video call), CenterFace on every frame, no look-back.")] = 1.0,
    detect_timeout_ms: Annotated[float, typer.Option(help="A frame whose detection takes longer is sent obscured whole (with --delay: once it is due to be sent).")] = 500.0,
    latency_ms: Annotated[float, typer.Option(help="Latency bound beyond --delay, capture to send: frames are dropped at the input rather than sent later than delay + this, whichever stage is behind.")] = 400.0,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Send no audio.")] = False,
    crf: Annotated[int, typer.Option(help="Encoder quality (x264: 0-51, lower is better).")] = 23,
    preset: Annotated[str, typer.Option(help="x264 speed preset.")] = "veryfast",
    keyframe_interval: Annotated[float, typer.Option(help="Seconds between keyframes (how long a new viewer waits).")] = 2.0,
    reconnect_for: Annotated[float, typer.Option(help="Seconds to keep retrying a lost server before giving up.")] = 60.0,
    source_timeout: Annotated[float, typer.Option(help="Give up on a source that sends nothing for this many seconds (--listen: once the sender is connected; the wait for it has no limit).")] = 10.0,
    listen: Annotated[Optional[str], typer.Option(help="Instead of SOURCE, receive a stream pushed to this machine (a phone app): rtmp://HOST:PORT/APP/KEY or tcp://HOST:PORT. HOST 127.0.0.1: this machine only; 0.0.0.0: every network it is on (see README).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing recording file.")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Also show the redacted stream in a window.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No stats line.")] = False,
) -> None:
    """Stream a camera or stream with every face removed, in real time, failing closed.

    Every frame waits --delay seconds (1) before it is sent, so a face found late is painted over the frames before it and CenterFace can skip frames when the machine is behind (--delay 0: lowest latency, no look-back). Frames the machine cannot keep up with even so are dropped at the input (the stats line names the stage that is behind), never queued for seconds and never sent raw. A file SOURCE is played at its real pace. Until the detector has produced its first result, and for any frame it fails or is late on, the whole frame is obscured. Lost servers are reconnected with backoff; frames during the outage are discarded.
    """
    from . import signals
    from .io.sink import EncoderConfig
    from .io.stream import StreamConfig
    from .pipeline import LiveConfig, stream_live
    from .redact import RedactConfig
    from .track import TrackConfig

    show = not quiet and sys.stderr.isatty()

    def tick(stats) -> None:
        if show:
            sys.stderr.write(f"\r{stats.line()}   ")
            sys.stderr.flush()

    with cli_errors(what="recordings closed"):
        config = _build(LiveConfig, detector=_detector_config(quality, threshold, precision, runtime),
                        audio=not no_audio, realtime=realtime,
                        max_seconds=duration, delay_s=delay, detect_timeout_ms=detect_timeout_ms, latency_ms=latency_ms, redact=_build(RedactConfig, mode=mode),
                        track=_build(TrackConfig, hold_frames=hold, lookback_frames=0),
                        encoder=_build(EncoderConfig, crf=crf, preset=preset, live=True))
        stream = _build(StreamConfig, keyframe_interval_s=keyframe_interval, reconnect_for_s=reconnect_for)
        waiting = None
        if listen is not None:
            source, waiting = _listen_source(source, listen, quiet)
        run = stream_live(source, to, config, stream=stream, camera=camera, size=size, fps=fps,
                          source_timeout_s=source_timeout, overwrite=overwrite, preview=preview, on_tick=tick,
                          listen=listen is not None, on_listening=waiting)
        if show:
            sys.stderr.write("\n")
        s = run.stats
        if not quiet:
            why = f"stopped ({run.interrupted})" if run.interrupted else "source ended"
            typer.echo(f"blurcam live: {why} after {s.frames_in} frames: sent {s.frames}, dropped {s.frames_dropped}, "
                       f"obscured whole {s.frames_obscured_whole}, at most {s.in_flight_max} "
                       f"frames in flight; {s.line()}", err=True)
        if run.interrupted is not None:
            raise typer.Exit(signals.exit_code(run.interrupted))


@app.command()
def verify(
    input: Annotated[Path, typer.Argument(help="The original video or image (or a folder of them).", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Its redacted output (or the OUTPUT_DIR of a folder run).", show_default=False)],
    sheet: Annotated[Optional[Path], typer.Option(help="Write a contact sheet PNG (a folder of them for folders).", show_default=False)] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the findings as JSON (files named by base name).", show_default=False)] = None,
    every: Annotated[Optional[int], typer.Option(help="Check every k-th frame (1: all). Default: as many as cost what the blur did.", show_default=False)] = None,
    threshold: Annotated[float, typer.Option(help="Detector confidence from which a box is looked at; low finds more.")] = 0.1,
    detail_limit: Annotated[float, typer.Option(help="Share of a face's fine detail (0-1) allowed to survive in OUTPUT.")] = 0.5,
    strict: Annotated[bool, typer.Option("--strict", help="Also fail on doubtful boxes: detail left where the detector is less sure of a face.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing sheet or JSON (never INPUT or OUTPUT).")] = False,
    report_full_paths: Annotated[bool, typer.Option("--report-full-paths", help="Record absolute paths in the JSON (default: base names, so a shared report shows no folder names).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Check that OUTPUT shows no face of INPUT: find the faces in INPUT and measure how much of each face's fine detail survives in OUTPUT.

    Exits 22 when a face keeps its detail, 23 when OUTPUT is missing or not a redaction of INPUT, 3 when INPUT is missing. The summary, sheet and JSON say what was not checked (frames skipped, faces too small to judge). They are made from OUTPUT's pixels and box positions only: no pixel of INPUT is written.
    """
    from .newsroom.verify.command import verify_paths

    with cli_errors(what="no partial sheet or JSON left"):
        verify_paths(input, output, sheet=sheet, json_out=json_out, every=every, threshold=threshold,
                     detail_limit=detail_limit, strict=strict, quiet=quiet, overwrite=overwrite,
                     full_paths=report_full_paths)


@app.command()
def review(
    paths: Annotated[Optional[list[Path]], typer.Argument(metavar="PATHS", help="Videos or images, or folders of them, to put on the desk (more can be uploaded on the page).", show_default=False)] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free one).")] = 0,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open the browser; open the launcher file it names yourself.")] = False,
    export_dir: Annotated[Optional[Path], typer.Option(help="A folder exports may also be written to (default: the folders of PATHS, else the current folder).", show_default=False)] = None,
    max_upload_mb: Annotated[int, typer.Option(help="Largest upload accepted, MiB.")] = 4096,
) -> None:
    """Open the review desk: a page on this machine to redact files, check them with verify, add faces the detector missed, render again and export.

    It listens on 127.0.0.1 only; every request must carry a random token made for this run (other users and web pages get 403). Uploads and renders stay in a private temporary folder that is deleted when the desk stops (Ctrl-C).
    """
    with cli_errors():
        try:
            try:
                import starlette  # noqa: F401
                import uvicorn  # noqa: F401

                from .newsroom.review.server import serve
            except ImportError as exc:
                raise UsageError(f"blurcam review needs {exc.name}: pip install starlette uvicorn (or reinstall blurcam)") from None
            if max_upload_mb < 1:
                raise UsageError(f"--max-upload-mb must be >= 1, got {max_upload_mb}")
            serve(paths or [], port=port, open_browser=not no_browser, export_dir=export_dir, max_upload_mb=max_upload_mb)
        except KeyboardInterrupt:  # Ctrl-C is how the desk is stopped: not a failure
            typer.echo("blurcam review: stopped; private folder removed", err=True)


@app.command()
def bench(
    clip: Annotated[Optional[Path], typer.Argument(help="Video to measure on; default: a 10 s 720p clip made from samples/faces.mp4, and the crowd clips.", show_default=False)] = None,
    quality: Annotated[list[str], typer.Option("--quality", help="Presets to measure (repeatable).")] = ["fast", "balanced"],
    deface: Annotated[Optional[bool], typer.Option("--deface/--no-deface", help="Also time deface, if installed. Default: only on the generated sample clip, because deface's output of your own footage (written to a temporary folder, then deleted) can still show faces.", show_default=False)] = None,
    deface_exe: Annotated[Optional[str], typer.Option("--deface-exe", help="deface command, if not on PATH.", show_default=False)] = None,
    crowd: Annotated[bool, typer.Option("--crowd/--no-crowd", help="Without CLIP, also measure a generated dense crowd (about 320 faces 12-60 px per frame, moving camera) and a sparse clip of the same scene, and compare their CPU per frame.")] = True,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON.", show_default=False)] = None,
) -> None:
    """Measure blurcam's speed on this machine against the transcode floor (decode + re-encode with the same settings) and deface.

    Each run is a separate process; the table gives frames per second, the ratio to the floor and to deface, startup, fps after startup, CPU ms per frame and peak memory. The temporary folder holds only the generated clips, redacted outputs and, when asked for, deface's.
    """
    import dataclasses
    import json
    import tempfile

    from .benchmark import (CROWD_SPARSE_FACES, bench_settings, crowd_clip, crowd_ratio, format_table, run_benchmark,
                            sample_clip)

    with cli_errors(what="temporary folder removed"):
        for q in quality:
            bench_settings(q)  # UsageError for an unknown preset, precision or runtime, before any work
        with tempfile.TemporaryDirectory(prefix="blurcam-bench-") as tmp:
            clips = {}
            if clip is None:
                typer.echo("making a 10 s 1280x720 clip from samples/faces.mp4 ...", err=True)
                clips["sample"] = sample_clip(Path(tmp) / "bench.mp4")
                if crowd:
                    typer.echo("making 3 s 1280x720 crowd clips (sparse and dense) ...", err=True)
                    clips["crowd, sparse"] = crowd_clip(Path(tmp) / "crowd_sparse.mp4", faces=CROWD_SPARSE_FACES)
                    clips["crowd, dense"] = crowd_clip(Path(tmp) / "crowd_dense.mp4")
            elif not clip.exists():
                raise UsageError(f"{clip}: no such file")
            else:
                clips[clip.name] = clip
                if deface:
                    typer.echo("warning: deface's output of this clip is written to a temporary folder; "
                               "it may still show faces", err=True)
            measured = {}
            for name, path in clips.items():
                typer.echo(f"measuring on {name} (each run in its own process) ...", err=True)
                include_deface = deface if deface is not None else path.parent == Path(tmp)
                measured[name] = run_benchmark(path, list(quality), include_deface=include_deface,
                                               deface_exe=deface_exe)
        for name, results in measured.items():
            typer.echo(f"{name}\n{format_table(results)}\n" if len(measured) > 1 else format_table(results))
        if "crowd, dense" in measured:
            typer.echo(crowd_ratio(measured["crowd, sparse"], measured["crowd, dense"]))
        if json_out is not None:
            rows = [{"clip": name, **dataclasses.asdict(m), "fps": m.fps, "running_fps": m.running_fps,
                     "cpu_ms_per_frame": m.cpu_ms_per_frame} for name, results in measured.items() for m in results]
            json_out.write_text(json.dumps(rows, indent=1))


def _listen_source(source: str | None, listen: str, quiet: bool):
    """Check a --listen address (one-line usage errors); returns it and the callback that
    says, once, that blurcam waits (called after the destinations are checked)."""
    from .io.source import check_listen, listen_input

    address = listen_input(listen)
    if source is not None:
        raise UsageError(f"give SOURCE or --listen {address.shown}, not both")
    check_listen(address)

    def waiting() -> None:
        if not quiet:
            typer.echo(f"blurcam live: waiting for a stream pushed to {address.shown} (Ctrl-C to stop)", err=True)

    return listen, waiting


def _local_path(value: str, what: str) -> Path:
    """A path typed for ``blur``; a URL (which a Path would mangle into ``http:/host``
    and which blur cannot read or write) is a usage error pointing to ``live``."""
    from .urls import looks_like_url, mask_url

    if looks_like_url(value):
        if what == "input":
            raise UsageError(f"{mask_url(value)}: blur reads files only; to record a stream with faces "
                             "removed use: blurcam live SOURCE --to FILE")
        raise UsageError(f"{mask_url(value)}: blur writes files only; to send a stream with faces "
                         "removed use: blurcam live INPUT --to URL")
    return Path(value)


def _build(config_class, **values):
    """A config dataclass; its validation errors are usage errors (exit 2)."""
    try:
        return config_class(**values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr.")] = False) -> None:
    from .urls import SecretFilter

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("blurcam: %(message)s"))
    handler.addFilter(SecretFilter())  # URLs in any log line lose their secrets
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    _quiet_ffmpeg()


def _quiet_ffmpeg() -> None:
    """FFmpeg prints its own messages to stderr, URLs (and their secrets) included, and
    they cannot be masked: PyAV's Python log callback, the only way to filter them,
    can deadlock with FFmpeg's decoder threads. blurcam reports every failure itself,
    in one line, so FFmpeg is kept silent, even with --verbose."""
    import av.logging

    av.logging.set_libav_level(av.logging.PANIC)


def main() -> None:
    from . import signals
    from .memory import tune_allocator
    from .quiet import separate_python_stderr

    signals.install()
    separate_python_stderr()  # before any logging handler or console takes sys.stderr
    tune_allocator()
    app()
