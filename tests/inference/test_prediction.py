"""Prediction on media files with an untrained tiny model: discovery of inputs, windows, missing
modalities and defective files. Agreement with a trained phase's evaluation is tested in
tests/pipelines/predict/."""

from __future__ import annotations

from dataclasses import asdict

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from skimage import data as skimage_data

from avshared import media
from avshared.crema_d import EMOTIONS
from avshared.features.audio import LogMelConfig, LogMelExtractor, apply_spectrogram_stats
from avshared.features.video import FaceFramesConfig, extract_clip_face_frames
from avshared.inference.prediction import (
    TABLE_WIDTH,
    EmotionPredictor,
    MediaInput,
    find_media_inputs,
    format_predictions,
    prepare_input,
    window_count,
)
from avshared.models import ModelConfig, build_model

FPS, RATE = 30.0, 16_000
#: A real face (scikit-image's astronaut, Eileen Collins), as the face detector must find one.
HEAD = cv2.resize(skimage_data.astronaut()[20:240, 120:330], (95, 100))
PROBABILITIES = [f"p_{emotion}" for emotion in EMOTIONS]


def _frames(seconds: float, face: bool = True) -> list[np.ndarray]:
    frames = []
    for index in range(round(seconds * FPS)):
        frame = np.full((180, 240, 3), (60, 90 + index % 100, 60), dtype=np.uint8)
        if face:
            frame[30:130, 72:167] = HEAD
        frames.append(frame)
    return frames


