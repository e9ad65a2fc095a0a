"""Nodes of the training template, which runs once per phase (video, audio, bimodal, baseline).

config -> targets -> the plan of cells (fold x seed) -> each planned cell's model, history and
training summary -> its test predictions and metrics -> every stored cell gathered into the phase's
model, history, summaries, predictions and metrics -> confusion matrix and scores for MLflow ->
model specification -> media model. Each node hands its catalog inputs to the engine
(``avshared.training``) or the figures (``avshared.evaluation``); the cells' results are stored one
partition per cell, with what reloading each model needs, so evaluation and gathering run from the
catalog alone (``kedro run --pipelines=<phase> --tags=evaluate,gather``).
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
from avshared.training import cells, folds, specification, tracking
from avshared.training import phase as engine
from avshared.training.cells import CellPlan
from avshared.training.folds import Partitions


def resolve_phase_config(
    defaults: dict[str, Any],
    seeds: list[int],
    overrides: dict[str, Any],
    crema_d_root: str,
    *,
    phase: str,
    modalities: Sequence[str],
) -> dict[str, Any]:
    """The phase's configuration: ``training.defaults`` merged with ``training.phases.<phase>``,
    and ``training.seeds``."""
    return engine.phase_config(
        defaults, overrides, crema_d_root, phase=phase, modalities=modalities, seeds=seeds
    )


def build_targets(
    clip_manifest: pd.DataFrame,
    crowd_labels: pd.DataFrame,
    split: pd.DataFrame,
    config: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per clip (and fold) to learn from, and what was kept and dropped."""
    return folds.build_fold_targets(clip_manifest, crowd_labels, split, config)


def plan_cells(
    *,
    targets: pd.DataFrame,
    config: dict[str, Any],
    only_fold: int | None,
    only_seed: int | None,
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> CellPlan:
    """The phase's cells (every fold x every seed), those this run trains (``training.only_fold``
    / ``training.only_seed``; null = every one) and each cell's fingerprint."""
    return cells.plan_cells(
        targets,
        config,
        only_fold=only_fold,
        only_seed=only_seed,
        feature_stores={"audio": log_mel_spectrograms, "video": face_frames},
    )


def train_cells(
    *,
    targets: pd.DataFrame,
    target_summary: dict[str, Any],
    config: dict[str, Any],
    plan: CellPlan,
    mlflow_run: dict[str, str] | None = None,
    log_mel_spectrograms: FeatureStore | None = None,
    spectrogram_stats: dict[str, Any] | None = None,
    face_frames: FeatureStore | None = None,
    pretrained_encoder: dict[str, torch.Tensor] | None = None,
    pretrain_summary: dict[str, Any] | None = None,
) -> tuple[dict[str, nn.Module], dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """The planned cells' models, histories and training summaries, one partition per cell; each
    cell started as ``config["init"]`` says (from the pretrain pipeline's outputs, when
    ``pretrain``)."""
    return folds.train_cells(
        targets=targets,
        target_summary=target_summary,
        config=config,
        plan=plan,
        mlflow_run=mlflow_run,
        log_mel_spectrograms=log_mel_spectrograms,
        spectrogram_stats=spectrogram_stats,
        face_frames=face_frames,
        pretrained_encoder=pretrained_encoder,
        pretrain_summary=pretrain_summary,
    )


def evaluate_cells(
    *,
    cell_weights: Partitions,
    cell_training_summaries: Partitions,
    targets: pd.DataFrame,
    plan: CellPlan,
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """The planned cells' test predictions under every input condition, and their scores."""
    return folds.evaluate_cells(
        cell_weights=cell_weights,
        cell_training_summaries=cell_training_summaries,
        targets=targets,
        plan=plan,
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


def gather_cells(
    *,
    plan: CellPlan,
    config: dict[str, Any],
    target_summary: dict[str, Any],
    cell_weights: Partitions,
    cell_training_summaries: Partitions,
    cell_histories: Partitions,
    cell_predictions: Partitions,
    cell_metrics: Partitions,
    mlflow_run: dict[str, str] | None = None,
) -> tuple[nn.Module, pd.DataFrame, dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Every stored cell of the current configuration pooled into the phase's model, history,
    training summary, test predictions and metrics, with the missing and stale cells recorded."""
    return folds.gather_cells(
        plan=plan,
        config=config,
        target_summary=target_summary,
        cell_weights=cell_weights,
        cell_training_summaries=cell_training_summaries,
        cell_histories=cell_histories,
        cell_predictions=cell_predictions,
        cell_metrics=cell_metrics,
        mlflow_run=mlflow_run,
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
