"""Face frames: a fixed number of frames spread over each clip, cropped to the face, kept as uint8.

Each clip becomes a ``(num_frames, 3, size, size)`` uint8 array (RGB, channels first). Frame ``k``
of ``n`` is the one at the middle of the k-th of ``n`` equal spans of the clip. The face is looked
for on ``detection_frames`` of those frames, spread over the clip, by ``face_detector``:

- ``blazeface`` (default): MediaPipe's BlazeFace short-range detector, shipped with this package
  and run by OpenCV (``avshared.features.face_detector``);
- ``skin``: the largest skin-coloured blob (Chai & Ngan's YCrCb box, Cr 133-173 and Cb 77-127),
  trimmed below to a face's proportions to drop the neck: a colour rule, kept as a named fallback;
- ``centre``: no detection, a fixed crop where CREMA-D's framing puts the face.

In each frame the face taken is the largest whose centre lies in a search region around the frame
centre, where CREMA-D's actors sit. Every frame of a clip shares one crop, the clip's face box made
square with a margin; per ``face_box`` that box is

- ``median`` (default): the median of the faces of all ``detection_frames``, which ignores one
  stray detection;
- ``first``: the face of the first searched frame that shows one, searching from the clip's
  middle outwards, so that a clip whose middle frame shows the face costs one detection.

Both find a face in the same clips: in any of the searched frames. When none shows a face the
clip is handled per ``on_no_face``. Each clip's issues say which method found its face
(``face_found``) and whether a frame showed several faces (``several_faces``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avshared import media
from avshared.features.face_detector import MIN_SCORE, blazeface
from avshared.features.store import FeatureIssue, FeatureItem

#: (x0, y0, x1, y1) in pixels, x1 and y1 exclusive.
Box = tuple[int, int, int, int]

FACE_DETECTORS = ("blazeface", "skin", "centre")
FACE_BOXES = ("first", "median")
SHORT_VIDEO_ACTIONS = ("repeat", "reject")
NO_FACE_ACTIONS = ("full_frame", "centre_crop", "reject")
#: Skin in YCrCb (Chai & Ngan, 1999): a box in the chroma plane, whatever the brightness.
SKIN_LOWER = np.array([0, 133, 77], dtype=np.uint8)
SKIN_UPPER = np.array([255, 173, 127], dtype=np.uint8)
#: A face is at most this much taller than wide; a taller skin blob includes the neck.
MAX_FACE_ASPECT = 1.4


@dataclass(frozen=True)
class FaceFramesConfig:
    """The ``features.video`` parameters; see conf/base/parameters_features.yml."""

    num_frames: int = 8
    size: int = 112
    face_detector: str = "blazeface"
    detection_frames: int = 3
    face_box: str = "median"
    min_face_score: float = MIN_SCORE
    margin: float = 0.2
    search_width: float = 0.6
    search_height: float = 0.9
    min_face_fraction: float = 0.01
    centre_x: float = 0.5
    centre_y: float = 0.45
    centre_side: float = 0.7
    on_short_video: str = "repeat"
    on_no_face: str = "centre_crop"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("face_detector", self.face_detector, FACE_DETECTORS),
            ("face_box", self.face_box, FACE_BOXES),
            ("on_short_video", self.on_short_video, SHORT_VIDEO_ACTIONS),
            ("on_no_face", self.on_no_face, NO_FACE_ACTIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} {value!r} unknown; use one of {allowed}")
        if self.num_frames < 1 or self.size < 1 or self.detection_frames < 1:
            raise ValueError("num_frames, size and detection_frames must be positive")
        if self.face_detector == "blazeface":
            # Loaded (once per process) where the configuration is made, so that an OpenCV that
            # runs the model differently fails with its message before any clip or worker starts.
            blazeface(self.min_face_score)


def sample_frame_indices(frame_count: int, num_frames: int) -> list[int]:
    """The middle frame of each of ``num_frames`` equal spans; repeats frames when there are few."""
    return [int((k + 0.5) * frame_count / num_frames) for k in range(num_frames)]


def skin_mask(frame: np.ndarray) -> np.ndarray:
    """uint8 mask (255 = skin) of an RGB frame, by its chroma."""
    return cv2.inRange(cv2.cvtColor(frame, cv2.COLOR_RGB2YCrCb), SKIN_LOWER, SKIN_UPPER)


def search_region(width: int, height: int, config: FaceFramesConfig) -> Box:
    """The centred part of the frame where a face is looked for."""
    half_w, half_h = width * config.search_width / 2, height * config.search_height / 2
    return (
        round(width / 2 - half_w),
        round(height / 2 - half_h),
        round(width / 2 + half_w),
        round(height / 2 + half_h),
    )


def skin_face(frame: np.ndarray, config: FaceFramesConfig) -> Box | None:
    """Bounding box of the largest skin blob in the search region, or None if it is too small."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = search_region(width, height, config)
    mask = skin_mask(frame[y0:y1, x0:x1])
    # Opening removes speckles of skin-coloured noise (hair, background) before blobs are counted.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < config.min_face_fraction * width * height:
        return None
    left, top, blob_w, blob_h = (int(v) for v in stats[largest, :4])
    blob_h = min(blob_h, round(MAX_FACE_ASPECT * blob_w))
    return (x0 + left, y0 + top, x0 + left + blob_w, y0 + top + blob_h)


