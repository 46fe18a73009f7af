"""The MediaPipe adapter: loading, and what it finds."""
from __future__ import annotations

import json
import subprocess
import sys

# A fresh interpreter: what the detector imports is only visible before anything else did.
_PROBE = """
import json, sys
import numpy as np
from skimage import data
from blurcam.detect.mediapipe import MediaPipeDetector
detector = MediaPipeDetector("full")
faces = detector.detect(np.ascontiguousarray(data.astronaut()), 0)
loaded_early = sorted(m for m in ("matplotlib", "sounddevice") if m in sys.modules)
import mediapipe as mp
drawing = callable(mp.tasks.vision.drawing_utils.draw_detection)  # still there, loaded on use
detector.close()
print(json.dumps({"faces": faces.xyxy.tolist(), "loaded_early": loaded_early, "drawing": drawing}))
"""


def test_mediapipe_loads_without_the_modules_face_detection_never_uses():
    """``import mediapipe`` runs its drawing helpers (matplotlib) and audio tasks: 0.4 s of
    every run's startup. They are deferred until used, and the detector still finds the face."""
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded_early"] == []
    assert result["drawing"] is True
    [(x1, y1, x2, y2)] = result["faces"]  # astronaut: one face, around (180-290, 60-180)
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 180
