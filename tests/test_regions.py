"""Manual regions: the schema, interpolation, exclusions, and a face the detector
misses destroyed by a region in a real clip (band-pass check)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from blurcam.cli import app
from blurcam.detail import detail_kept, to_gray
from blurcam.regions import RegionPass, RegionsError, load_regions, parse_regions
from blurcam.types import Faces, Frame
from conftest import decode_rgb

runner = CliRunner()


def doc(*regions, **extra) -> dict:
    return {"schema": "blurcam-regions", "version": 1, "regions": list(regions), **extra}


def region(rid="r1", kind="face", keys=((0.0, [0, 0, 10, 10]), (1.0, [10, 0, 20, 10])), **extra) -> dict:
    return {"id": rid, "kind": kind, "keyframes": [{"t": t, "box": box} for t, box in keys], **extra}


@pytest.mark.parametrize("t, expected", [
    (0.0, [0, 0, 10, 10]),       # first keyframe
    (0.5, [5, 0, 15, 10]),       # halfway: linear motion
    (1.0, [10, 0, 20, 10]),      # last keyframe
    (1.5, [20, 0, 30, 10]),      # second leg
    (2.0, [30, 0, 40, 10]),      # end of the span
])
def test_boxes_at_interpolates_between_keyframes(t, expected):
    r = parse_regions(doc(region(keys=((0.0, [0, 0, 10, 10]), (1.0, [10, 0, 20, 10]), (2.0, [30, 0, 40, 10])))))
    active, xyxy = r.boxes_at(t)
    assert active.tolist() == [0]
    np.testing.assert_allclose(xyxy[0], expected, atol=1e-4)


def test_boxes_at_holds_the_box_outside_keyframes_within_the_span_and_nothing_outside():
    r = parse_regions(doc(region(keys=((1.0, [0, 0, 10, 10]),), start=0.5, end=2.0), region("r2")))
    for t, ids in [(0.0, [1]), (0.5, [0, 1]), (1.5, [0]), (2.0, [0]), (2.1, [])]:
        active, xyxy = r.boxes_at(t)
        assert active.tolist() == ids, t
        if 0 in ids:
            np.testing.assert_allclose(xyxy[0], [0, 0, 10, 10])
    assert r.boxes_at(2.01, slack_s=0.02)[0].tolist() == [0]
    assert parse_regions(doc()).boxes_at(0.0)[1].shape == (0, 4)


def test_round_trip_through_json():
    r = parse_regions(doc(region(), region("r2", kind="not-a-face", start=0.0, end=5.0), size=[640, 360]))
    again = parse_regions(json.loads(json.dumps(r.to_json())))
    assert again.ids == r.ids and again.size_wh == (640, 360)
    np.testing.assert_array_equal(again.key_xyxy, r.key_xyxy)
    np.testing.assert_array_equal(again.end_s, r.end_s)


def _frame(index: int, fps: int = 30) -> Frame:
    y = np.zeros((360, 640), np.uint8)
    c = np.zeros((180, 320), np.uint8)
    return Frame((y, c, c.copy()), index, index, __import__("fractions").Fraction(1, fps))


def test_exclusion_removes_only_low_score_boxes_and_only_when_asked():
    r = parse_regions(doc(region("sign", kind="not-a-face", keys=((0.0, [100, 100, 300, 300]),), end=10.0),
                          region("face", keys=((0.0, [120, 120, 160, 160]),), end=10.0)))
    faces = Faces.from_xyxy([[150, 150, 200, 200], [210, 210, 260, 260], [400, 10, 450, 60]], [0.3, 0.7, 0.2])
    kept = RegionPass(r).apply(_frame(0), faces)  # not asked: nothing removed, the face region added
    assert len(kept) == 4 and kept.xyxy[3].tolist() == [120, 120, 160, 160]
    asked = RegionPass(r, apply_exclusions=True)
    out = asked.apply(_frame(0), faces)
    # the 0.3 box inside the sign goes; the 0.7 one inside it stays; the 0.2 one outside stays;
    # the manual face region inside the sign is added all the same
    assert out.xyxy.tolist() == [[210, 210, 260, 260], [400, 10, 450, 60], [120, 120, 160, 160]]
    assert asked.tally.excluded == [{"frame": 0, "region": "sign", "box": [150.0, 150.0, 200.0, 200.0], "score": 0.3}]
    listed = asked.tally.to_json(r, True)["regions"]
    assert [(e["id"], e["applied"], e["frames"]) for e in listed] == [("sign", True, 1), ("face", True, 1)]


def test_region_boxes_follow_rotation_to_stored_pixels():
    r = parse_regions(doc(region(keys=((0.0, [0, 0, 10, 20]),), end=1.0)))
    frame = _frame(0)
    frame.rotation_deg = 90  # shown as 360x640; display box (0..10, 0..20) is the stored top-right corner
    out = RegionPass(r).apply(frame, Faces.empty())
    assert out.xyxy.tolist() == [[620, 0, 640, 10]]


BAD = {
    "not_json": ("{", "not valid JSON"),
    "wrong_schema": (json.dumps({"schema": "x", "version": 1, "regions": []}), "not a blurcam regions file"),
    "future_version": (json.dumps(doc() | {"version": 9}), "version 9 is not supported"),
    "empty_box": (json.dumps(doc(region(keys=((0.0, [10, 10, 5, 20]),)))), "is empty"),
    "no_keyframes": (json.dumps(doc(region(keys=()))), "at least one keyframe"),
    "duplicate_id": (json.dumps(doc(region(), region())), "used twice"),
    "end_before_start": (json.dumps(doc(region(start=3.0, end=1.0))), "start <= end"),
    "bad_kind": (json.dumps(doc(region(kind="poster"))), "kind"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_regions_file_exits_2_with_one_line_and_writes_nothing(case, tmp_path, face_clip):
    text, message = BAD[case]
    path = tmp_path / "regions.json"
    path.write_text(text)
    with pytest.raises(RegionsError, match=message):
        load_regions(path)
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["blur", str(face_clip.path), str(out), "--regions", str(path), "-q"])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_regions_file_and_exclusions_without_regions_exit_2(tmp_path, face_clip):
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["blur", str(face_clip.path), str(out), "--regions", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "no such regions file" in result.output
    result = runner.invoke(app, ["blur", str(face_clip.path), str(out), "--apply-exclusions"])
    assert result.exit_code == 2 and "needs --regions" in result.output
    assert not out.exists()


def _worst_detail(clip, out_path, face: int) -> float:
    worst = 0.0
    for i, image in enumerate(decode_rgb(out_path)):
        kept = detail_kept(to_gray(clip.frames[i]), to_gray(image), clip.boxes[i][face])
        worst = max(worst, kept or 0.0)
    return worst


def missed_face_regions(clip) -> dict:
    """One region over the upside-down face for the whole clip: keyframes on its exact
    boxes at the first and last frame (it moves in a straight line)."""
    last = len(clip.frames) - 1
    return doc(region("missed", keys=((0.0, clip.boxes[0][1].tolist()), (last / 30, clip.boxes[last][1].tolist()))))


def test_region_destroys_a_face_the_detector_misses(tmp_path, missed_face_clip):
    clip = missed_face_clip
    plain, fixed = tmp_path / "plain.mp4", tmp_path / "fixed.mp4"
    result = runner.invoke(app, ["blur", str(clip.path), str(plain), "--quality", "fast", "-q"])
    assert result.exit_code == 0, result.output
    assert _worst_detail(clip, plain, 1) > 0.6  # the detector missed it: the test can fail
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps(missed_face_regions(clip)))
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["blur", str(clip.path), str(fixed), "--quality", "fast", "-q",
                                 "--regions", str(regions), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert _worst_detail(clip, fixed, 1) < 0.3
    assert _worst_detail(clip, fixed, 0) < 0.3  # the detector's face as well
    data = json.loads(report.read_text())
    assert data["regions"]["regions"][0] | {} == {"id": "missed", "kind": "face", "start": 0.0, "end": 29 / 30,
                                                   "applied": True, "frames": 30, "first_frame": 0, "last_frame": 29}
    assert all(any(f["source"] == "region" and f["region_id"] == "missed" for f in fr["faces"]) for fr in data["frames"])


def test_exclusion_never_uncovers_a_confident_face(tmp_path, missed_face_clip):
    """A not-a-face region drawn over the detected face, applied: the detector is over
    0.5 sure of it, so it stays redacted, and the report says nothing was excluded."""
    clip = missed_face_clip
    box = [float(v) for v in clip.boxes[0][0]]
    grown = [box[0] - 60, box[1] - 60, box[2] + 60, box[3] + 60]
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps(doc(region("sign", kind="not-a-face", keys=((0.0, grown),), end=2.0))))
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    result = runner.invoke(app, ["blur", str(clip.path), str(out), "--quality", "fast", "-q", "--regions", str(regions),
                                 "--apply-exclusions", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert _worst_detail(clip, out, 0) < 0.3
    data = json.loads(report.read_text())["regions"]
    assert data["apply_exclusions"] is True and data["excluded_boxes"] == []
    assert data["regions"][0]["kind"] == "not-a-face"


def test_regions_apply_to_a_still_image_at_time_zero(tmp_path, missed_face_clip):
    import cv2

    clip = missed_face_clip
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), cv2.cvtColor(clip.frames[0], cv2.COLOR_RGB2BGR))
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps(doc(region("missed", keys=((0.0, clip.boxes[0][1].tolist()),)))))
    out = tmp_path / "still.blurred.png"
    result = runner.invoke(app, ["blur", str(image), str(out), "--quality", "fast", "--regions", str(regions), "-q"])
    assert result.exit_code == 0, result.output
    redacted = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    for box in clip.boxes[0]:
        assert detail_kept(to_gray(clip.frames[0]), to_gray(redacted), box) < 0.3


def test_region_times_count_from_the_first_frame_not_from_pts_zero():
    """A clip cut from a longer recording starts at pts 1.5 s; a player shows it from 0."""
    r = parse_regions(doc(region(keys=((0.0, [0, 0, 10, 10]),), end=0.1)))
    run = RegionPass(r, slack_s=1 / 60)
    hits = [len(run.apply(_frame(45 + i), Faces.empty())) for i in range(6)]  # 1.5 s, 1.533 s, ...
    assert hits == [1, 1, 1, 1, 0, 0]  # 0, 1/30, 2/30, 3/30 (= end) in; 4/30 out
