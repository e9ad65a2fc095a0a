"""BlazeFace: anchors, box decoding, weighted non-maximum suppression, the shipped model file."""

from __future__ import annotations

import hashlib
from importlib.resources import files

import cv2
import numpy as np
import pytest

from avshared.features import face_detector
from avshared.features.face_detector import (
    ENGINE_PREFERENCE,
    BlazeFace,
    box_iou,
    decode_boxes,
    ssd_anchors,
    tflite_engine,
    weighted_nms,
)

MODEL_SHA256 = "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"


def test_the_model_ships_inside_the_package_with_its_licence():
    models = files("avshared.features") / "weights"
    model = (models / face_detector.MODEL_FILE).read_bytes()
    assert hashlib.sha256(model).hexdigest() == MODEL_SHA256
    assert "Apache License" in (models / "LICENSE-blazeface.txt").read_text()


def test_anchors_cover_the_two_grids_in_the_models_output_order():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    # 16 x 16 cells of 2 anchors, then 8 x 8 cells of 6, row by row.
    np.testing.assert_allclose(anchors[:4], [[1 / 32, 1 / 32]] * 2 + [[3 / 32, 1 / 32]] * 2)
    np.testing.assert_allclose(anchors[511], [31 / 32, 31 / 32])
    np.testing.assert_allclose(anchors[512:518], [[1 / 16, 1 / 16]] * 6)
    np.testing.assert_allclose(anchors[-1], [15 / 16, 15 / 16])
    np.testing.assert_allclose(anchors[512 + 6 * 8], [1 / 16, 3 / 16])  # second row


def test_boxes_are_decoded_around_their_anchors_and_low_scores_dropped():
    anchors = np.array([[0.25, 0.5], [0.75, 0.5], [0.5, 0.5]])
    raw_scores = np.array([2.0, -3.0, 0.0])  # sigmoid: 0.88, 0.05, 0.5
    raw_boxes = np.zeros((3, 16))
    raw_boxes[0, :4] = [12.8, -6.4, 32.0, 64.0]  # centre moved 0.1 right, 0.05 up; 0.25 x 0.5
    raw_boxes[2, :4] = [0.0, 0.0, 12.8, 12.8]
    boxes, scores = decode_boxes(raw_scores, raw_boxes, anchors, min_score=0.5)
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-2.0)), 0.5])
    np.testing.assert_allclose(boxes[0], [0.225, 0.2, 0.475, 0.7])
    np.testing.assert_allclose(boxes[1], [0.45, 0.45, 0.55, 0.55])
    # Huge logits do not overflow.
    _, scores = decode_boxes(np.array([-1e4, 1e4]), np.zeros((2, 16)), anchors[:2], 0.5)
    np.testing.assert_allclose(scores, [1.0])


def test_box_iou():
    box = np.array([0.0, 0.0, 2.0, 2.0])
    others = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    np.testing.assert_allclose(box_iou(box, others), [1.0, 1 / 3, 0.0])


def test_weighted_nms_merges_overlapping_hits_and_keeps_separate_faces():
    boxes = np.array(
        [[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.1, 1.0, 1.1]]
    )
    scores = np.array([0.6, 0.9, 0.7, 0.3])
    merged = weighted_nms(boxes, scores, iou_threshold=0.3)
    assert [score for _, score in merged] == [0.9, 0.7]
    weights = np.array([0.9, 0.6, 0.3])
    expected = weights @ boxes[[1, 0, 3]] / weights.sum()
    np.testing.assert_allclose(merged[0][0], expected)
    np.testing.assert_allclose(merged[1][0], boxes[2])
    assert weighted_nms(np.zeros((0, 4)), np.zeros(0), 0.3) == []


def test_the_model_input_is_the_letterboxed_frame_in_minus_one_to_one():
    frame = np.zeros((360, 480, 3), np.uint8)
    frame[:, :, 0] = 255
    blob, (scale, offset) = BlazeFace().model_input(frame)
    assert blob.shape == (1, 3, 128, 128) and blob.dtype == np.float32
    # 480 x 360 shrinks to 128 x 96 between bars of 16 rows: black (-1) above, red inside.
    assert blob[0, 0, 15, 64] == pytest.approx(-1.0) and blob[0, 0, 16, 64] == pytest.approx(1.0)
    assert blob[0, 0, 111, 64] == pytest.approx(1.0) and blob[0, 0, 112, 64] == pytest.approx(-1.0)
    assert blob[0, 1, 64, 64] == pytest.approx(-1.0)
    # Input pixels map back to frame pixels: the picture's corners to the frame's.
    corners = np.array([0, 16, 128, 112]) * scale + offset
    np.testing.assert_allclose(corners, [0, 0, 480, 360])


def test_the_engine_is_the_first_one_the_installed_opencv_offers(monkeypatch):
    # OpenCV 5.0 offers ENGINE_CLASSIC (its default engine drops the scores); 5.1 removed it.
    monkeypatch.setattr(cv2.dnn, "ENGINE_CLASSIC", 7, raising=False)
    assert tflite_engine() == "ENGINE_CLASSIC"
    monkeypatch.delattr(cv2.dnn, "ENGINE_CLASSIC")
    monkeypatch.setattr(cv2.dnn, "ENGINE_OPENCV", 8, raising=False)
    assert tflite_engine() == "ENGINE_OPENCV"
    monkeypatch.delattr(cv2.dnn, "ENGINE_OPENCV")
    with pytest.raises(RuntimeError, match=rf"OpenCV {cv2.__version__}.*requirements.lock"):
        tflite_engine()


def test_the_installed_opencv_runs_the_model_with_both_outputs():
    detector = BlazeFace()
    raw_scores, raw_boxes = detector._forward(np.zeros((1, 3, 128, 128), np.float32))
    assert raw_scores.shape == (896,) and raw_boxes.shape == (896, 16)
    assert detector.engine in ENGINE_PREFERENCE


class _NetWithoutScores:
    """What OpenCV 5.0's default engine gives for this graph: the boxes, not the scores."""

    def setInput(self, blob):
        self.blob = blob

    def forward(self, names):
        return [np.zeros((1, 896, 16), np.float32)]


def test_an_opencv_that_returns_other_outputs_fails_at_once_with_a_message(monkeypatch):
    monkeypatch.setattr(cv2.dnn, "readNetFromTFLite", lambda *args, **kwargs: _NetWithoutScores())
    with pytest.raises(RuntimeError) as raised:
        BlazeFace()
    message = str(raised.value)
    assert f"OpenCV {cv2.__version__}" in message
    assert "classificators (1, 896, 1)" in message and "regressors (1, 896, 16)" in message
    assert "face_detector=skin" in message


def test_a_blazeface_configuration_fails_before_any_clip_on_such_an_opencv(monkeypatch):
    from avshared.features.video import FaceFramesConfig

    face_detector.blazeface.cache_clear()
    monkeypatch.setattr(cv2.dnn, "readNetFromTFLite", lambda *args, **kwargs: _NetWithoutScores())
    try:
        with pytest.raises(RuntimeError, match=f"OpenCV {cv2.__version__}"):
            FaceFramesConfig(face_detector="blazeface")
        FaceFramesConfig(face_detector="skin")  # the colour rule needs no network
    finally:
        face_detector.blazeface.cache_clear()
