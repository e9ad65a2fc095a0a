"""A tiny corpus on disk for the features pipeline: a manifest, WAVs and FLVs, some defective."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from avshared import crema_d, media

RATE = 16_000
WIDTH, HEIGHT = 240, 180
SKIN_RGB = (224, 172, 140)
SEX = {1001: "Male", 1002: "Female", 1003: "Male", 1004: "Female", 1005: "Male", 1006: "Female"}
#: Where the split used by these tests puts each actor.
ACTOR_SPLIT = {
    1001: "train",
    1002: "train",
    1005: "train",
    1006: "train",
    1003: "val",
    1004: "test",
}
#: Clips whose media are defective, and how.
DEFECTS = {
    "1005_DFA_ANG_XX": "video undecodable",
    "1005_DFA_HAP_XX": "video of 3 frames",
    "1006_DFA_ANG_XX": "video without face",
    "1006_DFA_HAP_XX": "audio undecodable",
}


def write_speech(path: Path, actor: int, loudness: float = 0.3) -> None:
    """2.4 s of 'speech': a tone that depends on the actor, in bursts, over faint noise."""
    t = np.arange(round(2.4 * RATE)) / RATE
    envelope = (np.sin(2 * np.pi * 2 * t) > 0).astype(np.float32)
    rng = np.random.default_rng(actor)
    signal = loudness * envelope * np.sin(2 * np.pi * (200 + 100 * (actor % 10)) * t)
    media.write_audio(path, signal + rng.normal(scale=0.003, size=t.size), RATE)


def write_face_video(path: Path, frame_count: int, face: bool = True) -> None:
    frames = []
    for index in range(frame_count):
        frame = np.full((HEIGHT, WIDTH, 3), (60, 90 + index, 60), dtype=np.uint8)
        if face:
            cv2.ellipse(frame, (WIDTH // 2, HEIGHT // 2 - 10), (30, 40), 0, 0, 360, SKIN_RGB, -1)
        frames.append(frame)
    media.write_video(path, frames, 30.0)


def build_corpus(root: Path) -> pd.DataFrame:
    """Write the media of 12 clips (6 actors x 2 emotions) under ``root``; return their manifest."""
    rows = []
    for actor, sex in SEX.items():
        for emotion in ("ANG", "HAP"):
            clip_id = f"{actor}_DFA_{emotion}_XX"
            audio, video = crema_d.audio_path(root, clip_id), crema_d.video_path(root, clip_id)
            defect = DEFECTS.get(clip_id, "")
            if defect == "audio undecodable":
                audio.parent.mkdir(parents=True, exist_ok=True)
                audio.write_bytes(b"RIFF this is not audio")
            else:
                write_speech(audio, actor)
            if defect == "video undecodable":
                video.parent.mkdir(parents=True, exist_ok=True)
                video.write_bytes(b"FLV\x01 this is not video")
            else:
                frame_count = 3 if defect == "video of 3 frames" else 20
                write_face_video(video, frame_count, face=defect != "video without face")
            rows.append(
                {
                    "clip_id": clip_id,
                    "actor": actor,
                    "sentence": "DFA",
                    "emotion": emotion,
                    "level": "XX",
                    "label": crema_d.EMOTIONS.index(emotion),
                    "sex": sex,
                    "audio_path": str(audio),
                    "video_path": str(video),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def corpus(tmp_path) -> pd.DataFrame:
    """The manifest of a fresh tiny corpus (media in tmp_path, safe to modify)."""
    return build_corpus(tmp_path / "crema_d")


@pytest.fixture
def actor_split(corpus) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": corpus["clip_id"],
            "actor": corpus["actor"],
            "split": corpus["actor"].map(ACTOR_SPLIT),
        }
    )


@pytest.fixture
def speech_writer():
    """``write_speech(path, actor, loudness)``, for tests that change a clip's audio."""
    return write_speech
