"""A phase trained and tested once per fold of the split, and the options that change how.

The training template's nodes (``pipeline.py``) call these in place of ``nodes.build_targets``,
``train_model`` and ``evaluate_model``, which they call once per fold. With a
single split (one fold, numbered 0) they return what those return, plus a ``fold`` column in the
targets, history and predictions and ``folds: 1`` in the summaries. Under ``split.strategy:
actor_kfold`` they loop over the folds inside the phase, so the pipeline graph and the catalog stay
the same:

- every fold trains its own model on its own training actors, early-stopped on its own validation
  actors, with the log-mel standardisation measured on its own training clips, in an MLflow run of
  its own tagged ``fold`` and nested in the phase's run (``tracking.nested_run``);
- ``model_weights`` holds every fold's model (``fold_<k>.`` prefixes of one ``ModuleDict``
  state_dict; ``load_fold_model`` rebuilds one) and the training summary one summary per fold
  (``per_fold``);
- the test predictions pool the folds (every clip is tested once, by the model that never saw its
  actor); the metrics give the pooled scores, each fold's scores and their mean and sd. The
  phase's run gets the pooled scores and each fold's as ``fold_<metric>`` at step = fold
  (``tracking.summarise_test_scores``).

Three phase options act inside each fold: ``match_parameters`` (``equal_treatment``: a
parameter-matched baseline), ``curriculum`` (``curriculum``: warm-started stages, each in a run
of its own tagged ``curriculum_stage``, nested in the fold's or phase's run, which gets the
results of the last stage) and ``init`` (``pretrained``: fold k starts from the pretraining of fold
k, or from a checkpoint file; the first curriculum stage does).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from avshared.crema_d import PROBABILITY_COLUMNS
from avshared.features.audio import spectrogram_stats as measure_spectrogram_stats
from avshared.features.store import FeatureStore
from avshared.ranks import global_rank
from avshared.splits import fold_splits
from avshared.training import tracking
from avshared.training.curriculum import WarmStart, curriculum_stages
from avshared.training.equal_treatment import apply_parameter_matching
from avshared.training.phase import (
    CONDITIONS,
    build_targets,
    evaluate_model,
    load_trained_model,
    predict_validation,
    score_predictions,
    train_model,
)
from avshared.training.pretrained import SCRATCH, InitialWeights, initial_weights

logger = logging.getLogger(__name__)

#: The per-fold scores summarised by their mean and sd over the folds.
FOLD_SCORES: tuple[str, ...] = ("test_accuracy", "test_macro_f1", "test_uar")
#: What the phase's training summary takes from its folds' (the same in every fold).
SHARED_SUMMARY_KEYS: tuple[str, ...] = ("model_kind", "modalities", "model_config", "param_count")

TrainingResult = tuple[nn.Module, pd.DataFrame, dict[str, Any]]


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
    mlflow_run: dict[str, str] | None = None,
    log_mel_spectrograms: FeatureStore | None = None,
    spectrogram_stats: dict[str, Any] | None = None,
    face_frames: FeatureStore | None = None,
    pretrained_encoder: Mapping[str, Tensor] | None = None,
    pretrain_summary: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """Train the phase once per fold (see the module docstring), logging to the phase's MLflow run
    ``mlflow_run`` (from PhaseRunsHook) and runs nested in it. Returns the model (a ``ModuleDict``
    of ``fold_<k>`` models under k-fold), the history with ``fold`` and the training summary
    (``nodes.train_model``'s, with ``per_fold`` summaries under k-fold). Each fold's model starts
    as ``config["init"]`` says (``pretrained.initial_weights``): ``pretrained_encoder`` and
    ``pretrain_summary`` are the pretrain pipeline's outputs (None when it never ran)."""
    stores = {"audio": log_mel_spectrograms, "video": face_frames}
    config = apply_parameter_matching(
        config, {m: stores[m] for m in config["modalities"] if stores[m] is not None}
    )
    if "matched_parameters" in config:
        logger.info("Phase %s: parameter-matched %s", config["phase"], config["matched_parameters"])
    tracking.tag_run(mlflow_run, config)
    features = {"log_mel_spectrograms": log_mel_spectrograms, "face_frames": face_frames}
    folds = _folds(targets)

    def start(fold: int, fold_targets: pd.DataFrame) -> InitialWeights | None:
        return initial_weights(
            config.get("init", SCRATCH),
            fold=fold,
            fold_targets=fold_targets,
            model_kind=config["model"]["kind"],
            pretrained_encoder=pretrained_encoder,
            pretrain_summary=pretrain_summary,
        )

    if len(folds) == 1:
        fold_targets = _of_fold(targets, folds[0])
        model, history, summary = _train_fold(
            fold_targets,
            target_summary,
            config,
            features,
            spectrogram_stats,
            mlflow_run=mlflow_run,
            initial=start(folds[0], fold_targets),
        )
        return model, history.assign(fold=folds[0]), _with_options(summary, config, folds=1)

    models, histories, summaries = {}, [], []
    for fold in folds:
        fold_targets = _of_fold(targets, fold)
        fold_config = {
            **config,
            "fold": fold,
            "checkpoint_dir": f"{config['checkpoint_dir']}/fold_{fold}",
        }
        stats = fold_spectrogram_stats(spectrogram_stats, log_mel_spectrograms, fold_targets)
        with tracking.nested_run(mlflow_run, fold_config) as fold_run:
            model, history, summary = _train_fold(
                fold_targets,
                target_summary["per_fold"][str(fold)],
                fold_config,
                features,
                stats,
                mlflow_run=fold_run,
                initial=start(fold, fold_targets),
            )
        models[f"fold_{fold}"] = model
        histories.append(history.assign(fold=fold))
        summaries.append({**summary, "fold": fold})
    summary = {
        "phase": config["phase"],
        "data_source": config["data_source"],
        **_run_ids(mlflow_run),
        **{key: summaries[0][key] for key in SHARED_SUMMARY_KEYS},
        "epochs": float(np.mean([s["epochs"] for s in summaries])),
        "best_epoch": [s["best_epoch"] for s in summaries],
        "train_samples_per_s": float(np.mean([s["train_samples_per_s"] for s in summaries])),
        "targets": target_summary,
        "config": config,
        "per_fold": summaries,
    }
    return (
        nn.ModuleDict(models),
        pd.concat(histories, ignore_index=True),
        _with_options(summary, config, folds=len(folds)),
    )


def _train_fold(
    targets: pd.DataFrame,
    target_summary: dict[str, Any],
    config: dict[str, Any],
    features: Mapping[str, FeatureStore | None],
    spectrogram_stats: dict[str, Any] | None,
    *,
    mlflow_run: dict[str, str] | None,
    initial: InitialWeights | None,
) -> TrainingResult:
    """One fold's model: its last curriculum stage, its results to be logged to ``mlflow_run``."""
    model, history, summary = train_stages(
        targets,
        target_summary,
        config,
        features,
        spectrogram_stats,
        mlflow_run=mlflow_run,
        initial_weights=initial,
    )[-1]
    return model, history, {**summary, **_run_ids(mlflow_run)}


def train_stages(
    targets: pd.DataFrame,
    target_summary: dict[str, Any],
    config: dict[str, Any],
    features: Mapping[str, FeatureStore | None],
    spectrogram_stats: dict[str, Any] | None,
    *,
    mlflow_run: dict[str, str] | None = None,
    extra_callbacks: Sequence[Callback] = (),
    initial_weights: InitialWeights | None = None,
) -> list[TrainingResult]:
    """``nodes.train_model`` for each curriculum stage of ``config``, each stage warm-started from
    the one before and logged to a run nested in ``mlflow_run``; without a curriculum, one stage
    logged to ``mlflow_run`` itself. The first stage starts from ``initial_weights`` when given.
    Returns every stage's result."""
    stages = curriculum_stages(config)
    if len(stages) == 1:
        return [
            train_model(
                targets=targets,
                target_summary=target_summary,
                config=stages[0],
                mlflow_run=mlflow_run,
                spectrogram_stats=spectrogram_stats,
                extra_callbacks=extra_callbacks,
                initial_weights=initial_weights,
                **features,
            )
        ]
    results: list[TrainingResult] = []
    for stage_config in stages:
        warm_start = [WarmStart(results[-1][0].state_dict())] if results else []
        with tracking.nested_run(mlflow_run, stage_config) as stage_run:
            results.append(
                train_model(
                    targets=targets,
                    target_summary=target_summary,
                    config=stage_config,
                    mlflow_run=stage_run,
                    spectrogram_stats=spectrogram_stats,
                    extra_callbacks=[*warm_start, *extra_callbacks],
                    initial_weights=None if results else initial_weights,
                    **features,
                )
            )
        if warm_start:
            logger.info(
                "Curriculum stage %s started from the stage before's encoder and embeddings",
                stage_config["curriculum_stage"],
            )
    return results


def evaluate_phase(
    *,
    model_weights: dict[str, Tensor],
    targets: pd.DataFrame,
    training_summary: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``nodes.evaluate_model`` per fold; under k-fold the predictions pool the folds and the
    metrics are those of the pooled predictions, with ``per_fold`` metrics and ``fold_mean`` /
    ``fold_sd`` of ``FOLD_SCORES``."""
    if global_rank() != 0:
        # Under torchrun / srun every rank runs this node, and a one-device trainer would put
        # every node's local ranks on its first GPU: rank 0 evaluates, the others (whose outputs
        # the hooks keep in memory and drop) do not.
        return _not_evaluated_here(training_summary)
    features = {"log_mel_spectrograms": log_mel_spectrograms, "face_frames": face_frames}
    folds = _folds(targets)
    if len(folds) == 1:
        predictions, metrics = evaluate_model(
            model_weights=model_weights,
            targets=_of_fold(targets, folds[0]),
            training_summary=training_summary,
            **features,
        )
        return predictions.assign(fold=folds[0]), _with_options(metrics, training_summary, folds=1)

    tables, per_fold = [], []
    for fold in folds:
        predictions, metrics = evaluate_model(
            model_weights=fold_weights(model_weights, fold),
            targets=_of_fold(targets, fold),
            training_summary=fold_summary(training_summary, fold),
            **features,
        )
        tables.append(predictions.assign(fold=fold))
        per_fold.append({**metrics, "fold": fold})
    predictions = pd.concat(tables, ignore_index=True)
    conditions = {
        condition: score_predictions(rows)
        for condition, rows in predictions.groupby("condition", sort=False)
    }
    main = per_fold[0]["condition"]
    metrics = {
        **{key: value for key, value in per_fold[0].items() if key != "fold"},
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
        metrics["phase"],
        len(folds),
        metrics["test_accuracy"],
        metrics["fold_mean"]["test_accuracy"],
        metrics["fold_sd"]["test_accuracy"],
    )
    return predictions, _with_options(metrics, training_summary, folds=len(folds))


def predict_phase_validation(
    *,
    model_weights: dict[str, Tensor],
    targets: pd.DataFrame,
    training_summary: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> pd.DataFrame:
    """``phase.predict_validation`` per fold, pooled with a ``fold`` column: each fold's
    validation clips predicted by that fold's model (empty on global ranks other than 0)."""
    features = {"log_mel_spectrograms": log_mel_spectrograms, "face_frames": face_frames}
    folds = _folds(targets)
    if global_rank() != 0:
        return _not_evaluated_here(training_summary)[0]
    if len(folds) == 1:
        return predict_validation(
            model_weights=model_weights,
            targets=_of_fold(targets, folds[0]),
            training_summary=training_summary,
            **features,
        ).assign(fold=folds[0])
    tables = [
        predict_validation(
            model_weights=fold_weights(model_weights, fold),
            targets=_of_fold(targets, fold),
            training_summary=fold_summary(training_summary, fold),
            **features,
        ).assign(fold=fold)
        for fold in folds
    ]
    return pd.concat(tables, ignore_index=True)


def _not_evaluated_here(training_summary: Mapping[str, Any]) -> tuple[pd.DataFrame, dict]:
    """What a global rank other than 0 returns for the evaluation: no predictions, no scores."""
    config = training_summary["config"]
    modalities = tuple(config["modalities"])
    columns = ["condition", "clip_id", "actor", "emotion", "level", "target", "predicted"]
    predictions = pd.DataFrame(columns=[*columns, *PROBABILITY_COLUMNS, "fold"])
    nothing = dict.fromkeys(FOLD_SCORES, float("nan"))
    main = CONDITIONS[modalities]
    logger.info("Rank %d: the test clips are evaluated on global rank 0 only", global_rank())
    metrics = {
        "phase": config["phase"],
        "data": config["data_source"],
        "demo": config["data_source"] == "demo",
        "modalities": list(modalities),
        "model_kind": config["model"]["kind"],
        "target": config["target"]["kind"],
        "condition": main,
        **nothing,
        "conditions": {main: nothing},
        "test_clips": 0,
        "evaluated_on_global_rank": 0,
        "param_count": training_summary["param_count"],
        "train_samples_per_s": training_summary["train_samples_per_s"],
        "epochs": training_summary["epochs"],
        "best_epoch": training_summary["best_epoch"],
        "mlflow_run_id": training_summary["mlflow_run_id"],
    }
    return predictions, metrics


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


def fold_summary(training_summary: Mapping[str, Any], fold: int) -> dict[str, Any]:
    """One fold's training summary out of a k-fold phase's (``per_fold``)."""
    for summary in training_summary["per_fold"]:
        if summary["fold"] == fold:
            return summary
    folds = [summary["fold"] for summary in training_summary["per_fold"]]
    raise KeyError(f"the training summary has folds {folds}, not {fold}")


def load_fold_model(
    model_weights: Mapping[str, Tensor], training_summary: Mapping[str, Any], fold: int = 0
) -> nn.Module:
    """``nodes.load_trained_model`` for a phase trained on folds: the model of ``fold`` (the only
    one, 0, after a single split) from the phase's weights and training summary."""
    if training_summary.get("folds", 1) == 1:
        if fold != 0:
            raise KeyError(f"the phase was trained on a single split (fold 0), not on fold {fold}")
        return load_trained_model(model_weights, training_summary)
    return load_trained_model(
        fold_weights(model_weights, fold), fold_summary(training_summary, fold)
    )


def _folds(targets: pd.DataFrame) -> list[int]:
    return sorted(int(fold) for fold in targets["fold"].unique())


def _of_fold(targets: pd.DataFrame, fold: int) -> pd.DataFrame:
    return targets.loc[targets["fold"] == fold].drop(columns="fold").reset_index(drop=True)


def _run_ids(mlflow_run: Mapping[str, str] | None) -> dict[str, str | None]:
    """The training summary's reference to the run its results are logged to."""
    return {
        "mlflow_run_id": mlflow_run["run_id"] if mlflow_run else None,
        "mlflow_tracking_uri": mlflow_run["tracking_uri"] if mlflow_run else None,
    }


def fold_spectrogram_stats(
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


def _with_options(
    summary: dict[str, Any], config: Mapping[str, Any], *, folds: int
) -> dict[str, Any]:
    """``summary`` with the number of folds and the equal-treatment / curriculum settings used."""
    extra: dict[str, Any] = {"folds": folds}
    for key in ("matched_parameters", "curriculum"):
        if config.get(key):
            extra[key] = config[key]
    return {**summary, **extra}