def detect_faces(frame: np.ndarray, config: FaceFramesConfig) -> list[Box]:
    """The faces that ``config.face_detector`` finds in an RGB frame (skin: one at most)."""
    if config.face_detector == "skin":
        box = skin_face(frame, config)
        return [] if box is None else [box]
    if config.face_detector == "blazeface":
        detections = blazeface(config.min_face_score)(frame)
        return [tuple(round(v) for v in detection.box) for detection in detections]
    raise ValueError(f"face_detector {config.face_detector!r} does not detect faces")


def central_face(faces: list[Box], width: int, height: int, config: FaceFramesConfig) -> Box | None:
    """The largest face whose centre lies in the search region (ties: the first), or None."""
    x0, y0, x1, y1 = search_region(width, height, config)
    central = [
        face
        for face in faces
        if x0 <= (face[0] + face[2]) / 2 < x1 and y0 <= (face[1] + face[3]) / 2 < y1
    ]
    if not central:
        return None
    return max(central, key=lambda face: (face[2] - face[0]) * (face[3] - face[1]))


@dataclass(frozen=True)
class ClipFace:
    """A clip's face ``box`` (per ``face_box``), and the most faces that one searched frame showed
    (``face_count``)."""

    box: Box
    face_count: int


def middle_outwards(indices: list[int]) -> list[int]:
    """``indices`` ordered by their distance from the middle one (ties: the earlier first)."""
    middle = (len(indices) - 1) / 2
    order = sorted(range(len(indices)), key=lambda position: (abs(position - middle), position))
    return [indices[position] for position in order]


def clip_face(frames: list[np.ndarray], config: FaceFramesConfig) -> ClipFace | None:
    """The face shared by a clip's frames, searched on up to ``config.detection_frames`` of them
    spread over the clip (from the middle outwards); None when none of them shows a face in the
    search region."""
    height, width = frames[0].shape[:2]
    searched = middle_outwards(sample_frame_indices(len(frames), config.detection_frames))
    boxes, face_count = [], 0
    for index in searched:
        faces = detect_faces(frames[index], config)
        face_count = max(face_count, len(faces))
        box = central_face(faces, width, height, config)
        if box is not None:
            boxes.append(box)
            if config.face_box == "first":
                break
    if not boxes:
        return None
    median = np.median(np.array(boxes), axis=0)
    return ClipFace(tuple(round(v) for v in median), face_count)


def square_box(box: Box, margin: float, width: int, height: int) -> Box:
    """A square around ``box`` with ``margin`` (fraction of its longer side) added on every side,
    shrunk to fit the frame if needed and shifted inside it."""
    x0, y0, x1, y1 = box
    side = min(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin)), width, height)
    left = int(np.clip(round((x0 + x1 - side) / 2), 0, width - side))
    top = int(np.clip(round((y0 + y1 - side) / 2), 0, height - side))
    return (left, top, left + side, top + side)


def centre_box(width: int, height: int, config: FaceFramesConfig) -> Box:
    """The fixed square crop where CREMA-D's framing puts the face."""
    side = config.centre_side * height
    centre_x, centre_y = config.centre_x * width, config.centre_y * height
    box = (
        round(centre_x - side / 2),
        round(centre_y - side / 2),
        round(centre_x + side / 2),
        round(centre_y + side / 2),
    )
    return square_box(box, 0.0, width, height)


