"""The face finders on real photographs, placed on CREMA-D-like frames, with their variants.

Every real face photograph that ships inside an installed package is used: scikit-image's
``astronaut`` (Eileen Collins) and ``camera`` (the cameraman, greyscale, half profile) and
matplotlib's ``grace_hopper.jpg``. (scikit-image's ``lfw_subset`` holds 25 x 25-pixel face crops,
too small to stand for an actor at CREMA-D's scale.) Each is cut out around the head with a soft
ellipse and laid on a plain light backdrop of 480 x 360 pixels, the face where CREMA-D's actors sit
and at their size; then darker and lighter exposure, skin tones shifted darker and lighter, and
small offsets and scales. BlazeFace, the default, must find every variant's face with an IoU of at
least 0.5; the skin-colour rule's IoU on the same variants is printed beside it (run with ``-s``).

``python tests/features/test_real_faces.py`` redraws docs/images/real_faces.png: each photograph's
reference frame with the reference face box (white), BlazeFace's box (green) and the skin rule's
(red), to check the reference boxes by eye.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from avshared import media
from avshared.features.face_detector import BlazeFace, blazeface, box_iou
from avshared.features.video import (
    FaceFramesConfig,
    central_face,
    clip_face,
    extract_clip_face_frames,
)

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is a test dependency")
cbook = pytest.importorskip("matplotlib.cbook")

WIDTH, HEIGHT = 480, 360
#: Where CREMA-D's actors' faces sit and how wide they are, in pixels of a 480 x 360 frame.
FACE_CENTRE = (240.0, 160.0)
FACE_WIDTH = 130.0
BACKDROP_RGB = (206, 204, 198)
MIN_IOU = 0.5


@dataclass(frozen=True)
class Photo:
    name: str
    rgb: np.ndarray
    #: The face box (x0, y0, x1, y1) in the photograph's pixels: per coordinate, the median of
    #: libfacedetection (yuface), BlazeFace short- and full-range and, on the astronaut, MTCNN
    #: (facenet-pytorch); checked by eye in docs/images/real_faces.png.
    face: tuple[float, float, float, float]


def photos() -> list[Photo]:
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        grace = cv2.imdecode(np.frombuffer(file.read(), np.uint8), cv2.IMREAD_COLOR)
    return [
        Photo("astronaut", skimage_data.astronaut(), (178, 66, 270, 175)),
        Photo("grace_hopper", cv2.cvtColor(grace, cv2.COLOR_BGR2RGB), (167, 121, 367, 332)),
        Photo(
            "camera", cv2.cvtColor(skimage_data.camera(), cv2.COLOR_GRAY2RGB), (195, 121, 264, 193)
        ),
    ]


@dataclass(frozen=True)
class Variant:
    name: str
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    exposure: float = 1.0  # multiplies the whole frame
    skin_lightness: float = 1.0  # scales the photograph's lightness (CIELAB L), not the backdrop's


VARIANTS = [
    Variant("reference"),
    Variant("darker exposure", exposure=0.55),
    Variant("lighter exposure", exposure=1.35),
    Variant("darker skin", skin_lightness=0.55),
    Variant("lighter skin", skin_lightness=1.25),
    Variant("left", dx=-30),
    Variant("right", dx=30),
    Variant("up", dy=-15),
    Variant("down", dy=15),
    Variant("smaller", scale=0.8),
    Variant("larger", scale=1.2),
]


def shift_lightness(rgb: np.ndarray, factor: float) -> np.ndarray:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] = np.clip(lab[..., 0] * factor, 0, 255)
    return cv2.cvtColor(lab.astype(np.uint8), cv2.COLOR_LAB2RGB)


def compose(photo: Photo, variant: Variant) -> tuple[np.ndarray, np.ndarray]:
    """The 480 x 360 frame of ``photo`` in ``variant``, and where its face box lands in it."""
    x0, y0, x1, y1 = photo.face
    scale = FACE_WIDTH * variant.scale / (x1 - x0)
    centre_x, centre_y = FACE_CENTRE[0] + variant.dx, FACE_CENTRE[1] + variant.dy
    # The affine map that scales the photograph and puts its face centre on the frame's.
    shift_x = centre_x - scale * (x0 + x1) / 2
    shift_y = centre_y - scale * (y0 + y1) / 2
    warp = np.array([[scale, 0, shift_x], [0, scale, shift_y]])
    rgb = shift_lightness(photo.rgb, variant.skin_lightness)
    placed = cv2.warpAffine(rgb, warp, (WIDTH, HEIGHT), flags=cv2.INTER_AREA)
    # Head and shoulders cut out with a soft ellipse, over a plain light backdrop.
    face_w, face_h = scale * (x1 - x0), scale * (y1 - y0)
    mask = np.zeros((HEIGHT, WIDTH), np.float32)
    cv2.ellipse(
        mask,
        (round(centre_x), round(centre_y + 0.45 * face_h)),
        (round(1.05 * face_w), round(1.35 * face_h)),
        0, 0, 360, 1.0, -1,
    )  # fmt: skip
    mask = cv2.GaussianBlur(mask, (0, 0), 0.08 * face_w)[..., None]
    frame = mask * placed + (1 - mask) * np.array(BACKDROP_RGB, np.float32)
    frame = np.clip(frame * variant.exposure, 0, 255).astype(np.uint8)
    face = np.array(
        [scale * x0 + shift_x, scale * y0 + shift_y, scale * x1 + shift_x, scale * y1 + shift_y]
    )
    return frame, face


def found_iou(frame: np.ndarray, face: np.ndarray, detector: str) -> float:
    """IoU of the face box the crop is built on (before its margin) with the reference box."""
    found = clip_face([frame], FaceFramesConfig(face_detector=detector, detection_frames=1))
    return 0.0 if found is None else float(box_iou(face, np.array([found.box], float))[0])


@pytest.fixture(scope="module")
def ious() -> dict[tuple[str, str], dict[str, float]]:
    table = {}
    for photo in photos():
        for variant in VARIANTS:
            frame, face = compose(photo, variant)
            table[photo.name, variant.name] = {
                detector: found_iou(frame, face, detector) for detector in ("blazeface", "skin")
            }
    print(f"\n{'photograph':<14}{'variant':<18}{'BlazeFace IoU':>14}{'skin rule IoU':>15}")
    for (photo, variant), row in table.items():
        print(f"{photo:<14}{variant:<18}{row['blazeface']:>14.2f}{row['skin']:>15.2f}")
    return table


def test_every_photograph_ships_and_is_composed_on_a_crema_d_frame():
    for photo in photos():
        frame, face = compose(photo, VARIANTS[0])
        assert frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == np.uint8
        assert (face[2] - face[0]) == pytest.approx(FACE_WIDTH)
        # The corners are the plain backdrop, the face centre is the photograph.
        np.testing.assert_allclose(frame[2, 2], BACKDROP_RGB, atol=2)
        centre = frame[round(FACE_CENTRE[1]), round(FACE_CENTRE[0])]
        assert np.abs(centre.astype(int) - BACKDROP_RGB).max() > 10


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper", "camera"])
def test_blazeface_finds_the_face_in_every_variant(ious, photo):
    poor = {v.name: ious[photo, v.name]["blazeface"] for v in VARIANTS}
    poor = {name: round(iou, 2) for name, iou in poor.items() if iou < MIN_IOU}
    assert not poor, f"BlazeFace's face box overlaps the face by less than {MIN_IOU}: {poor}"


def test_the_skin_rule_is_measured_on_the_same_variants(ious):
    skin = [row["skin"] for row in ious.values()]
    assert len(skin) == 3 * len(VARIANTS) and all(0.0 <= iou <= 1.0 for iou in skin)
    # The colour rule cannot see a greyscale face at all: the reason for a real detector.
    assert all(ious["camera", v.name]["skin"] == 0.0 for v in VARIANTS)


def blank_frame() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), BACKDROP_RGB, np.uint8)


def two_faces_frames() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A frame with Grace Hopper small at the left edge and the astronaut large in the middle, the
    same frame with Grace Hopper alone, and the two face boxes."""
    astronaut, grace = photos()[0], photos()[1]
    central, central_box = compose(astronaut, Variant("central"))
    side, side_box = compose(grace, Variant("left", dx=-165, scale=0.6))
    both, side_only = central.copy(), blank_frame()
    both[:, :150] = side_only[:, :150] = side[:, :150]
    return both, side_only, central_box, side_box


