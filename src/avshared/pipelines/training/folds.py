"""A phase trained and tested once per fold of the split, and the options that change how.

The training template's nodes (``pipeline.py``) call these in place of ``nodes.build_targets``,
``train_model``, ``evaluate_model`` and ``log_phase_results``. With a single split (one fold,
numbered 0) they return what those return, plus a ``fold`` column in the targets, history and
predictions and ``folds: 1`` in the summaries. Under ``split.strategy: actor_kfold`` they loop over
the folds inside the phase, so the pipeline graph and the catalog stay the same:

- every fold trains its own model on its own training actors, early-stopped on its own validation
  actors, with the log-mel standardisation measured on its own training clips, in an MLflow run of
  its own tagged ``fold`` and nested in the phase's run;
- ``model_weights`` holds every fold's model (``fold_<k>.`` prefixes of one state_dict);
- the test predictions pool the folds (every clip is tested once, by the model that never saw its
  actor); the metrics give the pooled scores, each fold's scores and their mean and sd.

Two phase options act inside each fold: ``match_parameters`` (``equal_treatment``: a
parameter-matched baseline) and ``curriculum`` (``curriculum``: warm-started stages).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from avshared.datasets.feature_store import FeatureStore
from avshared.evaluation import classification_scores
from avshared.features.audio import spectrogram_stats as measure_spectrogram_stats
from avshared.pipelines.split.nodes import fold_splits
from avshared.pipelines.training import tracking
from avshared.pipelines.training.curriculum import WarmStart, curriculum_stages
from avshared.pipelines.training.equal_treatment import apply_parameter_matching
from avshared.pipelines.training.nodes import (
    CONDITIONS,
    build_targets,
    evaluate_model,
    log_phase_results,
    train_model,
)

logger = logging.getLogger(__name__)

#: The per-fold scores summarised by their mean and sd over the folds.
FOLD_SCORES: tuple[str, ...] = ("test_accuracy", "test_macro_f1", "test_uar")


def build_fold_targets(
    clip_manifest: pd.DataFrame,
    crowd_labels: pd.DataFrame,
    split: pd.DataFrame,
    config: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``nodes.build_targets`` for every fold of ``split``: the targets with a ``fold`` column,
    and the summary (the single fold's, or ``per_fold`` summaries keyed by fold)."""
    tables, summaries = [], {}
    for fold, fold_split in fold_splits(split).items():
        targets, summary = build_targets(clip_manifest, crowd_labels, fold_split, config)
        tables.append(targets.assign(fold=fold))
        summaries[str(fold)] = summary
    targets = pd.concat(tables, ignore_index=True)
    if len(summaries) == 1:
        return targets, {**next(iter(summaries.values())), "folds": 1}
    first = next(iter(summaries.values()))
    summary = {
        "kind": first["kind"],
        "rating_modality": first["rating_modality"],
        "folds": len(summaries),
        "per_fold": summaries,
    }
    return targets, summary


def train_phase(
    *,
    targets: pd.DataFrame,
    target_summary: dict[str, Any],
    config: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    spectrogram_stats: dict[str, Any] | None = None,
    face_frames: FeatureStore | None = None,
) -> tuple[nn.Module, pd.DataFrame, dict[str, Any]]:
    """Train the phase once per fold (see the module docstring); returns the model (a
    ``ModuleDict`` of ``fold_<k>`` models under k-fold), the history with ``fold`` and the summary
    (``per_fold`` summaries under k-fold)."""
    stores = {"audio": log_mel_spectrograms, "video": face_frames}
    config = apply_parameter_matching(
        config, {m: stores[m] for m in config["modalities"] if stores[m] is not None}
    )
    if "matched_parameters" in config:
        logger.info("Phase %s: parameter-matched %s", config["phase"], config["matched_parameters"])
    folds = sorted(int(f) for f in targets["fold"].unique())
    features = {"log_mel_spectrograms": log_mel_spectrograms, "face_frames": face_frames}
    if len(folds) == 1:
        fold_targets = _of_fold(targets, folds[0])
        model, history, summary = train_stages(
            fold_targets, target_summary, config, features, spectrogram_stats
        )[-1]
        return model, history.assign(fold=folds[0]), _with_options(summary, config, folds=1)

    models, histories, summaries = {}, [], []
    with tracking.phase_run(config) as phase_run_id:
        for fold in folds:
            fold_targets = _of_fold(targets, fold)
            fold_config = {
                **config,
                "fold": fold,
                "checkpoint_dir": f"{config['checkpoint_dir']}/fold_{fold}",
            }
            stats = _fold_spectrogram_stats(spectrogram_stats, log_mel_spectrograms, fold_targets)
            model, history, summary = train_stages(
                fold_targets,
                target_summary["per_fold"][str(fold)],
                fold_config,
                features,
                stats,
            )[-1]
            models[f"fold_{fold}"] = model
            histories.append(history.assign(fold=fold))
            summaries.append({**summary, "fold": fold, "spectrogram_stats": stats})
    first = summaries[0]
    summary = {
        "phase": config["phase"],
        "data_source": config["data_source"],
        "mlflow_run_id": phase_run_id,
        "model_config": first["model_config"],
        "param_count": first["param_count"],
        "epochs": float(np.mean([s["epochs"] for s in summaries])),
        "best_epoch": [s["best_epoch"] for s in summaries],
        "train_samples_per_s": float(np.mean([s["train_samples_per_s"] for s in summaries])),
        "per_fold": summaries,
    }
    return (
        nn.ModuleDict(models),
        pd.concat(histories, ignore_index=True),
        _with_options(summary, config, folds=len(folds)),
    )


