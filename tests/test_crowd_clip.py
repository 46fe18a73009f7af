"""The generated crowd clip (bench): its ground truth follows the faces as the camera moves."""
from __future__ import annotations

import json

import cv2
import numpy as np

from blurcam.benchmark import CROWD_SPARSE_FACES, crowd_clip
from blurcam.synth import crowd, film

SIZE_WH = (640, 360)


def _thumb(image: np.ndarray, xyxy) -> np.ndarray:
    x1, y1, x2, y2 = (int(round(v)) for v in xyxy[:4])
    return cv2.resize(image[y1:y2, x1:x2], (12, 12), interpolation=cv2.INTER_AREA).astype(np.float32)


def test_crowd_ground_truth_boxes_frame_the_pasted_faces_as_the_camera_moves():
    scene = crowd(SIZE_WH, face_px=(16, 40))
    faces = np.stack([_thumb(scene.canvas, box) for box in scene.faces_xyxy])
    for t, (frame, gt) in enumerate(film(scene, SIZE_WH, 90)):
        if t not in (0, 45, 89):  # still, zoomed in and panned, at the far end
            continue
        inside = gt[(gt[:, 4] == 1) & (gt[:, 3] - gt[:, 1] >= 16)]
        assert len(inside) > 20
        for box in inside[:: max(1, len(inside) // 20)]:
            error = np.abs(faces - _thumb(frame, box)).mean(axis=(1, 2, 3)).min()
            assert error < 12, f"frame {t}: box {box[:4].round()} shows no pasted face ({error:.0f})"
        shifted = inside[:, :4] + [4, 0, 4, 0]  # control: a box a few pixels off is not a face crop
        errors = [np.abs(faces - _thumb(frame, box)).mean(axis=(1, 2, 3)).min() for box in shifted[:10]
                  if box[2] <= SIZE_WH[0]]
        assert np.median(errors) > 12


def test_crowd_clip_writes_every_frame_and_its_ground_truth(tmp_path):
    dense = crowd_clip(tmp_path / "dense.mp4", size_wh=SIZE_WH, frames=12)
    sparse = crowd_clip(tmp_path / "sparse.mp4", size_wh=SIZE_WH, frames=12, faces=CROWD_SPARSE_FACES)
    import av

    for clip in (dense, sparse):
        with av.open(str(clip)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 12
    gt_dense = json.loads((tmp_path / "dense.gt.json").read_text())
    gt_sparse = json.loads((tmp_path / "sparse.gt.json").read_text())
    assert gt_dense["size"] == list(SIZE_WH) and len(gt_dense["frames"]) == len(gt_sparse["frames"]) == 12
    assert min(map(len, gt_dense["frames"])) > 3 * max(map(len, gt_sparse["frames"]))
    for boxes in gt_dense["frames"]:
        b = np.array(boxes)
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= SIZE_WH[0]).all() and (b[:, 3] <= SIZE_WH[1]).all()
        assert ((b[:, 4] >= 0) & (b[:, 4] <= 1)).all()  # share inside, rounded as mkclip.py does
