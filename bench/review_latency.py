"""How long the review desk's requests take while a file renders and verifies.

    python bench/review_latency.py [CLIP [PRESET [IDLE_S]]]   (default: samples/faces.mp4 balanced 5)

Starts ``blurcam review --no-browser CLIP``, waits IDLE_S (a user adding files and
picking a preset), starts the job, and polls the page's two
requests (GET /api/state, GET /api/items/ID) every 0.1 s until the job is done; prints
the latency percentiles, the max, the job's wall time and the load average. The issue's
target: no request over 100 ms apart from uploads and renders.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_review import Desk  # noqa: E402


def main() -> None:
    clip = Path(sys.argv[1] if len(sys.argv) > 1 else "samples/faces.mp4").resolve()
    preset = sys.argv[2] if len(sys.argv) > 2 else "balanced"
    idle_s = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    desk = Desk([str(clip)], cwd=clip.parent)
    try:
        time.sleep(idle_s)
        item = desk.state()["items"][0]["id"]
        status, _ = desk.request(f"/api/items/{item}/start", method="POST", body=json.dumps({"preset": preset}).encode(),
                                 headers={"Content-Type": "application/json"})
        assert status == 200
        started = time.monotonic()
        timings = {"state": [], "item": []}
        progress_seen = []
        while True:
            for name, path in (("state", "/api/state"), ("item", f"/api/items/{item}")):
                t0 = time.perf_counter()
                status, body = desk.request(path)
                timings[name].append((time.perf_counter() - t0) * 1000)
            state = json.loads(body)
            progress_seen.append((round(time.monotonic() - started, 1), state["state"], state["progress"]))
            if state["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        wall = time.monotonic() - started
        updates = sorted({p[2] for p in progress_seen})
        changes = [t for (t, _, p), (_, _, q) in zip(progress_seen[1:], progress_seen) if p != q]
        gaps = np.diff([0.0, *changes]) if changes else np.array([wall])
        phases = []
        for t, phase, _ in progress_seen:
            if not phases or phases[-1][1] != phase:
                phases.append((t, phase))
        print(f"{clip.name} {preset}: job {state['state']} in {wall:.1f} s; {len(updates)} distinct progress values "
              f"({len(updates) / wall:.1f}/s); longest wait for the bar to move {gaps.max():.1f} s")
        print("  phases: " + ", ".join(f"{phase} from {t} s" for t, phase in phases))
        for name, ms in timings.items():
            a = np.array(ms)
            print(f"  GET {name:5}: n={len(a)} p50 {np.percentile(a, 50):.1f} ms  p95 {np.percentile(a, 95):.1f} ms  "
                  f"max {a.max():.1f} ms")
        print(f"  load average {os.getloadavg()}")
    finally:
        desk.stop()


if __name__ == "__main__":
    main()