def test_a_frame_without_a_face_has_none(tmp_path):
    assert blazeface()(blank_frame()) == []
    # The photograph's backdrop and clothes alone: the astronaut with her head painted over.
    frame, face = compose(photos()[0], VARIANTS[0])
    x0, y0, x1, y1 = np.round(face).astype(int)
    frame[y0 - 40 : y1 + 10, x0 - 20 : x1 + 20] = BACKDROP_RGB
    assert blazeface()(frame) == []
    assert clip_face([frame] * 3, FaceFramesConfig()) is None


def test_of_two_faces_the_largest_near_the_centre_is_taken_and_both_are_counted():
    frame, side_only, central_box, side_box = two_faces_frames()
    detections = blazeface()(frame)
    boxes = np.array([detection.box for detection in detections])
    assert len(detections) == 2
    assert box_iou(central_box, boxes).max() >= MIN_IOU
    assert box_iou(side_box, boxes).max() >= MIN_IOU
    found = clip_face([frame] * 3, FaceFramesConfig())
    assert found.face_count == 2
    assert box_iou(central_box, np.array([found.box], float))[0] >= MIN_IOU
    # The side face alone lies outside the search region (the middle 60 % of the width)...
    assert clip_face([side_only], FaceFramesConfig()) is None
    # ...and is taken when the region is the whole width.
    alone = clip_face([side_only], FaceFramesConfig(search_width=1.0))
    assert box_iou(side_box, np.array([alone.box], float))[0] >= MIN_IOU


