"""A tiny CREMA-D-format root holding every defect ingestion must catch, built once per session.

Media are real (16-bit PCM WAV, FLV1 Flash video) but short, so the whole corpus writes in about a
second. The real corpus's quirks are reproduced under their real names (1076_MTI_SAD_XX,
1064_TIE_SAD_XX, 1064_IEO_DIS_MD).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avshared import crema_d, media

SAMPLE_RATE = crema_d.AUDIO_SAMPLE_RATE
FPS = crema_d.VIDEO_FPS

DEMOGRAPHICS = pd.DataFrame(
    {
        "ActorID": [1001, 1002, 1064, 1076],
        "Age": [51, 21, 30, 44],
        "Sex": ["Male", "Female", "Male", "Female"],
        "Race": ["Caucasian", "Caucasian", "African American", "Asian"],
        "Ethnicity": ["Not Hispanic", "Not Hispanic", "Not Hispanic", "Hispanic"],
    }
)


@dataclass(frozen=True)
class FixtureCorpus:
    root: Path
    #: Clips that must reach the manifest.
    usable: frozenset[str]
    #: Clips (or unparseable names) that must be rejected -> (stage, reason).
    rejected: dict[str, tuple[str, str]]
    #: Names in SentenceFilenames.csv (the others exist only on disk).
    listed: frozenset[str]


def tone(seconds: float, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    """A quiet 220 Hz tone, shaped (samples,) or (channels, samples)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels)


def face_frames(
    count: int, width: int = crema_d.VIDEO_WIDTH, height: int = crema_d.VIDEO_HEIGHT
) -> Iterator[np.ndarray]:
    """Flat grey frames with a moving bright bar: they compress to almost nothing yet differ."""
    for index in range(count):
        frame = np.full((height, width, 3), 96, np.uint8)
        frame[:, (index * 7) % width] = 255
        yield frame


def write_clip(
    root: Path,
    clip_id: str,
    *,
    audio_s: float | None = 0.8,
    video_frames: int | None = 24,
    fps: float = FPS,
    sample_rate: int = SAMPLE_RATE,
    channels: int = 1,
    size: tuple[int, int] = (crema_d.VIDEO_WIDTH, crema_d.VIDEO_HEIGHT),
) -> None:
    """Write a clip's WAV and FLV; None leaves that file out."""
    if audio_s is not None:
        media.write_audio(
            crema_d.audio_path(root, clip_id), tone(audio_s, sample_rate, channels), sample_rate
        )
    if video_frames is not None:
        media.write_video(crema_d.video_path(root, clip_id), face_frames(video_frames, *size), fps)


def strip_flv_duration(path: Path) -> None:
    """Make an FLV report no duration, like the real 1064_TIE_SAD_XX.

    Zero the onMetaData duration and cut the file mid-stream, so that FFmpeg can neither read the
    duration nor infer it from the last tag: OpenCV then reports 0 frames.
    """
    data = bytearray(path.read_bytes())
    key = data.index(b"\x00\x08duration") + len(b"\x00\x08duration")
    data[key + 1 : key + 9] = struct.pack(">d", 0.0)  # skip the AMF number marker
    path.write_bytes(bytes(data[: len(data) // 2]))


def build_corpus(root: Path) -> FixtureCorpus:
    """Write the fixture root; return what ingestion must make of each clip."""
    usable = {"1001_DFA_ANG_XX", "1001_IEO_HAP_LO", "1002_DFA_SAD_XX"}
    write_clip(root, "1001_DFA_ANG_XX")
    # 44.1 kHz stereo is recorded, not rejected: the features pipeline resamples and down-mixes.
    write_clip(root, "1001_IEO_HAP_LO", sample_rate=44_100, channels=2)
    write_clip(root, "1002_DFA_SAD_XX")  # on disk only, not in SentenceFilenames.csv

    rejected = {
        "1076_MTI_SAD_XX": ("audio", "empty_audio"),
        "1064_TIE_SAD_XX": ("video", "no_video_duration"),
        "1064_IEO_DIS_MD": ("audio", "too_long"),
        "1002_ITS_FEA_XX": ("video", "unreadable_video"),
        "1002_ITS_NEU_XX": ("audio", "unreadable_audio"),
        "1002_IOM_ANG_XX": ("audio", "lfs_pointer"),
        "1002_DFA_HAP_XX": ("video", "missing_video"),
        "1002_WSI_ANG_XX": ("audio", "missing_audio"),
        "1001_DFA_XYZ_XX": ("name", "bad_name"),
        "not_a_clip": ("name", "bad_name"),
        "1099_DFA_ANG_XX": ("demographics", "unknown_actor"),
        "1002_TAI_FEA_XX": ("audio", "too_short"),
        "1001_TAI_NEU_XX": ("sync", "av_duration_mismatch"),
        "1001_MTI_ANG_XX": ("video", "bad_fps"),
        "1001_MTI_DIS_XX": ("video", "low_resolution"),
    }
    write_clip(root, "1076_MTI_SAD_XX", audio_s=0.0)
    write_clip(root, "1064_TIE_SAD_XX")
    strip_flv_duration(crema_d.video_path(root, "1064_TIE_SAD_XX"))
    write_clip(root, "1064_IEO_DIS_MD", audio_s=60.0, video_frames=600, fps=10.0)
    write_clip(root, "1002_ITS_FEA_XX")
    crema_d.video_path(root, "1002_ITS_FEA_XX").write_bytes(np.random.default_rng(0).bytes(4096))
    write_clip(root, "1002_ITS_NEU_XX")
    crema_d.audio_path(root, "1002_ITS_NEU_XX").write_bytes(np.random.default_rng(1).bytes(4096))
    write_clip(root, "1002_IOM_ANG_XX")
    crema_d.audio_path(root, "1002_IOM_ANG_XX").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123abcd\nsize 81964\n"
    )
    write_clip(root, "1002_DFA_HAP_XX", video_frames=None)
    write_clip(root, "1001_DFA_XYZ_XX")  # on disk only: XYZ is no emotion
    write_clip(root, "1099_DFA_ANG_XX")
    write_clip(root, "1002_TAI_FEA_XX", audio_s=0.2, video_frames=6)
    write_clip(root, "1001_TAI_NEU_XX", audio_s=2.5)
    write_clip(root, "1001_MTI_ANG_XX", video_frames=80, fps=100.0)
    write_clip(root, "1001_MTI_DIS_XX", size=(64, 48))

    listed = (usable | set(rejected)) - {"1002_DFA_SAD_XX", "1001_DFA_XYZ_XX"}
    pd.DataFrame({"Stimulus_Number": range(1, len(listed) + 1), "Filename": sorted(listed)}).to_csv(
        root / crema_d.SENTENCE_FILENAMES_FILE, index=False
    )
    DEMOGRAPHICS.to_csv(root / crema_d.DEMOGRAPHICS_FILE, index=False)
    return FixtureCorpus(root, frozenset(usable), rejected, frozenset(listed))


@pytest.fixture(scope="session")
def fixture_corpus(tmp_path_factory: pytest.TempPathFactory) -> FixtureCorpus:
    """The defect-laden fixture root; read-only for the tests sharing it."""
    return build_corpus(tmp_path_factory.mktemp("crema_d_fixture"))


@pytest.fixture(scope="session")
def ingestion_params() -> dict:
    """The `ingestion` parameters as conf/base/parameters_ingestion.yml sets them."""
    path = Path(__file__).resolve().parents[3] / "conf" / "base" / "parameters_ingestion.yml"
    return yaml.safe_load(path.read_text())["ingestion"]
