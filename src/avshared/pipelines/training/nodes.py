"""Nodes of the training template, which runs once per phase (video, audio, bimodal, baseline).

config -> targets -> trained model + history + training summary -> test predictions + metrics ->
confusion matrix and scores for MLflow -> model specification -> media model. Each node hands its
catalog inputs to the engine (``avshared.training``) or the figures (``avshared.evaluation``);
the training summary holds what reloading the model needs, so evaluation runs from the catalog
alone (``kedro run --from-nodes=<phase>.evaluate_model``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from avshared.evaluation.figures import plot_phase_confusion_matrix
from avshared.features.store import FeatureStore
from avshared.training import folds, specification, tracking
from avshared.training import phase as engine


def resolve_phase_config(
    defaults: dict[str, Any],
    overrides: dict[str, Any],
    crema_d_root: str,
    *,
    phase: str,
    modalities: Sequence[str],
) -> dict[str, Any]:
    """The phase's configuration: ``training.defaults`` merged with ``training.phases.<phase>``."""
    return engine.phase_config(
        defaults, overrides, crema_d_root, phase=phase, modalities=modalities
    )


def build_targets(
    clip_manifest: pd.DataFrame,
    crowd_labels: pd.DataFrame,
    split: pd.DataFrame,
    config: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per clip (and fold) to learn from, and what was kept and dropped."""
    return folds.build_fold_targets(clip_manifest, crowd_labels, split, config)


def train_model(
    *,
    targets: pd.DataFrame,
    target_summary: dict[str, Any],
    config: dict[str, Any],
    mlflow_run: dict[str, str] | None = None,
    log_mel_spectrograms: FeatureStore | None = None,
    spectrogram_stats: dict[str, Any] | None = None,
    face_frames: FeatureStore | None = None,
    pretrained_encoder: dict[str, torch.Tensor] | None = None,
    pretrain_summary: dict[str, Any] | None = None,
) -> tuple[nn.Module, pd.DataFrame, dict[str, Any]]:
    """The phase's model trained (once per fold), its history and training summary; started as
    ``config["init"]`` says (from the pretrain pipeline's outputs, when ``pretrain``)."""
    return folds.train_phase(
        targets=targets,
        target_summary=target_summary,
        config=config,
        mlflow_run=mlflow_run,
        log_mel_spectrograms=log_mel_spectrograms,
        spectrogram_stats=spectrogram_stats,
        face_frames=face_frames,
        pretrained_encoder=pretrained_encoder,
        pretrain_summary=pretrain_summary,
    )


def evaluate_model(
    *,
    model_weights: dict[str, torch.Tensor],
    targets: pd.DataFrame,
    training_summary: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The test predictions under every input condition, and their scores."""
    return folds.evaluate_phase(
        model_weights=model_weights,
        targets=targets,
        training_summary=training_summary,
        log_mel_spectrograms=log_mel_spectrograms,
        face_frames=face_frames,
    )


def predict_validation(
    *,
    model_weights: dict[str, torch.Tensor],
    targets: pd.DataFrame,
    training_summary: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> pd.DataFrame:
    """The validation predictions under every input condition (for choices made after training,
    such as an ensemble's mixing weight)."""
    return folds.predict_phase_validation(
        model_weights=model_weights,
        targets=targets,
        training_summary=training_summary,
        log_mel_spectrograms=log_mel_spectrograms,
        face_frames=face_frames,
    )


def plot_confusion_matrix(test_predictions: pd.DataFrame, metrics: dict[str, Any]) -> Figure:
    """The phase's confusion matrix, for its MLflow run."""
    return plot_phase_confusion_matrix(test_predictions, metrics)


def summarise_test_scores(metrics: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    """The final scores as kedro-mlflow's metrics history dataset logs them."""
    return tracking.summarise_test_scores(metrics)


def build_model_spec(
    *,
    config: dict[str, Any],
    training_summary: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> dict[str, Any]:
    """What prediction needs to rebuild the model and its inputs."""
    return specification.build_model_spec(
        config=config,
        training_summary=training_summary,
        log_mel_spectrograms=log_mel_spectrograms,
        face_frames=face_frames,
    )


def package_media_model(
    model_spec: dict[str, Any], model_weights: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """The media model for ``<phase>.media_model``, which logs and registers it."""
    return specification.package_media_model(model_spec, model_weights)
