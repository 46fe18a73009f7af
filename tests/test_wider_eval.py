"""The accuracy evaluator against hand-built boxes with known answers (no dataset needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.wider_eval import (
    ImageTruth,
    covered_faces,
    find_dataset,
    load_gt_json,
    load_wider_txt,
    redaction_mask,
    score_image,
    summarise,
)


def truth(xywh, invalid=None, easy=None, name="a/b.jpg") -> ImageTruth:
    xywh = np.asarray(xywh, np.float32).reshape(-1, 4)
    invalid = np.zeros(len(xywh), bool) if invalid is None else np.asarray(invalid, bool)
    return ImageTruth(name, xywh, invalid, None if easy is None else np.asarray(easy, bool))


def test_mask_grows_boxes_1_3_about_centre():
    # 10x10 box centred at (50, 50) grows to 13x13: 43.5..56.5, rasterised outward to 43..57.
    mask = redaction_mask(np.array([[45, 45, 55, 55]], np.float32), (100, 100))
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (43, 56, 43, 56)


def test_mask_is_union_and_clipped_to_image():
    mask = redaction_mask(np.array([[-20, -20, 10, 10], [70, 60, 130, 130]], np.float32), (100, 80))
    assert mask.shape == (80, 100)
    assert mask[0, 0] and mask[79, 99]
    assert not mask[40, 50]


def test_empty_detections_cover_nothing_and_mask_nothing():
    score = score_image(truth([[10, 10, 20, 20]]), np.zeros((0, 4), np.float32), (64, 48))
    assert score.covered.tolist() == [False]
    assert score.area_masked == 0.0


@pytest.mark.parametrize(
    ("masked_columns", "expected"),
    [
        (8, True),  # exactly 80% of a 10x10 face: the boundary counts as covered
        (7, False),  # 70%
        (10, True),
        (0, False),
    ],
)
def test_eighty_percent_boundary(masked_columns, expected):
    mask = np.zeros((50, 50), bool)
    mask[:, 10:10 + masked_columns] = True  # the face spans columns 10..19
    assert covered_faces(mask, np.array([[10, 20, 10, 10]])).tolist() == [expected]


def test_just_under_eighty_percent_is_not_covered():
    mask = np.zeros((100, 100), bool)
    mask[0:79, 0:100] = True  # face rows 0..99 over 100 columns: 79% inside
    assert covered_faces(mask, np.array([[0, 0, 100, 100]])).tolist() == [False]
    mask[79, :] = True
    assert covered_faces(mask, np.array([[0, 0, 100, 100]])).tolist() == [True]


def test_face_partly_outside_image_judged_on_visible_pixels():
    mask = np.zeros((20, 20), bool)
    mask[:, 10:] = True
    # 20x10 face, half out on the right: its 10x10 visible half is all masked.
    assert covered_faces(mask, np.array([[10, 5, 20, 10]])).tolist() == [True]
    # Entirely outside: never covered, even though 0 of 0 pixels are missed.
    assert covered_faces(mask, np.array([[30, 30, 5, 5]])).tolist() == [False]


def test_invalid_and_degenerate_faces_are_skipped():
    gt = truth([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 0, 10], [60, 0, 10, 0.5]],
               invalid=[False, True, False, False])
    score = score_image(gt, np.zeros((0, 4), np.float32), (100, 100))
    assert len(score.covered) == 1  # only the first face is valid
    report = summarise([score])
    assert report["faces"] == 1 and report["all"] == 0.0


def test_detection_covers_face_after_scaling():
    # A detector box 80% the size of the face, centred on it: x1.3 makes it big enough.
    gt = truth([[100, 100, 40, 40]])
    covered = score_image(gt, np.array([[104, 104, 136, 136]], np.float32), (300, 300)).covered
    assert covered.tolist() == [True]
    # Offset by half a face width: less than 80% of the face is masked.
    covered = score_image(gt, np.array([[124, 104, 156, 136]], np.float32), (300, 300)).covered
    assert covered.tolist() == [False]


@pytest.mark.parametrize(
    ("height", "bucket"),
    [(1, "h<16"), (15, "h<16"), (15.9, "h<16"), (16, "16-31"), (31, "16-31"),
     (32, "32-63"), (63, "32-63"), (64, ">=64"), (500, ">=64")],
)
def test_height_buckets(height, bucket):
    gt = truth([[0, 0, 10, height]])
    box = np.array([[0, 0, 10, height]], np.float32)
    report = summarise([score_image(gt, box, (600, 600))])
    assert report[bucket] == 1.0
    assert [k for k in ("h<16", "16-31", "32-63", ">=64") if report[k] is not None] == [bucket]


def test_summary_shares_and_area():
    # Image 1 (100x100): two faces, one covered; the 10x10 box grows to 8.5..21.5, rasterised
    # outward to 8..22: 14x14 pixels = 1.96% of the image.
    one = score_image(truth([[10, 10, 10, 10], [60, 60, 40, 40]], easy=[True, False]),
                      np.array([[10, 10, 20, 20]], np.float32), (100, 100))
    # Image 2 (10x10): one easy face, nothing detected.
    two = score_image(truth([[0, 0, 5, 5]], easy=[True]), np.zeros((0, 4), np.float32), (10, 10))
    report = summarise([one, two])
    assert report["images"] == 2 and report["faces"] == 3
    assert report["all"] == pytest.approx(1 / 3)
    assert report["easy"] == pytest.approx(1 / 2)
    assert report["h<16"] == pytest.approx(1 / 2)
    assert report[">=64"] is None
    assert report["32-63"] == 0.0
    assert report["area_masked"] == pytest.approx((14 * 14 / 10000 + 0.0) / 2)


def test_summary_without_split_membership_reports_no_easy():
    score = score_image(truth([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]], np.float32), (20, 20))
    assert summarise([score])["easy"] is None
    assert summarise([])["all"] is None


def test_load_gt_json(tmp_path):
    rows = [[1, 2, 30, 40, 0, 0, 0, 0, 0, 0, 1, 1, 1], [5, 6, 7, 8, 2, 1, 0, 0, 0, 0, 0, 0, 1]]
    (tmp_path / "gt.json").write_text(json.dumps({"z/2.jpg": [], "c/1.jpg": rows}))
    (tmp_path / "images").mkdir()
    gts, images = find_dataset(tmp_path)
    assert images == tmp_path / "images"
    assert [g.name for g in gts] == ["c/1.jpg", "z/2.jpg"]
    assert gts[0].xywh.tolist() == [[1, 2, 30, 40], [5, 6, 7, 8]]
    assert gts[0].invalid.tolist() == [False, True]
    assert gts[0].easy.tolist() == [True, False]
    assert gts[1].xywh.shape == (0, 4)
    assert load_gt_json(tmp_path / "gt.json")[0].name == "c/1.jpg"


def test_load_official_txt_layout(tmp_path):
    text = (
        "0--Parade/0_Parade_a.jpg\n2\n"
        "10 20 30 40 0 0 0 0 0 0 \n"
        "1 2 3 4 2 0 0 1 0 0 \n"
        "0--Parade/0_Parade_b.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n"
    )
    split = tmp_path / "wider_face_split"
    split.mkdir()
    (split / "wider_face_val_bbx_gt.txt").write_text(text)
    (tmp_path / "WIDER_val" / "images").mkdir(parents=True)
    gts, images = find_dataset(tmp_path)
    assert images == tmp_path / "WIDER_val" / "images"
    assert [g.name for g in gts] == ["0--Parade/0_Parade_a.jpg", "0--Parade/0_Parade_b.jpg"]
    assert gts[0].xywh.tolist() == [[10, 20, 30, 40], [1, 2, 3, 4]]
    assert gts[0].invalid.tolist() == [False, True]  # invalid is the 8th column
    assert gts[0].easy is None
    assert len(gts[1].xywh) == 0  # the all-zero placeholder line is not a face
    assert len(load_wider_txt(split / "wider_face_val_bbx_gt.txt")) == 2
