"""BlazeFace short-range: a real face detector whose weights ship inside this package.

MediaPipe's BlazeFace short-range model (Apache-2.0; see ``models/README.md``) is a 229 KB
TFLite file read by OpenCV's own DNN module, so it needs nothing beyond OpenCV, runs the same on
every platform OpenCV supports and downloads nothing. The model sees a 128 x 128 RGB square: a frame
is letterboxed to a square (black bars) and resized to it, and the model scores 896 fixed anchors.
This module decodes those anchors as MediaPipe does (``SsdAnchorsCalculator`` and
``TensorsToDetectionsCalculator`` of the short-range graph) and merges overlapping hits with
MediaPipe's weighted non-maximum suppression. Everything is deterministic: the same frame gives the
same boxes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files

import cv2
import numpy as np

#: The model's input side in pixels, and how far its raw box offsets are scaled.
INPUT_SIZE = 128
#: (stride, anchors per cell) of the short-range graph's anchor layers: 16 x 16 cells with 2
#: anchors, then the three 8 x 8 layers of stride 16 merged into one with 6 anchors per cell.
ANCHOR_LAYERS = ((8, 2), (16, 6))
#: MediaPipe's thresholds for this model: detection score, and the overlap that merges two hits.
MIN_SCORE = 0.5
MIN_SUPPRESSION_IOU = 0.3
#: Raw scores are clipped before the sigmoid, as MediaPipe does (``score_clipping_thresh``).
SCORE_CLIP = 100.0
MODEL_FILE = "blazeface_short_range.tflite"
#: OpenCV's TFLite engines that return both of this graph's outputs, best first: OpenCV 5.0's
#: ``ENGINE_CLASSIC`` (its new engine, the default there, returns the boxes without the scores) and
#: OpenCV 5.1's ``ENGINE_OPENCV`` (5.1 dropped the classic engine; its default resolves to this).
ENGINE_PREFERENCE = ("ENGINE_CLASSIC", "ENGINE_OPENCV")
#: The graph's outputs by name, with the shape each must have: the anchors' score logits, and
#: their box offsets followed by six keypoints.
OUTPUT_SHAPES = {"classificators": (1, 896, 1), "regressors": (1, 896, 16)}


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` is (x0, y0, x1, y1) in frame pixels (floats), ``score`` in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)


def ssd_anchors() -> np.ndarray:
    """The model's 896 anchor centres, ``(896, 2)`` (x, y) in [0, 1] of the input square, in the
    order of its outputs (row by row, cell by cell, then the anchors of a cell)."""
    centres = []
    for stride, per_cell in ANCHOR_LAYERS:
        cells = INPUT_SIZE // stride
        grid_y, grid_x = np.mgrid[0:cells, 0:cells]
        cell_centres = np.stack([grid_x, grid_y], axis=-1).reshape(-1, 2)
        centres.append(np.repeat((cell_centres + 0.5) / cells, per_cell, axis=0))
    return np.concatenate(centres)


def decode_boxes(
    raw_scores: np.ndarray, raw_boxes: np.ndarray, anchors: np.ndarray, min_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes and scores of the anchors scoring at least ``min_score``.

    Args:
        raw_scores: ``(anchors,)`` logits.
        raw_boxes: ``(anchors, 4 + ...)`` offsets of the box centre from the anchor and the box
            size, in input pixels (keypoints after the first four columns are ignored).
        anchors: ``(anchors, 2)`` from ``ssd_anchors``.

    Returns:
        ``(n, 4)`` boxes (x0, y0, x1, y1) as fractions of the input square, and ``(n,)`` scores.
    """
    logits = np.clip(raw_scores.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = scores >= min_score
    centres = anchors[keep] + raw_boxes[keep, :2] / INPUT_SIZE
    half_sizes = raw_boxes[keep, 2:4] / INPUT_SIZE / 2
    return np.concatenate([centres - half_sizes, centres + half_sizes], axis=1), scores[keep]


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x0, y0, x1, y1) box with each row of ``boxes``."""
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = np.prod(box[2:] - box[:2]) + areas - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: the best-scoring box and every box overlapping
    it by more than ``iou_threshold`` become one box, their score-weighted mean, with the best
    score; repeated on what is left. Ties keep the input order, so the result is deterministic."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    merged = []
    while len(boxes):
        overlapping = box_iou(boxes[0], boxes) > iou_threshold
        overlapping[0] = True
        weights = scores[overlapping]
        merged.append((weights @ boxes[overlapping] / weights.sum(), float(scores[0])))
        boxes, scores = boxes[~overlapping], scores[~overlapping]
    return merged


class BlazeFace:
    """BlazeFace short-range on OpenCV's DNN module: ``detector(frame)`` lists the faces of an RGB
    frame, best first. One instance per process (``blazeface()``): loading takes a few ms and an
    OpenCV network cannot be pickled to worker processes."""

    def __init__(self, min_score: float = MIN_SCORE) -> None:
        model = files("avshared.features") / "weights" / MODEL_FILE
        self.engine = tflite_engine()
        self.net = cv2.dnn.readNetFromTFLite(str(model), engine=getattr(cv2.dnn, self.engine))
        self.output_names = tuple(OUTPUT_SHAPES)
        self.anchors = ssd_anchors()
        self.min_score = min_score
        # One forward pass on a blank input now, so an OpenCV whose network differs fails here,
        # at the first clip, with a message, rather than as an unpacking error deep in a worker.
        self._forward(np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32))

    def _forward(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The raw ``(896,)`` score logits and ``(896, 16)`` box offsets of one input blob."""
        self.net.setInput(blob)
        try:
            outputs = self.net.forward(list(self.output_names))
        except cv2.error as err:
            raise incompatible_opencv(self.engine, f"no outputs named {self.output_names}") from err
        shapes = {
            name: tuple(out.shape) for name, out in zip(self.output_names, outputs, strict=False)
        }
        if len(outputs) != len(OUTPUT_SHAPES) or shapes != OUTPUT_SHAPES:
            raise incompatible_opencv(self.engine, f"outputs {shapes}")
        raw_scores, raw_boxes = outputs
        return raw_scores.reshape(-1), raw_boxes.reshape(len(self.anchors), -1)

    def model_input(self, frame: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """The frame letterboxed into the model's input: shrunk to fit 128 x 128 (aspect kept),
        centred between black bars, as a ``(1, 3, 128, 128)`` float32 blob in [-1, 1]; and the
        ``(4,)`` scale and ``(4,)`` offset that map (x0, y0, x1, y1) in input pixels back to frame
        pixels (frame = input * scale + offset)."""
        height, width = frame.shape[:2]
        fit = INPUT_SIZE / max(height, width)
        small_w, small_h = round(width * fit), round(height * fit)
        # Shrinking before padding costs a fraction of padding the full frame first. Bilinear, as
        # MediaPipe's own CPU preprocessing (warpAffine, INTER_LINEAR), and a tenth of INTER_AREA's
        # cost at this ratio (about 4:1), which is most of a clip's detection time besides the net.
        small = cv2.resize(frame, (small_w, small_h), interpolation=cv2.INTER_LINEAR)
        top, left = (INPUT_SIZE - small_h) // 2, (INPUT_SIZE - small_w) // 2
        square = cv2.copyMakeBorder(
            small,
            top,
            INPUT_SIZE - small_h - top,
            left,
            INPUT_SIZE - small_w - left,
            cv2.BORDER_CONSTANT,
        )
        blob = (square.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        scale = np.array([width / small_w, height / small_h] * 2)
        return np.ascontiguousarray(blob), (scale, -np.array([left, top] * 2) * scale)

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        """The faces in an RGB uint8 frame ``(H, W, 3)``, highest score first."""
        blob, (scale, offset) = self.model_input(frame)
        boxes, scores = decode_boxes(*self._forward(blob), self.anchors, self.min_score)
        return [
            Detection(tuple(float(v) for v in box * INPUT_SIZE * scale + offset), score)
            for box, score in weighted_nms(boxes.astype(np.float64), scores, MIN_SUPPRESSION_IOU)
        ]


def tflite_engine() -> str:
    """The name of the first engine of ``ENGINE_PREFERENCE`` that the installed OpenCV offers."""
    for name in ENGINE_PREFERENCE:
        if hasattr(cv2.dnn, name):
            return name
    raise incompatible_opencv(None, "none of the TFLite engines " + ", ".join(ENGINE_PREFERENCE))


def incompatible_opencv(engine: str | None, found: str) -> RuntimeError:
    """The error for an OpenCV whose DNN module runs BlazeFace differently from 5.0 and 5.1."""
    expected = ", ".join(f"{name} {shape}" for name, shape in OUTPUT_SHAPES.items())
    return RuntimeError(
        f"BlazeFace on OpenCV {cv2.__version__} (engine {engine}): expected the outputs "
        f"{expected}, found {found}. The project is tested with the OpenCV of its lock file: "
        "`pip install -c requirements.lock -e .`, or run with "
        "`--params=features.video.face_detector=skin` (the skin-colour rule) instead."
    )


@functools.cache
def blazeface(min_score: float = MIN_SCORE) -> BlazeFace:
    """This process's detector (loaded on first use)."""
    return BlazeFace(min_score)
