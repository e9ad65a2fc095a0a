"""The unimodal ensemble: the audio and video phases' probabilities averaged, with no training.

It is the bar a two-modality model must clear before it can claim that fusion helps: on
speaker-independent CREMA-D folds an ensemble of separately trained unimodal models beats plain
joint audio-visual training and most imbalance remedies (MCR, NeurIPS 2025). Two rows:

- ``unimodal_ensemble``: ``w * p_audio + (1 - w) * p_video``, the audio weight ``w`` chosen per fold
  (and seed) on that fold's VALIDATION predictions, from a grid of step ``weight_step``; on a tie
  the weight nearest 0.5 wins, so the choice leans to no preference when validation cannot tell;
- ``unimodal_ensemble_equal``: ``w = 0.5``, no choice at all.

Each is shaped as a trained phase's outputs (``{phase}.test_predictions`` and ``{phase}.metrics``),
so the report scores and compares it like any row. The models it combines are the ones of the
same fold and seed: every test clip is predicted by an audio and a video model that never saw its
actor. No Kedro, no plotting.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from avshared.crema_d import PROBABILITY_COLUMNS
from avshared.evaluation.scoring import classification_scores

logger = logging.getLogger(__name__)

#: The two ensemble rows: name -> how the audio weight is chosen.
ENSEMBLE_ROWS: dict[str, str] = {
    "unimodal_ensemble": "validation",
    "unimodal_ensemble_equal": "equal",
}
#: The phases combined, each predicted with its own input.
COMBINED_PHASES: tuple[str, str] = ("audio", "video")
#: What identifies one trained model's predictions beside the clip: its fold (and seed, when the
#: rows were trained with several).
_MODEL_KEYS: tuple[str, ...] = ("fold", "seed")
_CLIP_COLUMNS: tuple[str, ...] = ("clip_id", "actor", "emotion", "level", "target")


def choose_audio_weight(
    audio: np.ndarray, video: np.ndarray, target: np.ndarray, weight_step: float
) -> float:
    """The audio weight ``w`` in ``[0, 1]`` (a grid of step ``weight_step``) that maximises the
    accuracy of ``w * audio + (1 - w) * video`` on ``target``; a tie goes to the weight nearest 0.5.

    Args:
        audio, video: (clips, classes) class probabilities of the two models.
        target: (clips,) class indices.
        weight_step: grid step, e.g. 0.05 (21 candidate weights).
    """
    if not 0 < weight_step <= 1:
        raise ValueError(f"weight_step must be in (0, 1], got {weight_step}")
    weights = np.linspace(0.0, 1.0, round(1 / weight_step) + 1)
    mixed = weights[:, None, None] * audio[None] + (1 - weights[:, None, None]) * video[None]
    accuracy = (mixed.argmax(axis=2) == target[None]).mean(axis=1)
    best = np.flatnonzero(accuracy == accuracy.max())
    return float(weights[best[np.argmin(np.abs(weights[best] - 0.5))]])


def build_unimodal_ensemble(
    *,
    row: str,
    audio_test: pd.DataFrame,
    video_test: pd.DataFrame,
    audio_validation: pd.DataFrame,
    video_validation: pd.DataFrame,
    audio_metrics: dict[str, Any],
    video_metrics: dict[str, Any],
    weight_step: float,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One ensemble row's test predictions and metrics (see the module docstring).

    Args:
        row: one of ``ENSEMBLE_ROWS``: how the audio weight is chosen.
        audio_test, video_test: ``audio.test_predictions`` and ``video.test_predictions``.
        audio_validation, video_validation: their ``validation_predictions``.
        audio_metrics, video_metrics: their metrics (own condition, parameter count, folds).
        weight_step: grid step of the validation-chosen audio weight (``round(1 / weight_step)``
            equal steps from 0 to 1).

    Returns:
        Test predictions in the columns of a phase's (condition ``audiovisual``), and metrics as a
        phase's, with the audio weight of each fold (and seed) under ``audio_weights``.
    """
    if row not in ENSEMBLE_ROWS:
        raise ValueError(f"unknown ensemble row {row!r}; rows: {sorted(ENSEMBLE_ROWS)}")
    test = _paired_probabilities(audio_test, video_test, audio_metrics, video_metrics, "test")
    keys = [key for key in _MODEL_KEYS if key in test.columns]
    if ENSEMBLE_ROWS[row] == "validation":
        validation = _paired_probabilities(
            audio_validation, video_validation, audio_metrics, video_metrics, "validation"
        )
    tables, weights = [], []
    # Grouped by a list of keys, each group's key is a tuple.
    for model_key, clips in test.groupby(keys, sort=True):
        of_model = {key: int(value) for key, value in zip(keys, model_key, strict=True)}
        weight = 0.5
        if ENSEMBLE_ROWS[row] == "validation":
            weight = _validation_weight(validation, of_model, weight_step)
        weights.append({**of_model, "audio_weight": weight})
        tables.append(_mixed_predictions(clips, weight))
    predictions = pd.concat(tables, ignore_index=True)
    metrics = _metrics(row, predictions, weights, audio_metrics, video_metrics)
    logger.info(
        "%s: audio weight %s, test accuracy %.3f",
        row,
        sorted({w["audio_weight"] for w in weights}),
        metrics["test_accuracy"],
    )
    return predictions, metrics


