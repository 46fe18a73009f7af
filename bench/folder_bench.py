"""Folder runs: how much sooner parallel files finish, locally and on a local Ray cluster;
and what ``blurcam verify`` costs next to the blur it checks.

    python bench/folder_bench.py [--clips 20] [--seconds 3] [--quality balanced] [--ray] [--verify]

Makes N copies of a 1280x720 clip (samples/faces.mp4 scaled, ``--seconds`` long) under
/tmp/issue-14-newsroom/folder-bench/, then runs ``blurcam blur DIR -o OUT`` in its own
process with ``--jobs 1``, the default ``--jobs`` and (``--ray``) on a 2-CPU Ray cluster
started on 127.0.0.1 for the run. Prints wall seconds, the speed-up over ``--jobs 1``,
CPU ms per frame (all processes of the run, from the manifest's per-file CPU time for Ray)
and throughput. ``--verify``: blurs samples/faces.mp4 with the preset, then verifies it
with the default sampling, and prints both times and verify's exit status.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = Path("/tmp/issue-14-newsroom/folder-bench")
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}


def make_folder(n: int, seconds: float) -> Path:
    from blurcam.benchmark import sample_clip

    folder = WORK / f"in-{n}x{seconds:g}s"
    if len(list(folder.glob("*.mp4"))) == n:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    first = sample_clip(folder / "clip00.mp4", frames=round(30 * seconds))
    for i in range(1, n):
        shutil.copy(first, folder / f"clip{i:02d}.mp4")
    return folder


def timed(argv: list[str], env: dict | None = None) -> tuple[float, float, int, str]:
    """Wall s, CPU s of the child processes, exit status, last stderr line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = proc.stderr.strip().splitlines()
    return wall, cpu, proc.returncode, lines[-1] if lines else ""


def blur_folder(folder: Path, name: str, extra: list[str], quality: str, env=None) -> dict:
    out = WORK / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    wall, cpu, rc, last = timed([sys.executable, "-m", "blurcam", "blur", str(folder), "-o", str(out),
                                 "--quality", quality, "--quiet", *extra], env)
    files = json.loads((out / "blurcam-manifest.json").read_text())["files"] if rc == 0 else {}
    frames = sum(v.get("frames", 0) for v in files.values())
    job_cpu = sum(v.get("cpu_s", 0) for v in files.values())
    return {"run": name, "rc": rc, "wall_s": wall, "frames": frames, "cpu_s": cpu, "job_cpu_s": job_cpu,
            "error": "" if rc == 0 else last}


def with_ray_cluster(fn):
    exe = str(Path(sys.executable).parent / "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), **RAY_ENV}
    subprocess.run([exe, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats", "--temp-dir=/tmp/blurcam-ray-bench"],
                   env=env, check=True, capture_output=True)
    try:
        return fn(f"127.0.0.1:{port}")
    finally:
        subprocess.run([exe, "stop", "--force"], env=env, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--quality", default="balanced")
    ap.add_argument("--ray", action="store_true", help="also run on a local 2-CPU Ray cluster")
    ap.add_argument("--verify", action="store_true", help="also time verify against the blur of the sample")
    ap.add_argument("--no-folder", action="store_true", help="skip the folder runs")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from blurcam.detect import DetectorConfig
    from blurcam.newsroom.batch import default_jobs

    rows = []
    load_before = os.getloadavg()[0]
    if not args.no_folder:
        folder = make_folder(args.clips, args.seconds)
        default = default_jobs(DetectorConfig(name=args.quality), args.clips)
        rows.append(blur_folder(folder, "--jobs 1", ["--jobs", "1"], args.quality))
        rows.append(blur_folder(folder, f"default --jobs ({default})", [], args.quality))
        if default != 2:
            rows.append(blur_folder(folder, "--jobs 2", ["--jobs", "2"], args.quality))
        if args.ray:
            rows.append(with_ray_cluster(lambda address: blur_folder(
                folder, "--ray (local cluster, 2 CPUs)", ["--ray", address], args.quality, RAY_ENV)))
        base = rows[0]["wall_s"]
        print(f"{args.clips} clips x {args.seconds:g} s, 1280x720, --quality {args.quality}, {os.cpu_count()} CPUs; "
              f"load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f} (other work on the machine "
              "inflates wall times; CPU ms per frame is steadier)\n")
        print("| run | wall s | x --jobs 1 | fps | CPU ms/frame (all processes) | CPU ms/frame (in jobs) |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            if r["rc"]:
                print(f"| {r['run']} | exit {r['rc']}: {r['error']} | | | | |")
                continue
            fps = r["frames"] / r["wall_s"]
            total = "-" if r["run"].startswith("--ray") else f"{1000 * r['cpu_s'] / r['frames']:.1f}"
            print(f"| {r['run']} | {r['wall_s']:.1f} | {base / r['wall_s']:.2f} | {fps:.1f} | {total} "
                  f"| {1000 * r['job_cpu_s'] / r['frames']:.1f} |")
    if args.verify:
        sample = REPO / "samples" / "faces.mp4"
        out = WORK / "faces.blurred.mp4"
        out.unlink(missing_ok=True)
        b = timed([sys.executable, "-m", "blurcam", "blur", str(sample), str(out), "--quality", args.quality, "--quiet"])
        v = timed([sys.executable, "-m", "blurcam", "verify", str(sample), str(out), "--quiet",
                   "--json", str(WORK / "verify.json"), "--sheet", str(WORK / "verify.png"), "--overwrite"])
        report = json.loads((WORK / "verify.json").read_text())
        print(f"\nsamples/faces.mp4 ({report['frames']} frames): blur --quality {args.quality} {b[0]:.2f} s "
              f"(exit {b[2]}); verify {v[0]:.2f} s (exit {v[2]}), checked {report['frames_checked']} frames "
              f"(every {report['every']}), {report['faces_checked']} faces, residual in "
              f"{len(report['residual_frames'])} frames, {len(report['doubtful'])} doubtful boxes; "
              f"verify / blur = {v[0] / b[0]:.2f}")


if __name__ == "__main__":
    main()