def test_the_face_taken_is_the_largest_whose_centre_is_in_the_search_region():
    config = FaceFramesConfig(search_width=0.6, search_height=0.9)  # x 96-384, y 18-342
    big_outside = (0, 100, 160, 260)
    small_inside = (200, 100, 240, 140)
    medium_inside = (300, 150, 380, 230)
    faces = [big_outside, small_inside, medium_inside]
    assert central_face(faces, WIDTH, HEIGHT, config) == medium_inside
    assert central_face([big_outside], WIDTH, HEIGHT, config) is None


def test_detection_is_the_same_for_the_same_frame_and_follows_the_face():
    frame, _ = compose(photos()[1], VARIANTS[0])
    first, again, fresh = blazeface()(frame), blazeface()(frame.copy()), BlazeFace()(frame)
    assert first == again == fresh and len(first) == 1
    moved, _ = compose(photos()[1], Variant("right", dx=30))
    assert blazeface()(moved)[0].box[0] == pytest.approx(first[0].box[0] + 30, abs=6)


def test_a_clip_with_two_faces_reports_them_and_which_method_found_the_face(tmp_path):
    frame, *_ = two_faces_frames()
    path = tmp_path / "two.flv"
    media.write_video(path, [frame] * 12, 30.0)
    config = FaceFramesConfig(num_frames=4, size=64)
    item = extract_clip_face_frames(("1001_DFA_ANG_XX", str(path)), config)
    assert [(i.issue, i.action) for i in item.issues] == [
        ("face_found", "blazeface"),
        ("several_faces", "kept_1_of_2"),
    ]
    assert item.array.shape == (4, 3, 64, 64)
    again = extract_clip_face_frames(("1001_DFA_ANG_XX", str(path)), config)
    np.testing.assert_array_equal(item.array, again.array)


def test_a_clip_without_a_face_is_handled_per_on_no_face(tmp_path):
    path = tmp_path / "empty.flv"
    media.write_video(path, [blank_frame()] * 12, 30.0)
    for policy, action in (("centre_crop", "centre_crop"), ("reject", "rejected")):
        config = FaceFramesConfig(num_frames=4, size=64, on_no_face=policy)
        item = extract_clip_face_frames(("1001_DFA_ANG_XX", str(path)), config)
        assert [(i.issue, i.action) for i in item.issues] == [("no_face", action)]


def draw_reference_figure(path: Path) -> None:
    """Each photograph's reference frame with the reference box and what the two finders took."""
    tiles = []
    for photo in photos():
        frame, face = compose(photo, VARIANTS[0])
        tile = frame.copy()
        for detector, colour in (("skin", (220, 30, 30)), ("blazeface", (0, 200, 0))):
            found = clip_face([frame], FaceFramesConfig(face_detector=detector, detection_frames=1))
            if found is not None:
                cv2.rectangle(tile, found.box[:2], (found.box[2] - 1, found.box[3] - 1), colour, 2)
        corners = np.round(face).astype(int)
        cv2.rectangle(tile, tuple(corners[:2]), tuple(corners[2:] - 1), (255, 255, 255), 1)
        cv2.putText(tile, photo.name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
        tiles.append(tile)
    image = cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])


if __name__ == "__main__":
    draw_reference_figure(
        Path(__file__).resolve().parents[2] / "docs" / "images" / "real_faces.png"
    )