def _paired_probabilities(
    audio: pd.DataFrame,
    video: pd.DataFrame,
    audio_metrics: dict[str, Any],
    video_metrics: dict[str, Any],
    what: str,
) -> pd.DataFrame:
    """One row per clip (and fold, seed): the clip's columns and both models' probabilities
    (``a_<p>`` and ``v_<p>``), each model on its own input; clips only one of them predicted are
    left out (a clip without one modality's features)."""
    own = {"audio": audio_metrics["condition"], "video": video_metrics["condition"]}
    parts = {}
    for phase, frame in (("audio", audio), ("video", video)):
        missing = sorted({"condition", *_CLIP_COLUMNS, *PROBABILITY_COLUMNS} - set(frame.columns))
        if missing:
            raise ValueError(
                f"{phase}.{what}_predictions lacks {missing}: re-run the phase "
                f"(`kedro run --pipelines={phase}`) to write its {what} predictions"
            )
        own_rows = frame.loc[frame["condition"] == own[phase]]
        # Predictions written before folds existed come from a single split.
        parts[phase] = own_rows if "fold" in own_rows else own_rows.assign(fold=0)
    keys = [key for key in _MODEL_KEYS if key in parts["audio"] and key in parts["video"]]
    audio_part = parts["audio"].loc[:, [*_CLIP_COLUMNS, *keys, *PROBABILITY_COLUMNS]]
    video_part = parts["video"].loc[:, ["clip_id", *keys, *PROBABILITY_COLUMNS]]
    paired = audio_part.rename(columns={p: f"a_{p}" for p in PROBABILITY_COLUMNS}).merge(
        video_part.rename(columns={p: f"v_{p}" for p in PROBABILITY_COLUMNS}),
        on=["clip_id", *keys],
        how="inner",
    )
    dropped = len(audio_part) + len(video_part) - 2 * len(paired)
    if dropped:
        logger.warning(
            "Unimodal ensemble: %d %s predictions have no counterpart in the other phase "
            "(a clip without audio or video features, or phases trained on other folds or seeds)",
            dropped,
            what,
        )
    if paired.empty and what == "test":
        raise ValueError(
            "the audio and video phases share no test clip (fold, seed): train both on the same "
            "split and seeds (`kedro run --pipelines=audio` and `--pipelines=video`)"
        )
    return paired


def _validation_weight(
    validation: pd.DataFrame, model_key: dict[str, Any], weight_step: float
) -> float:
    clips = validation
    for key, value in model_key.items():
        clips = clips.loc[clips[key] == value]
    if clips.empty:
        raise ValueError(
            f"no validation predictions of both the audio and video phases for {model_key}: the "
            "validation-weighted ensemble chooses its weight on them; the split needs validation "
            "clips (parameters_split.yml)"
        )
    return choose_audio_weight(
        clips[[f"a_{p}" for p in PROBABILITY_COLUMNS]].to_numpy(),
        clips[[f"v_{p}" for p in PROBABILITY_COLUMNS]].to_numpy(),
        clips["target"].to_numpy(dtype=np.int64),
        weight_step,
    )


def _mixed_predictions(clips: pd.DataFrame, audio_weight: float) -> pd.DataFrame:
    audio = clips[[f"a_{p}" for p in PROBABILITY_COLUMNS]].to_numpy()
    video = clips[[f"v_{p}" for p in PROBABILITY_COLUMNS]].to_numpy()
    probabilities = audio_weight * audio + (1 - audio_weight) * video
    keys = [key for key in _MODEL_KEYS if key in clips.columns]
    table = clips.loc[:, [*_CLIP_COLUMNS, *keys]].reset_index(drop=True)
    table.insert(0, "condition", "audiovisual")
    table["predicted"] = probabilities.argmax(axis=1).astype(np.int64)
    table[list(PROBABILITY_COLUMNS)] = probabilities
    return table


def _metrics(
    row: str,
    predictions: pd.DataFrame,
    weights: list[dict[str, Any]],
    audio_metrics: dict[str, Any],
    video_metrics: dict[str, Any],
) -> dict[str, Any]:
    scores = classification_scores(predictions["target"], predictions["predicted"])
    return {
        "phase": row,
        "data": audio_metrics.get("data"),
        "demo": bool(audio_metrics.get("demo") or video_metrics.get("demo")),
        "modalities": list(COMBINED_PHASES),
        "model_kind": "ensemble of the audio and video phases",
        "condition": "audiovisual",
        **{f"test_{name}": scores[name] for name in ("accuracy", "macro_f1", "uar")},
        "test_clips": int(predictions["clip_id"].nunique()),
        # Two trained models answer each clip: the ensemble has both models' parameters.
        "param_count": int(audio_metrics["param_count"]) + int(video_metrics["param_count"]),
        "folds": int(audio_metrics.get("folds", 1)),
        "audio_weights": weights,
        "weight_chosen_on": ENSEMBLE_ROWS[row],
    }
