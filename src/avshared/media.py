"""Reading, writing and probing media files by path: CREMA-D's WAV with soundfile and FLV with
OpenCV; for prediction, the audio of any container and MP3 with PyAV (FFmpeg), video through OpenCV.

This is the one place where avshared touches media files directly (decoding thousands of clips in a
worker pool does not fit Kedro datasets); every other module goes through these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf


class MediaError(RuntimeError):
    """A media file is missing, unreadable or empty; the message says which and why."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


@dataclass(frozen=True)
class VideoInfo:
    frame_count: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


#: How a Git LFS pointer starts: a download without `git lfs` leaves these text stubs for the media.
_LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"


def is_lfs_pointer(path: str | Path) -> bool:
    """True when ``path`` is a Git LFS pointer (a small text stub) instead of the media itself."""
    try:
        with open(path, "rb") as file:
            return file.read(len(_LFS_POINTER_PREFIX)) == _LFS_POINTER_PREFIX
    except OSError:
        return False


def probe_audio(path: str | Path) -> AudioInfo:
    """Header facts of a sound file, without decoding its samples."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise MediaError(f"cannot read audio {path}: {err}") from err
    return AudioInfo(info.samplerate, info.channels, info.frames, info.subtype)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a sound file to float32 samples in [-1, 1], shaped (channels, samples)."""
    try:
        samples, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise MediaError(f"cannot read audio {path}: {err}") from err
    return np.ascontiguousarray(samples.T), sample_rate


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono (samples,) or (channels, samples) float audio as 16-bit PCM WAV (as CREMA-D)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = samples.T if samples.ndim == 2 else samples
    sf.write(str(path), np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")


def _open_video(path: str | Path) -> cv2.VideoCapture:
    if not Path(path).is_file():
        raise MediaError(f"cannot read video {path}: no such file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise MediaError(f"cannot read video {path}: OpenCV could not open it")
    return capture


def probe_video(path: str | Path) -> VideoInfo:
    """Container facts of a video: frame count, fps and size, without decoding frames."""
    capture = _open_video(path)
    try:
        return VideoInfo(
            frame_count=max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
            fps=float(capture.get(cv2.CAP_PROP_FPS)),
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()


def count_frames(path: str | Path) -> int:
    """How many frames actually decode, for containers whose frame count is missing or wrong.

    Walks the whole stream without converting any frame, so it costs a decode of the clip.
    """
    capture = _open_video(path)
    try:
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def read_frames(path: str | Path, indices: Sequence[int]) -> list[np.ndarray | None]:
    """Decode the frames at ``indices`` (any order) as RGB uint8 (H, W, 3); None where one fails.

    Frames are read sequentially and only the requested ones are converted, which is faster than
    seeking in FLV (whose seeks are imprecise) and never holds more than the requested frames.
    """
    capture = _open_video(path)
    try:
        return _decode(capture, indices)
    finally:
        capture.release()


def read_counted_frames(
    path: str | Path, pick: Callable[[int], Sequence[int]]
) -> tuple[int, list[np.ndarray | None]]:
    """The container's frame count ``n`` and the frames at ``pick(n)`` (as ``read_frames``),
    from one opening of the file; no frames when the container has no count."""
    capture = _open_video(path)
    try:
        frame_count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        return frame_count, _decode(capture, pick(frame_count)) if frame_count else []
    finally:
        capture.release()


def _decode(capture: cv2.VideoCapture, indices: Sequence[int]) -> list[np.ndarray | None]:
    wanted = sorted(set(int(i) for i in indices))
    found: dict[int, np.ndarray] = {}
    position = 0
    for target in wanted:
        while position < target:
            if not capture.grab():
                return [found.get(int(i)) for i in indices]
            position += 1
        ok, frame = capture.read()
        position += 1
        if not ok:
            break
        found[target] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return [found.get(int(i)) for i in indices]


#: FLV's own tag for its Sorenson H.263 codec ("FLV1"); the fourcc "FLV1" selects the same codec and
#: bytes, but makes OpenCV's FFmpeg backend print a "tag not supported" warning on every file.
_FLV1_CODEC_TAG = 2
#: The 9-byte FLV header (signature, version 1, video flag, header size), then PreviousTagSize0 = 0.
_FLV_HEADER = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00"


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> None:
    """Write RGB uint8 frames (H, W, 3) as Flash video (FLV1), CREMA-D's presentation format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), _FLV1_CODEC_TAG, fps, (width, height))
                if not writer.isOpened():
                    raise MediaError(f"OpenCV cannot write FLV to {path}")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    if writer is None:
        raise MediaError(f"no frames given for {path}: a video needs at least one")


def write_empty_video(path: str | Path) -> None:
    """Write a Flash video with a valid header and no frames: a clip "with no duration".

    CREMA-D has such a file (1064_TIE_SAD_XX.flv); the demo corpus reproduces it with this, and
    probe_video / read_frames raise MediaError on it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_FLV_HEADER)


# ---------------------------------------------------------------- containers (prediction inputs)
#: Files whose audio libsndfile decodes: read with ``read_audio``, exactly as in training.
SOUNDFILE_SUFFIXES = (".wav", ".flac")
#: Audio-only files that prediction accepts.
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3")
#: Video files (with or without an audio track) that prediction accepts.
VIDEO_SUFFIXES = (".flv", ".mp4", ".mkv", ".webm", ".avi", ".mov")


def read_container_audio(path: str | Path) -> tuple[np.ndarray, int] | None:
    """Decode the first audio track of any file FFmpeg reads (MP4/AAC, MKV, WebM, AVI, MP3, ...)
    to float32 samples in [-1, 1], shaped (channels, samples), at the track's own rate.

    Returns None when the container has no audio track. Decoding is PyAV's (FFmpeg's libraries
    ship inside its wheel, so no system FFmpeg is needed); resampling is left to the feature code,
    so that prediction and training resample the same way.
    """
    import av  # only prediction needs it; importing it costs ~0.1 s

    if not Path(path).is_file():
        raise MediaError(f"cannot read {path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            # Planar float at the track's own rate and channel layout: (channels, samples) arrays.
            resampler = av.AudioResampler(format="fltp")
            chunks = [
                converted.to_ndarray()
                for frame in (*container.decode(stream), None)
                for converted in resampler.resample(frame)
            ]
            sample_rate = stream.rate or stream.codec_context.sample_rate
    except (av.FFmpegError, OSError, ValueError) as err:
        # FFmpeg's own words ("Invalid data found when processing input"), without its errno.
        raise MediaError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from err
    if not chunks:
        raise MediaError(f"cannot read {path}: its audio track holds no samples")
    return np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32), sample_rate


def read_any_audio(path: str | Path) -> tuple[np.ndarray, int] | None:
    """The audio of a sound or video file as (channels, samples) float32 and its rate; None when a
    video has no audio track. WAV and FLAC go through ``read_audio`` (training's decoder), every
    other format through ``read_container_audio``."""
    if Path(path).suffix.lower() in SOUNDFILE_SUFFIXES:
        return read_audio(path)
    return read_container_audio(path)


def write_container(
    path: str | Path,
    frames: Sequence[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 44_100,
    *,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
) -> None:
    """Write RGB uint8 frames (H, W, 3), and mono float audio in [-1, 1] if given, into a video
    container chosen by the file's extension (MP4 with H.264 + AAC by default), with PyAV."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not len(frames):
        raise MediaError(f"no frames given for {path}: a video needs at least one")
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        # Every stream must exist before the first packet is written.
        video = container.add_stream(video_codec, rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        track = None
        if audio is not None:
            track = container.add_stream(audio_codec, rate=sample_rate, layout="mono")
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        if track is not None:
            chunk = track.codec_context.frame_size or 1024
            samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
            for start in range(0, len(samples), chunk):
                piece = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[None, start : start + chunk]),
                    format="flt",
                    layout="mono",
                )
                piece.sample_rate = sample_rate
                container.mux(track.encode(piece))
            container.mux(track.encode())
