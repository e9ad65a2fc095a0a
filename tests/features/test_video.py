"""Face frames: frame sampling, face finding and cropping on generated videos, and every defect.

The generated clips' "face" is a skin-coloured ellipse, which the skin rule finds and BlazeFace (a
real face detector) rightly does not: these tests use the skin rule to check the cropping around a
known box; tests/features/test_real_faces.py checks BlazeFace on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avshared import media
from avshared.features import video
from avshared.features.video import (
    FaceFramesConfig,
    centre_box,
    extract_clip_face_frames,
    sample_frame_indices,
    square_box,
)

SKIN_RGB = (224, 172, 140)
SKIN = FaceFramesConfig(face_detector="skin")
WIDTH, HEIGHT = 480, 360
#: The face of the generated clips: an ellipse right of and above the frame's centre.
FACE_CENTRE, FACE_AXES = (290, 150), (45, 60)


def background_level(index: int) -> int:
    """Grey level of frame ``index``'s background: a marker of the frame, readable after coding."""
    return 20 + 8 * index


def write_clip(path, frame_count: int, face: bool = True) -> None:
    frames = []
    for index in range(frame_count):
        frame = np.full((HEIGHT, WIDTH, 3), background_level(index), dtype=np.uint8)
        if face:
            cv2.ellipse(frame, FACE_CENTRE, FACE_AXES, 0, 0, 360, SKIN_RGB, -1)
        frames.append(frame)
    media.write_video(path, frames, 30.0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    write_clip(root / "face.flv", 24)
    write_clip(root / "short.flv", 3)
    write_clip(root / "no_face.flv", 24, face=False)
    (root / "broken.flv").write_bytes(b"FLV\x01 this is no video")
    return root


def job(clips, name: str) -> tuple[str, str]:
    return ("1001_DFA_ANG_XX", str(clips / f"{name}.flv"))


def test_sampled_frames_are_the_middles_of_equal_spans():
    assert sample_frame_indices(80, 8) == [5, 15, 25, 35, 45, 55, 65, 75]
    assert sample_frame_indices(24, 8) == [1, 4, 7, 10, 13, 16, 19, 22]
    # Fewer frames than asked: each frame is repeated, in order.
    assert sample_frame_indices(3, 8) == [0, 0, 0, 1, 1, 2, 2, 2]
    indices = sample_frame_indices(1800, 8)
    assert indices == sorted(indices) and indices[0] > 0 and indices[-1] < 1800


def test_the_crop_holds_the_face_and_the_frames_come_in_sampled_order(clips):
    config = FaceFramesConfig(num_frames=8, size=112, margin=0.2, face_detector="skin")
    item = extract_clip_face_frames(job(clips, "face"), config)
    assert [(i.issue, i.action) for i in item.issues] == [("face_found", "skin")]
    assert item.array.shape == (8, 3, 112, 112)
    assert item.array.dtype == np.uint8

    frames = item.array.transpose(0, 2, 3, 1).astype(int)
    # The face fills the middle of every crop: skin-coloured at the centre...
    centre = frames[:, 48:64, 48:64].reshape(8, -1, 3).mean(axis=1)
    np.testing.assert_allclose(centre, np.tile(SKIN_RGB, (8, 1)), atol=12)
    # ...and the margin around it is background, whose grey level tells which frame it came from.
    corner = frames[:, :6, :6].mean(axis=(1, 2, 3))
    expected = [background_level(index) for index in sample_frame_indices(24, 8)]
    np.testing.assert_allclose(corner, expected, atol=4)


def test_the_face_box_is_found_around_an_off_centre_face(clips):
    frames, _, _ = video.read_sampled_frames(str(clips / "face.flv"), 4)
    face = video.clip_face(frames, SKIN)
    (cx, cy), (ax, ay) = FACE_CENTRE, FACE_AXES
    assert face.box == pytest.approx((cx - ax, cy - ay, cx + ax + 1, cy + ay + 1), abs=3)
    assert face.face_count == 1
    # BlazeFace sees no face in a plain ellipse.
    assert video.clip_face(frames, FaceFramesConfig(face_detector="blazeface")) is None


def test_the_face_is_searched_on_detection_frames_spread_over_the_clip(monkeypatch):
    searched = []

    def record(frame, config):
        searched.append(int(frame[0, 0, 0]))
        return []

    monkeypatch.setattr(video, "detect_faces", record)
    frames = [np.full((HEIGHT, WIDTH, 3), index, np.uint8) for index in range(8)]
    for face_box in video.FACE_BOXES:
        searched.clear()
        assert video.clip_face(frames, FaceFramesConfig(face_box=face_box)) is None
        # From the clip's middle outwards; all of them when none shows a face.
        assert searched == [4, 1, 6]
        assert sorted(searched) == sample_frame_indices(8, 3)


def test_middle_outwards_orders_by_distance_from_the_middle():
    assert video.middle_outwards([1, 4, 6]) == [4, 1, 6]
    assert video.middle_outwards([0, 2, 4, 6]) == [2, 4, 0, 6]
    assert video.middle_outwards([7]) == [7]


def faces_on(frames_with_faces: dict[int, list[tuple[int, int, int, int]]]):
    """A stand-in detector: the faces of each frame, the frame told by its first pixel."""
    searched = []

    def detect(frame, config):
        searched.append(int(frame[0, 0, 0]))
        return frames_with_faces.get(int(frame[0, 0, 0]), [])

    return detect, searched


@pytest.mark.parametrize(
    ("face_box", "expected_box", "expected_search"),
    [
        # first: the middle frame shows a face, so it is the only one searched.
        ("first", (200, 100, 280, 200), [4]),
        # median: every detection frame, the box their median (frame 1's stray face is outvoted).
        ("median", (210, 100, 290, 200), [4, 1, 6]),
    ],
)
def test_face_box_takes_the_first_face_found_or_the_median(
    monkeypatch, face_box, expected_box, expected_search
):
    detect, searched = faces_on(
        {4: [(200, 100, 280, 200)], 1: [(210, 90, 290, 190)], 6: [(220, 100, 300, 210)]}
    )
    monkeypatch.setattr(video, "detect_faces", detect)
    frames = [np.full((HEIGHT, WIDTH, 3), index, np.uint8) for index in range(8)]
    face = video.clip_face(frames, FaceFramesConfig(face_box=face_box))
    assert face.box == expected_box
    assert searched == expected_search


def test_first_goes_on_searching_until_a_frame_shows_a_face(monkeypatch):
    # Only the last frame searched shows a face: both methods find it (the same clips have a face).
    detect, searched = faces_on({6: [(200, 100, 280, 200), (10, 10, 30, 30)]})
    monkeypatch.setattr(video, "detect_faces", detect)
    frames = [np.full((HEIGHT, WIDTH, 3), index, np.uint8) for index in range(8)]
    for face_box in video.FACE_BOXES:
        searched.clear()
        face = video.clip_face(frames, FaceFramesConfig(face_box=face_box))
        assert face == video.ClipFace((200, 100, 280, 200), face_count=2)
        assert searched == [4, 1, 6]


def test_square_box_adds_the_margin_and_stays_in_the_frame():
    assert square_box((100, 100, 140, 180), 0.25, 480, 360) == (60, 80, 180, 200)
    # Near the edge the square is shifted inside rather than cut.
    assert square_box((0, 300, 40, 360), 0.25, 480, 360) == (0, 270, 90, 360)
    # Larger than the frame: shrunk to its height.
    assert square_box((0, 0, 480, 360), 0.5, 480, 360) == (60, 0, 420, 360)


def test_the_centre_detector_always_uses_the_fixed_crop(clips):
    config = FaceFramesConfig(face_detector="centre", centre_x=0.5, centre_y=0.5, centre_side=0.5)
    assert centre_box(WIDTH, HEIGHT, config) == (150, 90, 330, 270)
    item = extract_clip_face_frames(job(clips, "no_face"), config)
    assert item.issues == () and item.array.shape == (8, 3, 112, 112)


@pytest.mark.parametrize(
    ("policy", "issues", "frames_kept"),
    [
        ("repeat", [("short_video", "repeated_frames"), ("face_found", "skin")], 8),
        ("reject", [("short_video", "rejected")], 0),
    ],
)
def test_a_short_video_is_repeated_or_rejected(clips, policy, issues, frames_kept):
    config = FaceFramesConfig(face_detector="skin", on_short_video=policy)
    item = extract_clip_face_frames(job(clips, "short"), config)
    assert [(i.issue, i.action) for i in item.issues] == issues
    if frames_kept:
        levels = item.array[:, :, :4, :4].mean(axis=(1, 2, 3))
        expected = [background_level(index) for index in (0, 0, 0, 1, 1, 2, 2, 2)]
        np.testing.assert_allclose(levels, expected, atol=4)
    else:
        assert item.array is None


def test_no_face_is_handled_per_policy(clips):
    def run(policy):
        config = FaceFramesConfig(face_detector="skin", on_no_face=policy)
        return extract_clip_face_frames(job(clips, "no_face"), config)

    full, centred, rejected = run("full_frame"), run("centre_crop"), run("reject")
    assert [(i.issue, i.action) for i in full.issues] == [("no_face", "full_frame")]
    assert [(i.issue, i.action) for i in centred.issues] == [("no_face", "centre_crop")]
    assert [(i.issue, i.action) for i in rejected.issues] == [("no_face", "rejected")]
    assert rejected.array is None
    # Letterboxed full frame: black bars above and below the 4:3 picture; the centre crop has none.
    assert full.array[:, :, :10].max() == 0
    assert full.array[:, :, 56].min() > 0
    assert centred.array.min() > 0


def test_an_undecodable_or_missing_video_is_rejected(clips):
    for name in ("broken", "missing"):
        item = extract_clip_face_frames(job(clips, name), FaceFramesConfig())
        assert item.array is None
        assert item.issues[-1].issue == "undecodable"
        assert item.issues[-1].action == "rejected"


def test_a_wrong_frame_count_in_the_container_is_recounted(clips, monkeypatch):
    real_read = media.read_counted_frames

    def overstated(path, pick):
        count, frames = real_read(path, lambda real_count: pick(real_count * 3))
        return count * 3, frames

    monkeypatch.setattr(media, "read_counted_frames", overstated)
    item = extract_clip_face_frames(job(clips, "face"), SKIN)
    assert [(i.issue, i.action) for i in item.issues] == [
        ("frame_count_mismatch", "recounted"),
        ("face_found", "skin"),
    ]
    levels = item.array[:, :, :4, :4].mean(axis=(1, 2, 3))
    expected = [background_level(index) for index in sample_frame_indices(24, 8)]
    np.testing.assert_allclose(levels, expected, atol=4)


def test_count_frames_counts_what_decodes(clips):
    assert media.count_frames(clips / "face.flv") == 24
    assert media.count_frames(clips / "short.flv") == 3


def test_counted_frames_come_with_the_container_count_from_one_opening(clips):
    count, frames = media.read_counted_frames(clips / "face.flv", lambda n: [n - 1, 0])
    assert count == 24
    for counted, read in zip(frames, media.read_frames(clips / "face.flv", [23, 0]), strict=True):
        np.testing.assert_array_equal(counted, read)


def test_bad_policies_are_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="repeat"):
        FaceFramesConfig(on_short_video="loop")
    with pytest.raises(ValueError, match="centre_crop"):
        FaceFramesConfig(on_no_face="skip")
    with pytest.raises(ValueError, match="blazeface"):
        FaceFramesConfig(face_detector="haar")
    with pytest.raises(ValueError, match="detection_frames"):
        FaceFramesConfig(detection_frames=0)
    with pytest.raises(ValueError, match="median"):
        FaceFramesConfig(face_box="mean")