def _speech(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return 0.3 * (np.sin(2 * np.pi * 3 * t) > 0) * np.sin(2 * np.pi * 180 * t)


def _spec(modalities: list[str]) -> dict:
    audio, video = LogMelConfig(), FaceFramesConfig()
    model_config = ModelConfig.preset("tiny")
    return {
        "phase": "test",
        "data_source": "demo",
        "demo": True,
        "model_kind": "shared",
        "modalities": modalities,
        "model_config": model_config.to_dict(),
        "emotions": list(EMOTIONS),
        "features": {"audio": asdict(audio), "video": asdict(video)},
        "spectrogram_stats": {"mean": [-40.0] * audio.n_mels, "std": [10.0] * audio.n_mels},
        "window_s": audio.duration_s,
        "mlflow_run_id": None,
    }


def _predictor(modalities: list[str]) -> EmotionPredictor:
    torch.manual_seed(0)
    spec = _spec(modalities)
    weights = build_model("shared", modalities, ModelConfig(**spec["model_config"])).state_dict()
    return EmotionPredictor(spec, weights, batch_size=2)  # several batches, windows split


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A few recordings of each kind, keyed by what they are."""
    folder = tmp_path_factory.mktemp("recordings")
    files = {
        "talking_face.mp4": (_frames(2.5), _speech(2.5, 44_100)),
        "long_talk.mp4": (_frames(7.0), _speech(7.0, 44_100)),
        "silent_film.mp4": (_frames(2.5), None),
        "empty_room.mp4": (_frames(2.5, face=False), _speech(2.5, 44_100)),
    }
    paths = {}
    for name, (frames, audio) in files.items():
        paths[name] = folder / name
        media.write_container(paths[name], frames, FPS, audio, 44_100)
    paths["voice.wav"] = folder / "voice.wav"
    media.write_audio(paths["voice.wav"], _speech(2.5), RATE)
    paths["broken.mp4"] = folder / "broken.mp4"
    paths["broken.mp4"].write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated and wrong")
    paths["empty.wav"] = folder / "empty.wav"
    paths["empty.wav"].write_bytes(b"")
    return paths


def test_inputs_pair_wav_and_flv_by_stem_and_report_what_cannot_be_read(tmp_path):
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "VideoFlash").mkdir()
    media.write_audio(tmp_path / "AudioWAV/1001_DFA_ANG_XX.wav", _speech(1.0), RATE)
    media.write_video(tmp_path / "VideoFlash/1001_DFA_ANG_XX.flv", _frames(1.0), FPS)
    media.write_container(tmp_path / "clip.mp4", _frames(1.0), FPS)
    (tmp_path / "notes.txt").write_text("not media")

    found = find_media_inputs(str(tmp_path))
    assert found == [
        MediaInput(
            "1001_DFA_ANG_XX",
            str(tmp_path / "AudioWAV/1001_DFA_ANG_XX.wav"),
            str(tmp_path / "VideoFlash/1001_DFA_ANG_XX.flv"),
        ),
        MediaInput(
            str(tmp_path / "clip.mp4"), str(tmp_path / "clip.mp4"), str(tmp_path / "clip.mp4")
        ),
    ]
    by_glob = find_media_inputs(str(tmp_path / "*.*"))
    assert [item.problem.split(":")[0] for item in by_glob] == ["", "wrong format"]
    assert find_media_inputs(str(tmp_path / "absent.wav"))[0].problem.startswith("missing")
    assert find_media_inputs(str(tmp_path / "*.mkv"))[0].problem.startswith("missing")


@pytest.mark.parametrize(("seconds", "windows"), [(1.0, 1), (3.0, 1), (3.01, 2), (7.0, 3)])
def test_window_count(seconds, windows):
    assert window_count(seconds, 3.0) == windows


def test_a_clip_of_one_window_takes_the_training_feature_path(recordings):
    spec = _spec(["audio", "video"])
    path = str(recordings["talking_face.mp4"])
    prepared = prepare_input(MediaInput("clip", path, path), spec)

    samples, rate = media.read_container_audio(path)
    expected_audio = LogMelExtractor(LogMelConfig(**spec["features"]["audio"]))(samples, rate)
    np.testing.assert_array_equal(
        prepared.audio[0], apply_spectrogram_stats(expected_audio, spec["spectrogram_stats"])
    )
    video_item = extract_clip_face_frames(
        ("clip", path), FaceFramesConfig(**spec["features"]["video"])
    )
    np.testing.assert_array_equal(prepared.video[0], video_item.array)
    assert prepared.flags == []


def test_a_model_saved_before_face_box_existed_keeps_its_median_boxes(tmp_path):
    # Such a model was trained on median boxes: FaceFramesConfig's default must stay median, or
    # prediction must fill it in for specs without a face_box. The head moves right around the
    # clip's middle frame only: the first box found (the middle frame's) differs from the median
    # of the three detection frames'.
    frames = _frames(2.5)
    for index in range(35, 50):
        frames[index] = np.roll(frames[index], 40, axis=1)
    path = str(tmp_path / "moving_head.mp4")
    media.write_container(path, frames, FPS, _speech(2.5, 44_100), 44_100)
    spec = _spec(["video"])
    video_features = {k: v for k, v in spec["features"]["video"].items() if k != "face_box"}
    crops = {}
    for face_box in ("first", "median"):
        crops[face_box] = extract_clip_face_frames(
            ("clip", path), FaceFramesConfig(**video_features, face_box=face_box)
        ).array
    assert not np.array_equal(crops["first"], crops["median"])

    older = {**spec, "features": {"video": video_features}}
    prepared = prepare_input(MediaInput("clip", None, path), older)
    np.testing.assert_array_equal(prepared.video[0], crops["median"])


def test_predictions_of_every_kind_of_input(recordings):
    inputs = [
        MediaInput(name, str(path), None if path.suffix == ".wav" else str(path))
        for name, path in recordings.items()
    ]
    table = _predictor(["audio", "video"]).predict(inputs).set_index("input")

    assert list(table.index) == list(recordings)
    ok = table["problem"] == ""
    assert set(table.index[~ok]) == {"broken.mp4", "empty.wav"}
    np.testing.assert_allclose(table.loc[ok, PROBABILITIES].sum(axis=1), 1.0, atol=1e-5)
    assert table.loc[~ok, PROBABILITIES].isna().all().all()
    assert (table.loc[ok, "predicted"] == table.loc[ok, PROBABILITIES].idxmax(axis=1).str[2:]).all()
    assert table.loc["talking_face.mp4", ["modalities", "windows", "flags"]].tolist() == [
        "audio+video",
        1,
        "",
    ]
    assert table.loc["long_talk.mp4", "windows"] == 3
    assert table.loc["silent_film.mp4", ["modalities", "flags"]].tolist() == [
        "video",
        "no audio track",
    ]
    assert table.loc["empty_room.mp4", ["modalities", "flags"]].tolist() == [
        "audio",
        "no face found",
    ]
    assert table.loc["voice.wav", ["modalities", "flags"]].tolist() == ["audio", "audio-only file"]
    assert "cannot read" in table.loc["broken.mp4", "problem"]
    assert "cannot read audio" in table.loc["empty.wav", "problem"]


def test_single_modality_models_say_what_they_lack(recordings):
    audio_only = _predictor(["audio"]).predict(
        [
            MediaInput(
                "silent", str(recordings["silent_film.mp4"]), str(recordings["silent_film.mp4"])
            )
        ]
    )
    assert audio_only.loc[0, "problem"] == (
        "nothing to predict from: the model needs audio; no audio track"
    )
    video_only = _predictor(["video"]).predict([MediaInput("voice", str(recordings["voice.wav"]))])
    assert video_only.loc[0, "problem"] == (
        "nothing to predict from: the model needs video; the file has no video"
    )


def test_the_printed_table_keeps_its_columns_at_a_fixed_width():
    """Six inputs as a user brings them (two MP4s, three WAVs, a broken upload), long paths and a
    long problem: every line fits TABLE_WIDTH, so no output (log file, CI, notebook) wraps it."""
    names = [
        f"/home/someone/recordings/session_{i}/take_{i}.{ext}"
        for i, ext in enumerate(["mp4", "mp4", "wav", "wav", "wav", "mp4"])
    ]
    probabilities = np.full((6, len(EMOTIONS)), 0.1)
    probabilities[:, 2] = 0.5
    probabilities[5] = np.nan
    table = pd.DataFrame(probabilities, columns=[f"p_{e}" for e in EMOTIONS]).assign(
        input=names,
        predicted=[EMOTIONS[2]] * 5 + [""],
        modalities=["audio+video"] * 2 + ["audio"] * 3 + [""],
        flags=["", "", "audio-only file", "audio-only file", "audio-only file", ""],
        problem=[""] * 5 + ["unreadable: the container has no stream that can be decoded " * 3],
    )
    text = format_predictions(table, demo=True, max_rows=5)
    lines = text.splitlines()
    assert lines[0].startswith("DEMO model") and "6 predictions, 1 with a problem" in lines[0]
    assert max(map(len, lines)) <= TABLE_WIDTH
    rows = lines[3:-1]
    assert len(rows) == 5 and lines[-1] == "... and 1 more rows"
    assert all(f"{EMOTIONS[2]:<9}" in row and " 0.500 " in row for row in rows)
    assert rows[0].split()[0] == "..." + names[0][-31:] and rows[2].endswith("audio-only file")
    broken = format_predictions(table, demo=False, max_rows=6).splitlines()[-1]
    assert broken.startswith("...") and "unreadable: the container" in broken
    assert len(broken) == TABLE_WIDTH and broken.endswith("...")
