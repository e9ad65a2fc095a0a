"""The unimodal ensemble rows: the audio weight chosen on validation predictions, the equal-weight
row, and predictions and metrics shaped as a phase's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avshared.crema_d import EMOTIONS, PROBABILITY_COLUMNS
from avshared.evaluation.ensembles import (
    ENSEMBLE_ROWS,
    build_unimodal_ensemble,
    choose_audio_weight,
)

CLASSES = len(EMOTIONS)


def _one_hot(labels: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    probabilities = np.full((len(labels), CLASSES), (1 - confidence) / (CLASSES - 1))
    probabilities[np.arange(len(labels)), labels] = confidence
    return probabilities


def test_the_weight_goes_to_the_model_that_is_right_on_validation() -> None:
    target = np.arange(12) % CLASSES
    right, wrong = _one_hot(target), _one_hot((target + 1) % CLASSES)
    assert choose_audio_weight(right, wrong, target, 0.05) > 0.5
    assert choose_audio_weight(wrong, right, target, 0.05) < 0.5


def test_a_tie_goes_to_the_weight_nearest_one_half() -> None:
    target = np.arange(12) % CLASSES
    same = _one_hot(target)
    assert choose_audio_weight(same, same.copy(), target, 0.05) == 0.5
    # Audio right, video wrong but less sure: every weight from 0.25 up ties; 0.5 is nearest.
    wrong = _one_hot((target + 1) % CLASSES, 0.3)
    assert choose_audio_weight(same, wrong, target, 0.25) == 0.5


def test_the_chosen_weight_beats_both_models_alone_when_they_err_on_different_clips() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, CLASSES, 300)
    # Each model is confidently right on its half of the clips and unsure elsewhere.
    audio = np.where((np.arange(300) % 2 == 0)[:, None], _one_hot(target), 1 / CLASSES)
    video = np.where((np.arange(300) % 2 == 1)[:, None], _one_hot(target, 0.6), 1 / CLASSES)
    audio = audio + rng.uniform(0, 0.01, audio.shape)
    video = video + rng.uniform(0, 0.01, video.shape)
    weight = choose_audio_weight(audio, video, target, 0.05)
    mixed = (weight * audio + (1 - weight) * video).argmax(axis=1)
    assert 0 < weight < 1
    assert (mixed == target).mean() > max(
        (audio.argmax(1) == target).mean(), (video.argmax(1) == target).mean()
    )


def test_a_grid_step_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="weight_step"):
        choose_audio_weight(np.ones((1, 6)), np.ones((1, 6)), np.zeros(1, dtype=int), 0.0)


def _phase_predictions(
    clips: pd.DataFrame, condition: str, probabilities: np.ndarray, fold: int
) -> pd.DataFrame:
    frame = clips.assign(condition=condition, fold=fold)
    frame["predicted"] = probabilities.argmax(axis=1)
    frame[list(PROBABILITY_COLUMNS)] = probabilities
    return frame


def _clips(actors: range, rng: np.random.Generator) -> pd.DataFrame:
    rows = [(f"{a}_IEO_{e}_HI", a, e) for a in actors for e in EMOTIONS for _ in range(1)]
    frame = pd.DataFrame(rows, columns=["clip_id", "actor", "emotion"]).assign(level="HI")
    frame["clip_id"] = frame["clip_id"] + [f"_{i}" for i in range(len(frame))]
    frame["target"] = frame["emotion"].map(EMOTIONS.index)
    return frame.sample(frac=1, random_state=int(rng.integers(1000))).reset_index(drop=True)


@pytest.fixture
def two_folds() -> dict[str, pd.DataFrame]:
    """Audio right on validation in fold 0 and video right on validation in fold 1; on the test
    clips each phase is right on every other clip."""
    rng = np.random.default_rng(3)
    frames: dict[str, list[pd.DataFrame]] = {
        "audio_test": [],
        "video_test": [],
        "audio_validation": [],
        "video_validation": [],
    }
    for fold, val_audio_right in ((0, True), (1, False)):
        val, test = (
            _clips(range(1000 + 10 * fold, 1002 + 10 * fold), rng),
            _clips(range(1005 + 10 * fold, 1008 + 10 * fold), rng),
        )
        good, bad = _one_hot(val["target"].to_numpy()), _one_hot((val["target"] + 1) % CLASSES)
        frames["audio_validation"].append(
            _phase_predictions(val, "audio_only", good if val_audio_right else bad, fold)
        )
        frames["video_validation"].append(
            _phase_predictions(val, "video_only", bad if val_audio_right else good, fold)
        )
        halves = np.arange(len(test)) % 2 == 0
        target = test["target"].to_numpy()
        audio = np.where(halves[:, None], _one_hot(target, 0.9), _one_hot((target + 1) % 6, 0.5))
        video = np.where(halves[:, None], _one_hot((target + 2) % 6, 0.5), _one_hot(target, 0.9))
        frames["audio_test"].append(_phase_predictions(test, "audio_only", audio, fold))
        frames["video_test"].append(_phase_predictions(test, "video_only", video, fold))
    return {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}


def _ensembles(frames: dict[str, pd.DataFrame], **metrics) -> dict[str, tuple]:
    audio_metrics = {"condition": "audio_only", "param_count": 100, "folds": 2, "demo": True}
    video_metrics = {"condition": "video_only", "param_count": 250, "folds": 2, "demo": True}
    return {
        row: build_unimodal_ensemble(
            row=row,
            **frames,
            audio_metrics=audio_metrics | metrics,
            video_metrics=video_metrics,
            weight_step=0.05,
        )
        for row in ENSEMBLE_ROWS
    }


def test_each_fold_gets_the_weight_its_own_validation_clips_choose(two_folds) -> None:
    (_, weighted), (_, equal) = _ensembles(two_folds).values()
    weights = {w["fold"]: w["audio_weight"] for w in weighted["audio_weights"]}
    assert weights[0] > 0.5 > weights[1]
    assert {w["audio_weight"] for w in equal["audio_weights"]} == {0.5}
    assert weighted["weight_chosen_on"] == "validation"


def test_the_equal_row_predicts_the_argmax_of_the_averaged_probabilities(two_folds) -> None:
    (_, _), (predictions, metrics) = _ensembles(two_folds).values()
    audio = two_folds["audio_test"].set_index(["clip_id", "fold"])[list(PROBABILITY_COLUMNS)]
    video = two_folds["video_test"].set_index(["clip_id", "fold"])[list(PROBABILITY_COLUMNS)]
    mean = (audio + video.loc[audio.index]) / 2
    got = predictions.set_index(["clip_id", "fold"])
    np.testing.assert_allclose(got.loc[mean.index, list(PROBABILITY_COLUMNS)], mean)
    np.testing.assert_array_equal(got.loc[mean.index, "predicted"], mean.to_numpy().argmax(1))
    assert set(predictions["condition"]) == {"audiovisual"}
    assert metrics["test_accuracy"] == pytest.approx(
        (predictions["predicted"] == predictions["target"]).mean()
    )


def test_ensemble_metrics_read_as_a_phase_with_both_models_parameters(two_folds) -> None:
    for row, (predictions, metrics) in _ensembles(two_folds).items():
        assert metrics["phase"] == row
        assert metrics["condition"] == "audiovisual"
        assert metrics["param_count"] == 350
        assert metrics["folds"] == 2 and metrics["demo"] is True
        assert metrics["test_clips"] == predictions["clip_id"].nunique() == len(predictions)


def test_seeds_are_paired_seed_by_seed(two_folds) -> None:
    seeded = {
        name: pd.concat([frame.assign(seed=0), frame.assign(seed=1)], ignore_index=True)
        for name, frame in two_folds.items()
    }
    # In seed 1 the video phase is right on every validation clip of fold 0.
    video_val = seeded["video_validation"]
    fixed = (video_val["seed"] == 1) & (video_val["fold"] == 0)
    video_val.loc[fixed, list(PROBABILITY_COLUMNS)] = _one_hot(
        video_val.loc[fixed, "target"].to_numpy()
    )
    (predictions, metrics), _ = _ensembles(seeded).values()
    weights = {(w["fold"], w["seed"]): w["audio_weight"] for w in metrics["audio_weights"]}
    assert weights[(0, 0)] > 0.5
    assert weights[(0, 1)] == 0.5  # both right on validation: a tie, the middle weight
    assert len(predictions) == 2 * len(two_folds["audio_test"])


def test_predictions_without_probabilities_name_the_phase_to_rerun(two_folds) -> None:
    frames = {**two_folds, "video_validation": two_folds["video_validation"].drop(columns="p_ANG")}
    with pytest.raises(ValueError, match=r"video\.validation_predictions.*--pipelines=video"):
        _ensembles(frames)


def test_no_validation_clips_is_refused_for_the_weighted_row(two_folds) -> None:
    frames = {**two_folds, "audio_validation": two_folds["audio_validation"].iloc[0:0]}
    with pytest.raises(ValueError, match="validation clips"):
        _ensembles(frames)