def crop_frames(frames: list[np.ndarray], box: Box, size: int) -> np.ndarray:
    """Crop every frame to ``box``, resize to ``size``: ``(frames, 3, size, size)`` uint8."""
    x0, y0, x1, y1 = box
    crops = [
        cv2.resize(frame[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
        for frame in frames
    ]
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))


def letterbox_frames(frames: list[np.ndarray], size: int) -> np.ndarray:
    """Whole frames, padded black to a square and resized: ``(frames, 3, size, size)`` uint8."""
    height, width = frames[0].shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    squares = [
        cv2.copyMakeBorder(
            frame, top, side - height - top, left, side - width - left, cv2.BORDER_CONSTANT
        )
        for frame in frames
    ]
    return crop_frames(squares, (0, 0, side, side), size)


def read_sampled_frames(
    path: str, num_frames: int
) -> tuple[list[np.ndarray], int, list[FeatureIssue]]:
    """The sampled RGB frames of a video, how many frames it really has, and what went wrong.

    Trusts the container's frame count first (one partial decode); when it is missing or frames
    fail to decode, counts the frames that do decode and samples again. Raises MediaError when the
    file cannot be opened; returns no frames when none decodes.
    """
    issues: list[FeatureIssue] = []
    frame_count, frames = media.read_counted_frames(
        path, lambda count: sample_frame_indices(count, num_frames)
    )
    if frames and all(frame is not None for frame in frames):
        return frames, frame_count, issues
    decodable = media.count_frames(path)
    if decodable != frame_count:
        issues.append(FeatureIssue("frame_count_mismatch", "recounted"))
    if decodable == 0:
        return [], 0, issues
    frames = media.read_frames(path, sample_frame_indices(decodable, num_frames))
    if any(frame is None for frame in frames):
        return [], decodable, issues
    return frames, decodable, issues


def extract_clip_face_frames(job: tuple[str, str], config: FaceFramesConfig) -> FeatureItem:
    """Face frames of one clip ``(clip_id, video_path)``; defects are handled and recorded."""
    clip_id, path = job
    try:
        frames, frame_count, issues = read_sampled_frames(path, config.num_frames)
    except media.MediaError:
        return FeatureItem(clip_id, None, (FeatureIssue("undecodable", "rejected"),))
    if not frames:
        return FeatureItem(clip_id, None, (*issues, FeatureIssue("undecodable", "rejected")))
    return face_frames_item(clip_id, frames, frame_count, issues, config)


def face_frames_item(
    clip_id: str,
    frames: list[np.ndarray],
    frame_count: int,
    issues: list[FeatureIssue],
    config: FaceFramesConfig,
) -> FeatureItem:
    """The face frames of a clip's sampled RGB ``frames`` (of ``frame_count`` in the clip), with
    the decoding ``issues`` met so far and what finding the face adds to them."""
    issues = list(issues)
    if frame_count < config.num_frames:
        if config.on_short_video == "reject":
            return FeatureItem(clip_id, None, (*issues, FeatureIssue("short_video", "rejected")))
        issues.append(FeatureIssue("short_video", "repeated_frames"))

    height, width = frames[0].shape[:2]
    box = None
    if config.face_detector == "centre":
        box = centre_box(width, height, config)
    else:
        face = clip_face(frames, config)
        if face is not None:
            box = square_box(face.box, config.margin, width, height)
            issues.append(FeatureIssue("face_found", config.face_detector))
            if face.face_count > 1:
                issues.append(FeatureIssue("several_faces", f"kept_1_of_{face.face_count}"))
    if box is None:
        if config.on_no_face == "reject":
            return FeatureItem(clip_id, None, (*issues, FeatureIssue("no_face", "rejected")))
        issues.append(FeatureIssue("no_face", config.on_no_face))
        if config.on_no_face == "full_frame":
            return FeatureItem(clip_id, letterbox_frames(frames, config.size), tuple(issues))
        box = centre_box(width, height, config)
    return FeatureItem(clip_id, crop_frames(frames, box, config.size), tuple(issues))
