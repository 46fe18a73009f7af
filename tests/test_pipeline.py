"""End to end on clips of real faces: what a user would notice in the output file."""
from __future__ import annotations

import av
import numpy as np
import pytest

from blurcam.detect import DetectorConfig, make_detector
from blurcam.pipeline import PipelineConfig, redact_file
from blurcam.track import TrackConfig
from blurcam.types import Faces
from conftest import IDENTIFYING_TAGS, decode_rgb
from leak import background_psnr, detail_kept


def timestamps(path):
    with av.open(str(path)) as c:
        return [f.time for f in c.decode(video=0)]


def audio_payloads(path):
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def all_tags(path):
    with av.open(str(path)) as c:
        tags = dict(c.metadata)
        for s in c.streams:
            tags.update({f"{s.type}:{k}": v for k, v in s.metadata.items()})
        return tags


@pytest.fixture(scope="module")
def redacted(face_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "faces.blurred.mp4"
    records = []
    stats = redact_file(face_clip.path, out, on_frame=records.append)
    return out, stats, records


def test_every_face_destroyed_in_every_frame(face_clip, redacted):
    out, _, _ = redacted
    inp, res = decode_rgb(face_clip.path), decode_rgb(out)
    worst = 0.0
    for i, (a, b, boxes) in enumerate(zip(inp, res, face_clip.boxes)):
        for box in boxes:
            kept = detail_kept(a, b, box)
            assert kept is not None and kept < 0.4, f"frame {i}: face {box.round()} keeps {kept:.2f} of its detail"
            worst = max(worst, kept)
    assert worst < 0.4


def test_background_unchanged(face_clip, redacted):
    out, _, _ = redacted
    for a, b, boxes in zip(decode_rgb(face_clip.path), decode_rgb(out), face_clip.boxes):
        assert background_psnr(a, b, boxes) > 35  # only re-encoding noise outside the faces


def test_frames_timestamps_and_size_preserved(face_clip, redacted):
    out, stats, _ = redacted
    assert stats.frames == len(face_clip.frames)
    assert timestamps(out) == timestamps(face_clip.path)
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (640, 360)


def test_audio_copied_bit_identical(face_clip, redacted):
    out, _, _ = redacted
    original = audio_payloads(face_clip.path)
    assert original and audio_payloads(out) == original


def test_identifying_metadata_removed(face_clip, redacted):
    out, _, _ = redacted
    assert set(IDENTIFYING_TAGS) <= set(all_tags(face_clip.path))  # the input really has them
    tags = all_tags(out)
    for key in (*IDENTIFYING_TAGS, "encoder", "location-eng", "com.apple.quicktime.make"):
        assert not any(k.split(":")[-1] == key for k in tags), f"{key} survived: {tags}"
    assert not any(v for v in tags.values() if "40.7128" in v or "serial" in v)


def test_no_audio_option_drops_audio(face_clip, tmp_path):
    out = tmp_path / "silent.mp4"
    redact_file(face_clip.path, out, PipelineConfig(audio=False))
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_variable_frame_rate_timestamps_preserved(vfr_clip, tmp_path):
    out = tmp_path / "vfr.mp4"
    redact_file(vfr_clip.path, out)
    assert timestamps(out) == timestamps(vfr_clip.path)
    assert len(set(np.diff(timestamps(out)).round(4))) > 1  # really variable


class BlinkingDetector:
    """The real detector, except that it sees nothing on the given frames."""

    def __init__(self, blind_frames):
        self.inner = make_detector()
        self.blind = set(blind_frames)
        self.name = "blinking"
        self.calls = 0

    def detect(self, image, timestamp_ms):
        i, self.calls = self.calls, self.calls + 1
        faces = self.inner.detect(image, timestamp_ms)
        return Faces.empty() if i in self.blind else faces

    def close(self):
        self.inner.close()


def test_persistence_covers_frames_where_detector_blinks(face_clip, tmp_path):
    out = tmp_path / "blink.mp4"
    blind = {0, 1, 10, 11, 12, 20}  # first frames (look-back) and gaps (hold)
    detector = BlinkingDetector(blind)
    records = []
    try:
        redact_file(face_clip.path, out, detector=detector, on_frame=records.append)
    finally:
        detector.close()
    inp, res = decode_rgb(face_clip.path), decode_rgb(out)
    for i in sorted(blind):
        assert records[i].faces.carried.all() and len(records[i].faces)
        for box in face_clip.boxes[i]:
            assert detail_kept(inp[i], res[i], box) < 0.4, f"frame {i} leaked while the detector was blind"


def test_without_persistence_blink_frames_leak(face_clip, tmp_path):
    """The control for the test above: it can fail."""
    out = tmp_path / "blink_nohold.mp4"
    detector = BlinkingDetector({10})
    try:
        redact_file(face_clip.path, out, PipelineConfig(track=TrackConfig(hold_frames=0, lookback_frames=0)),
                    detector=detector)
    finally:
        detector.close()
    a, b = decode_rgb(face_clip.path)[10], decode_rgb(out)[10]
    assert max(detail_kept(a, b, box) for box in face_clip.boxes[10]) > 0.5


class FailingDetector(BlinkingDetector):
    """Raises on the given frames, like a crashed or timed-out model."""

    def detect(self, image, timestamp_ms):
        i = self.calls
        if i in self.blind:
            self.calls += 1
            raise RuntimeError("model crashed")
        return super().detect(image, timestamp_ms)


def test_detector_failure_obscures_whole_frame(face_clip, tmp_path):
    out = tmp_path / "fail.mp4"
    detector = FailingDetector({5, 6})
    records = []
    try:
        stats = redact_file(face_clip.path, out, PipelineConfig(track=TrackConfig(hold_frames=0, lookback_frames=0)),
                            detector=detector, on_frame=records.append)
    finally:
        detector.close()
    assert stats.frames_obscured_whole == 2
    assert [r.index for r in records if r.obscured_whole] == [5, 6]
    inp, res = decode_rgb(face_clip.path), decode_rgb(out)
    for i in (5, 6):
        assert background_psnr(inp[i], res[i], np.zeros((0, 4))) < 25  # the whole frame is gone
        for box in face_clip.boxes[i]:
            assert detail_kept(inp[i], res[i], box) < 0.4
    assert background_psnr(inp[7], res[7], face_clip.boxes[7]) > 35  # and the next frame is normal


def test_data_streams_dropped(face_clip, tmp_path):
    """A GPS/telemetry data stream (KLV in MPEG-TS here) never reaches the output."""
    from fractions import Fraction

    src = tmp_path / "telemetry.ts"
    frames = face_clip.frames[:10]
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
        ds = out.add_data_stream("klv")
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            for p in vs.encode(vf):
                out.mux(p)
            gps = av.Packet(b"GPS +40.7128-074.0060 serial 12345")
            gps.stream, gps.pts, gps.dts, gps.time_base = ds, i * 3000, i * 3000, Fraction(1, 90000)
            out.mux(gps)
        for p in vs.encode(None):
            out.mux(p)
    with av.open(str(src)) as c:
        assert "data" in [s.type for s in c.streams]
    dst = tmp_path / "telemetry.blurred.ts"
    redact_file(src, dst)
    with av.open(str(dst)) as c:
        assert [s.type for s in c.streams] == ["video"]
    assert b"40.7128" not in dst.read_bytes()


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotated_phone_video(sprites, tmp_path, rotation):
    """Pixels stored sideways with a display rotation: faces are found upright, the
    output keeps the same stored size and rotation."""
    from blurcam.synth import Placement, background, render, write_clip

    upright = [f for f, _ in render([Placement(sprites[0], 220, (60, 100), (80, 100))], background((360, 640)), 6)]
    boxes = [b for _, b in render([Placement(sprites[0], 220, (60, 100), (80, 100))], background((360, 640)), 6)]
    k = round(rotation / 90) % 4
    stored = [np.ascontiguousarray(np.rot90(f, -k)) for f in upright]  # what a phone writes
    src, dst = tmp_path / "phone.mp4", tmp_path / "phone.blurred.mp4"
    write_clip(src, stored, rotation_deg=rotation, audio=False)
    redact_file(src, dst)
    with av.open(str(dst)) as c:
        frames = list(c.decode(video=0))
    assert (frames[0].width, frames[0].height) == (640, 360)
    assert round(frames[0].rotation) == rotation
    for f, img, bx in zip(frames, upright, boxes):
        shown = np.rot90(f.to_ndarray(format="rgb24"), k)
        assert detail_kept(img, np.ascontiguousarray(shown), bx[0]) < 0.4


def test_colour_tags_kept_and_background_not_shifted(sprites, tmp_path):
    """Pixels pass through as YCbCr: a BT.709 clip comes out tagged BT.709, and the
    background's levels are the input's, not a colour-converted version of them."""
    from blurcam.synth import Placement, background, render

    frames, boxes = zip(*render([Placement(sprites[0], 160, (40, 60), (120, 80))], background((640, 360)), 8))
    src, dst = tmp_path / "bt709.mp4", tmp_path / "bt709.blurred.mp4"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
        vs.codec_context.colorspace = vs.codec_context.color_primaries = vs.codec_context.color_trc = 1  # BT.709
        vs.codec_context.color_range = 1  # limited
        vs.codec_context.options = {"crf": "12"}
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    redact_file(src, dst)
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        ca, cb = a.streams.video[0].codec_context, b.streams.video[0].codec_context
        assert (cb.colorspace, cb.color_primaries, cb.color_trc, cb.color_range) == (1, 1, 1, 1)
        luma_in = [f.to_ndarray(format="gray").astype(float) for f in a.decode(video=0)]
        luma_out = [f.to_ndarray(format="gray").astype(float) for f in b.decode(video=0)]
    for y_in, y_out, bx in zip(luma_in, luma_out, boxes):
        keep = np.ones(y_in.shape, bool)
        for x1, y1, x2, y2 in bx.astype(int):
            keep[max(0, y1 - 60):y2 + 40, max(0, x1 - 40):x2 + 40] = False
        assert abs(y_in[keep].mean() - y_out[keep].mean()) < 0.5  # same levels
        assert np.abs(y_in[keep] - y_out[keep]).mean() < 2  # re-encoding noise only


def test_odd_sized_video_loses_one_row_and_column(tmp_path):
    src, dst = tmp_path / "odd.mkv", tmp_path / "odd.blurred.mkv"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 321, 181, "yuv444p"  # 4:4:4 may be odd-sized; 4:2:0 may not
        for i in range(5):
            vf = av.VideoFrame.from_ndarray(np.full((181, 321, 3), 40 * i, np.uint8), format="rgb24")
            vf = vf.reformat(format="yuv444p")
            vf.pts = i
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    stats = redact_file(src, dst, PipelineConfig(detector=DetectorConfig(name="fast")))
    assert stats.frames == 5
    with av.open(str(dst)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 5 and (frames[0].width, frames[0].height) == (320, 180)


class EveryFourthFrame(BlinkingDetector):
    """The real detector, run on every 4th frame only (a sparse schedule)."""

    def __init__(self):
        super().__init__(())

    def detect(self, image, timestamp_ms):
        i = self.calls
        faces = super().detect(image, timestamp_ms)
        return faces if i % 4 == 0 else Faces.empty()


def test_sparse_detection_bridged_between_sightings(sprites, tmp_path):
    """A face crossing the frame at 7 px a frame, detected on every 4th frame only: the
    frames between two sightings get a box on the path between them, and leak nothing."""
    from blurcam.synth import Placement, background, render, write_clip

    frames, boxes = zip(*render([Placement(sprites[0], 150, (20, 100), (180, 140))], background((640, 360)), 24))
    src, dst = tmp_path / "fast.mp4", tmp_path / "fast.blurred.mp4"
    write_clip(src, frames, audio=False)
    detector = EveryFourthFrame()
    records = []
    try:
        redact_file(src, dst, detector=detector, on_frame=records.append)
    finally:
        detector.close()
    res = decode_rgb(dst)
    for i in range(4, 20):  # between sightings 4, 8, ..., 20
        if i % 4:
            true = boxes[i][0]
            carried = records[i].regions[records[i].faces.carried]
            # One box per face: the path box merges into the box held forward when that one's
            # redacted region holds it (or both become their hull), so a carried region
            # holds the face and is not much larger than a padded face box.
            holds = (carried[:, :2] <= true[:2] + 1).all(axis=1) & (carried[:, 2:] >= true[2:] - 1).all(axis=1)
            tight = (carried[:, 2] - carried[:, 0]) < 2 * (true[2] - true[0])
            assert (holds & tight).any(), f"frame {i}: no carried region on the face {true.round()}: {carried}"
        for box in boxes[i]:
            assert detail_kept(frames[i], res[i], box) < 0.4, f"frame {i} leaked"



def test_full_range_444_source_comes_out_limited_range_and_tagged_so(tmp_path):
    """A converted format is re-levelled to limited range and tagged that way, so black
    stays black and white stays white in players (not clipped or washed out)."""
    src, dst = tmp_path / "full444.mkv", tmp_path / "full444.blurred.mkv"
    ramp = np.tile(np.linspace(0, 255, 320).astype(np.uint8)[None, :, None], (180, 1, 3))
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 320, 180, "yuv444p"
        vs.codec_context.color_range = 2  # full
        vs.codec_context.options = {"crf": "0"}
        for i in range(3):
            vf = av.VideoFrame.from_ndarray(ramp, format="rgb24").reformat(format="yuv444p", dst_color_range="JPEG")
            vf.color_range, vf.pts = 2, i
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    with av.open(str(src)) as c:
        assert next(c.decode(video=0)).color_range == 2
    redact_file(src, dst, PipelineConfig(detector=DetectorConfig(name="fast")))
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.color_range == 1
        luma = next(c.decode(video=0)).to_ndarray(format="yuv420p")[:180]
    assert 14 <= luma.min() <= 18 and 233 <= luma.max() <= 237
