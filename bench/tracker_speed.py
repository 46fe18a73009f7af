"""Per-frame cost of the tracker in a crowd, optionally beside an earlier checkout.

    python bench/tracker_speed.py [--faces 300 --faces 1000] [--before DIR]

``Persistence.update`` (and ``one_box_per_face`` on its output, as the loop merges
boxes before redaction) on the moving crowd of ``bench/test_hotloop.py``: 30 frames
to fill the tracks, then the median of 150 timed frames. With ``--before`` each size
runs from DIR and from this tree alternately, in one run, so both see the same load.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
import numpy as np
from bench.test_hotloop import _CrowdStream
from blurcam.redact import RedactConfig, regions_for
from blurcam.track import Persistence, one_box_per_face
n = int(sys.argv[1])
stream, tracker, redact = _CrowdStream(n), Persistence(), RedactConfig()
for _ in range(30):
    tracker.update(stream.next()[0])
frames = [stream.next()[0] for _ in range(150)]
update, merge, dets, tracks = [], [], [], []
for det in frames:
    t0 = time.perf_counter()
    faces = tracker.update(det).faces
    t1 = time.perf_counter()
    one_box_per_face(faces, regions_for(faces.xyxy, (1280, 720), redact))
    t2 = time.perf_counter()
    update.append(t1 - t0); merge.append(t2 - t1); dets.append(len(det)); tracks.append(len(tracker.ids))
print(json.dumps({"update_ms": 1e3 * float(np.median(update)), "merge_ms": 1e3 * float(np.median(merge)),
                  "detections": float(np.mean(dets)), "tracks": float(np.mean(tracks))}))
"""


def run(tree: Path, n: int) -> dict:
    # The crowd stream comes from this tree's bench, the tracker from ``tree``.
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{ROOT}")
    code = f"import sys; sys.path[:0] = [{str(tree)!r}]; import blurcam; assert blurcam.__file__.startswith({str(tree)!r})\n" + CHILD
    out = subprocess.run([sys.executable, "-c", code, str(n)], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, action="append", help="faces in the crowd (repeatable; default 300, 1000)")
    ap.add_argument("--before", type=Path, help="an earlier checkout to time beside this one")
    args = ap.parse_args()
    flags = set(Path("/proc/cpuinfo").read_text().split()) & {"avx2", "avx512_vnni"} if Path("/proc/cpuinfo").exists() else set()
    print(f"CPU flags: {' '.join(sorted(flags)) or 'neither avx2 nor avx512_vnni'}")
    trees = ([("before", args.before.resolve())] if args.before else []) + [("this tree", ROOT)]
    for n in args.faces or [300, 1000]:
        for name, tree in trees:
            r = run(tree, n)
            load = " ".join(f"{v:.2f}" for v in os.getloadavg())
            print(f"{n:5d} faces  {name:10s} {r['detections']:6.0f} detections/frame {r['tracks']:6.0f} tracks  "
                  f"update {r['update_ms']:7.2f} ms  one_box_per_face {r['merge_ms']:6.2f} ms  (load {load})",
                  flush=True)


if __name__ == "__main__":
    main()