def train_stages(
    targets: pd.DataFrame,
    target_summary: dict[str, Any],
    config: dict[str, Any],
    features: Mapping[str, FeatureStore | None],
    spectrogram_stats: dict[str, Any] | None,
    *,
    extra_callbacks: Sequence[Callback] = (),
) -> list[tuple[nn.Module, pd.DataFrame, dict[str, Any]]]:
    """``nodes.train_model`` for each curriculum stage of ``config`` (one stage without a
    curriculum), each stage warm-started from the one before; returns every stage's result."""
    results: list[tuple[nn.Module, pd.DataFrame, dict[str, Any]]] = []
    for stage_config in curriculum_stages(config):
        warm_start = [WarmStart(results[-1][0].state_dict())] if results else []
        results.append(
            train_model(
                targets=targets,
                target_summary=target_summary,
                config=stage_config,
                spectrogram_stats=spectrogram_stats,
                extra_callbacks=[*warm_start, *extra_callbacks],
                **features,
            )
        )
        if warm_start:
            logger.info(
                "Curriculum stage %s started from %d tensors of the stage before",
                stage_config["curriculum_stage"],
                len(warm_start[0].loaded),
            )
    return results


def evaluate_phase(
    *,
    model_weights: dict[str, Tensor],
    targets: pd.DataFrame,
    training_summary: dict[str, Any],
    config: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    spectrogram_stats: dict[str, Any] | None = None,
    face_frames: FeatureStore | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``nodes.evaluate_model`` per fold; under k-fold the predictions pool the folds and the
    metrics are those of the pooled predictions, with ``per_fold`` metrics and ``fold_mean`` /
    ``fold_sd`` of ``FOLD_SCORES``."""
    features = {"log_mel_spectrograms": log_mel_spectrograms, "face_frames": face_frames}
    folds = sorted(int(f) for f in targets["fold"].unique())
    if len(folds) == 1:
        predictions, metrics = evaluate_model(
            model_weights=model_weights,
            targets=_of_fold(targets, folds[0]),
            training_summary=training_summary,
            config=config,
            spectrogram_stats=spectrogram_stats,
            **features,
        )
        return predictions.assign(fold=folds[0]), _with_options(metrics, training_summary, folds=1)

    tables, per_fold = [], []
    for fold, summary in zip(folds, training_summary["per_fold"], strict=True):
        predictions, metrics = evaluate_model(
            model_weights=fold_weights(model_weights, fold),
            targets=_of_fold(targets, fold),
            training_summary=summary,
            config=config,
            spectrogram_stats=summary["spectrogram_stats"],
            **features,
        )
        tables.append(predictions.assign(fold=fold))
        per_fold.append({**metrics, "fold": fold})
    predictions = pd.concat(tables, ignore_index=True)
    conditions = {
        condition: _pooled_scores(rows)
        for condition, rows in predictions.groupby("condition", sort=False)
    }
    main = CONDITIONS[tuple(config["modalities"])]
    metrics = {
        **{key: value for key, value in per_fold[0].items() if key not in ("fold",)},
        **conditions[main],
        "conditions": conditions,
        "test_clips": int(sum(m["test_clips"] for m in per_fold)),
        "test_clips_unscored": int(sum(m["test_clips_unscored"] for m in per_fold)),
        "epochs": training_summary["epochs"],
        "best_epoch": training_summary["best_epoch"],
        "train_samples_per_s": training_summary["train_samples_per_s"],
        "mlflow_run_id": training_summary["mlflow_run_id"],
        "per_fold": per_fold,
        "fold_mean": {name: float(np.mean([m[name] for m in per_fold])) for name in FOLD_SCORES},
        "fold_sd": {
            name: float(np.std([m[name] for m in per_fold], ddof=1)) for name in FOLD_SCORES
        },
    }
    logger.info(
        "Phase %s, %d folds: pooled test accuracy %.3f; per fold %.3f +- %.3f",
        config["phase"],
        len(folds),
        metrics["test_accuracy"],
        metrics["fold_mean"]["test_accuracy"],
        metrics["fold_sd"]["test_accuracy"],
    )
    return predictions, _with_options(metrics, training_summary, folds=len(folds))


def log_fold_results(
    *,
    model_weights: dict[str, Tensor],
    training_summary: dict[str, Any],
    metrics: dict[str, Any],
    test_predictions: pd.DataFrame,
    config: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    spectrogram_stats: dict[str, Any] | None = None,
    face_frames: FeatureStore | None = None,
) -> None:
    """``nodes.log_phase_results`` into each fold's run (the phase's run for a single split)."""
    features = {"log_mel_spectrograms": log_mel_spectrograms, "face_frames": face_frames}
    if metrics.get("folds", 1) == 1:
        log_phase_results(
            model_weights=model_weights,
            training_summary=training_summary,
            metrics=metrics,
            test_predictions=test_predictions.drop(columns="fold", errors="ignore"),
            config=config,
            spectrogram_stats=spectrogram_stats,
            **features,
        )
        return
    for summary, fold_metrics in zip(
        training_summary["per_fold"], metrics["per_fold"], strict=True
    ):
        fold = summary["fold"]
        log_phase_results(
            model_weights=fold_weights(model_weights, fold),
            training_summary=summary,
            metrics=fold_metrics,
            test_predictions=test_predictions.loc[test_predictions["fold"] == fold],
            config=config,
            spectrogram_stats=summary["spectrogram_stats"],
            **features,
        )


def fold_weights(model_weights: Mapping[str, Tensor], fold: int) -> dict[str, Tensor]:
    """One fold's state_dict out of the k-fold ``ModuleDict``'s (``fold_<k>.`` prefixes)."""
    prefix = f"fold_{fold}."
    weights = {
        name.removeprefix(prefix): tensor
        for name, tensor in model_weights.items()
        if name.startswith(prefix)
    }
    if not weights:
        raise KeyError(
            f"model_weights has no fold {fold}: it was trained on another split; re-run the phase"
        )
    return weights


def _of_fold(targets: pd.DataFrame, fold: int) -> pd.DataFrame:
    return targets.loc[targets["fold"] == fold].drop(columns="fold").reset_index(drop=True)


def _fold_spectrogram_stats(
    stats: dict[str, Any] | None, store: FeatureStore | None, targets: pd.DataFrame
) -> dict[str, Any] | None:
    """The log-mel standardisation measured on this fold's training clips only."""
    if stats is None or store is None:
        return stats
    train = [c for c in targets.loc[targets["split"] == "train", "clip_id"] if c in store]
    return {
        **measure_spectrogram_stats((store.get(c) for c in train), stats["mode"]),
        "split": "train",
    }


def _pooled_scores(rows: pd.DataFrame) -> dict[str, float]:
    scores = classification_scores(rows["target"], rows["predicted"])
    return {
        "test_accuracy": scores["accuracy"],
        "test_macro_f1": scores["macro_f1"],
        "test_uar": scores["uar"],
    }


def _with_options(
    summary: dict[str, Any], config: Mapping[str, Any], *, folds: int
) -> dict[str, Any]:
    """``summary`` with the number of folds and the equal-treatment / curriculum settings used."""
    extra = {"folds": folds}
    for key in ("matched_parameters", "curriculum"):
        if config.get(key):
            extra[key] = config[key]
    return {**summary, **extra}
