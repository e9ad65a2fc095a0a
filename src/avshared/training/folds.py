"""A phase trained and tested once per cell of its grid (fold x seed), and gathered into the phase's
outputs; the options that change how a cell trains.

The training template's nodes (``pipeline.py``) call these: ``build_fold_targets`` (the targets
of every fold of the split), ``train_cells`` and ``evaluate_cells`` (the cells of the run's plan,
``cells.plan_cells``: every cell, or those ``training.only_fold`` / ``training.only_seed`` name),
whose results the catalog stores one partition per cell, and ``gather_cells``, which pools every
stored cell of the current configuration into the phase's usual outputs and records the missing
and stale ones (``cells.cell_status``). With one cell (a single split, one seed) the phase's
outputs are what ``phase.train_model`` and ``phase.evaluate_model`` return, plus ``fold`` and
``seed`` columns (both 0) in the history and predictions, ``folds: 1`` and ``seeds: 1`` in the
summaries. With several:

- every cell trains its own model on its fold's training actors with its seed, early-stopped on its
  fold's validation actors, with the log-mel standardisation measured on its fold's training clips
  (under k-fold), in an MLflow run of its own tagged ``fold`` and ``seed`` and nested in the
  phase's run (``tracking.nested_run``);
- ``model_weights`` holds every cell's model (``fold_<k>.seed_<i>.`` prefixes of one nested
  ``ModuleDict``'s state_dict; ``load_fold_model`` rebuilds one) and the training summary one
  summary per cell (``per_cell``);
- the test predictions pool the cells: every clip is tested once per seed, by the models that never
  saw its actor. The metrics give the pooled scores, each cell's (``per_cell``), under k-fold each
  fold's (pooled over the seeds, ``per_fold``) with their mean and sd over the folds, and with
  several seeds each seed's (pooled over the folds, ``per_seed``) with their mean and sd over the
  seeds. The phase's run gets the pooled scores, each fold's as ``fold_<metric>`` at step = fold
  and each seed's as ``seed_<metric>`` at step = seed (``tracking.summarise_test_scores``).

Three phase options act inside each cell: ``match_parameters`` (``equal_treatment``: a
parameter-matched baseline), ``curriculum`` (``curriculum``: warm-started stages, each in a run
of its own tagged ``curriculum_stage``, nested in the cell's or phase's run, which gets the
results of the last stage) and ``init`` (``pretrained``: every cell of fold k, whatever its seed,
starts from the pretraining of fold k, or from a checkpoint file; the first curriculum stage does).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
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
from avshared.training.cells import (
    Cell,
    CellPlan,
    cell_command,
    cell_config,
    cell_status,
    stored_in_full,
)
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

#: The scores summarised by their mean and sd over the folds and over the seeds.
SPREAD_SCORES: tuple[str, ...] = ("test_accuracy", "test_macro_f1", "test_uar")
#: What the phase's training summary takes from its cells' (the same in every cell).
SHARED_SUMMARY_KEYS: tuple[str, ...] = ("model_kind", "modalities", "model_config", "param_count")
#: What identifies a cell's results: its place in the grid and the training they come from.
CELL_STAMP_KEYS: tuple[str, ...] = ("fold", "seed", "seed_value", "fingerprint", "training_id")

TrainingResult = tuple[nn.Module, pd.DataFrame, dict[str, Any]]
#: A partitioned dataset as a node receives it: each partition's key and the function loading it.
Partitions = Mapping[str, Callable[[], Any]]


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
    pretrained_encoder: Mapping[str, Tensor] | None = None,
    pretrain_summary: Mapping[str, Any] | None = None,
) -> tuple[dict[str, nn.Module], dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """Train the plan's selected cells (see the module docstring), logging to the phase's MLflow
    run ``mlflow_run`` (from PhaseRunsHook) or, when the phase has several cells, to a run per cell
    nested in it. Returns, keyed by cell (``fold_<k>.seed_<i>``), each cell's model, its history
    (with ``fold`` and ``seed``) and its training summary (``train_model``'s, with the cell's
    ``fold``, ``seed``, ``seed_value``, ``fingerprint`` and a ``training_id`` of its own). Each
    cell's model starts as ``config["init"]`` says (``pretrained.initial_weights``):
    ``pretrained_encoder`` and ``pretrain_summary`` are the pretrain pipeline's outputs (None when
    it never ran)."""
    stores = {"audio": log_mel_spectrograms, "video": face_frames}
    config = apply_parameter_matching(
        config, {m: stores[m] for m in config["modalities"] if stores[m] is not None}
    )
    if "matched_parameters" in config:
        logger.info("Phase %s: parameter-matched %s", config["phase"], config["matched_parameters"])
    tracking.tag_run(mlflow_run, config)
    features = {"log_mel_spectrograms": log_mel_spectrograms, "face_frames": face_frames}
    several_folds = len(plan.folds) > 1
    fold_stats: dict[int, dict[str, Any] | None] = {}
    models, histories, summaries = {}, {}, {}
    for cell in plan.selected:
        fold_targets = _of_fold(targets, cell.fold)
        if cell.fold not in fold_stats:
            fold_stats[cell.fold] = (
                fold_spectrogram_stats(spectrogram_stats, log_mel_spectrograms, fold_targets)
                if several_folds
                else spectrogram_stats
            )
        configuration = cell_config(config, cell)
        # One cell is the phase itself: it trains in the phase's run, as a phase always did.
        run = (
            nullcontext(mlflow_run)
            if len(plan.cells) == 1
            else tracking.nested_run(mlflow_run, configuration)
        )
        with run as cell_run:
            model, history, summary = _train_cell(
                fold_targets,
                target_summary["per_fold"][str(cell.fold)] if several_folds else target_summary,
                configuration,
                features,
                fold_stats[cell.fold],
                mlflow_run=cell_run,
                initial=initial_weights(
                    config.get("init", SCRATCH),
                    fold=cell.fold,
                    fold_targets=fold_targets,
                    model_kind=config["model"]["kind"],
                    pretrained_encoder=pretrained_encoder,
                    pretrain_summary=pretrain_summary,
                ),
            )
        models[cell.key] = model
        histories[cell.key] = history.assign(fold=cell.fold, seed=cell.seed)
        summaries[cell.key] = {
            **summary,
            "fold": cell.fold,
            "seed": cell.seed,
            "seed_value": plan.seed_value(cell),
            "fingerprint": plan.fingerprints[cell.key],
            "training_id": uuid.uuid4().hex,
        }
    return models, histories, summaries


def _train_cell(
    targets: pd.DataFrame,
    target_summary: dict[str, Any],
    config: dict[str, Any],
    features: Mapping[str, FeatureStore | None],
    spectrogram_stats: dict[str, Any] | None,
    *,
    mlflow_run: dict[str, str] | None,
    initial: InitialWeights | None,
) -> TrainingResult:
    """One cell's model: its last curriculum stage, its results to be logged to ``mlflow_run``."""
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


def evaluate_cells(
    *,
    cell_weights: Partitions,
    cell_training_summaries: Partitions,
    targets: pd.DataFrame,
    plan: CellPlan,
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """``phase.evaluate_model`` for each of the plan's selected cells, from its stored weights and
    training summary: its predictions (with ``fold`` and ``seed``) and metrics (with the cell's
    stamps, ``CELL_STAMP_KEYS``), keyed by cell. Refuses a stored model of another configuration,
    naming the command that retrains it."""
    if global_rank() != 0:
        # Under torchrun / srun every rank runs this node, and a one-device trainer would put
        # every node's local ranks on its first GPU: rank 0 evaluates, the others (whose outputs
        # the hooks keep in memory and drop) do not.
        return {}, {}
    features = {"log_mel_spectrograms": log_mel_spectrograms, "face_frames": face_frames}
    predictions, metrics = {}, {}
    for cell in plan.selected:
        summary = _load(cell_training_summaries, plan, cell, "cell_training_summaries")
        if summary.get("fingerprint") != plan.fingerprints[cell.key]:
            raise ValueError(
                f"the stored model of {plan.phase} cell {cell.key} was trained under another "
                "configuration (parameters, split, labels or features changed since): train it "
                f"again with `{cell_command(plan.phase, cell)}`"
            )
        cell_predictions, cell_metrics = evaluate_model(
            model_weights=_load(cell_weights, plan, cell, "cell_weights"),
            targets=_of_fold(targets, cell.fold),
            training_summary=summary,
            **features,
        )
        predictions[cell.key] = cell_predictions.assign(fold=cell.fold, seed=cell.seed)
        metrics[cell.key] = {**cell_metrics, **{key: summary[key] for key in CELL_STAMP_KEYS}}
    return predictions, metrics


def _load(partitions: Partitions, plan: CellPlan, cell: Cell, name: str) -> Any:
    if cell.key not in partitions:
        raise KeyError(
            f"{plan.phase}.{name} has no cell {cell.key}: train it first with "
            f"`{cell_command(plan.phase, cell)}`"
        )
    return partitions[cell.key]()


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
    """Pool every stored cell of the plan's configuration into the phase's outputs: the model, the
    history, the training summary, the test predictions and the metrics (see the module
    docstring). Both summaries record the expected, present, missing and stale cells (``cells``,
    ``cells.CellStatus``), which the report refuses to leave out; the metrics also record the
    trainer's budget (``budget``: ``max_epochs``, ``min_epochs``, early-stopping ``patience``).
    Refuses a phase none of whose cells is stored under its configuration."""
    if global_rank() != 0:
        # Rank 0 gathers and saves; the other ranks' outputs stay in memory and are dropped.
        return _not_gathered_here(cell_training_summaries)
    datasets = {
        "cell_weights": cell_weights,
        "cell_training_summaries": cell_training_summaries,
        "cell_histories": cell_histories,
        "cell_predictions": cell_predictions,
        "cell_metrics": cell_metrics,
    }
    complete = stored_in_full(plan, {name: set(parts) for name, parts in datasets.items()})
    stamps = {
        cell.key: (cell_training_summaries[cell.key](), cell_metrics[cell.key]())
        for cell in complete
    }
    status = cell_status(plan, complete, stamps)
    if not status.present:
        raise ValueError(
            f"phase {plan.phase} has no cell stored under its current configuration (missing "
            f"{list(status.missing)}, stale {list(status.stale)}): train them, e.g. "
            f"`kedro run --pipelines={plan.phase}`, or one at a time: "
            + "; ".join(status.commands.values())
        )
    if status.missing or status.stale:
        logger.warning(
            "Phase %s: gathered %d of %d cells; missing %s, stale %s (the report refuses them "
            "until they are trained: %s)",
            plan.phase,
            len(status.present),
            len(status.expected),
            list(status.missing),
            list(status.stale),
            "; ".join(status.commands.values()),
        )
    summaries = [stamps[key][0] for key in status.present]
    metrics = [stamps[key][1] for key in status.present]
    models = {
        key: load_trained_model(cell_weights[key](), summary)
        for key, summary in zip(status.present, summaries, strict=True)
    }
    history = pd.concat([cell_histories[key]() for key in status.present], ignore_index=True)
    predictions = pd.concat([cell_predictions[key]() for key in status.present], ignore_index=True)
    grid = {"folds": len(plan.folds), "seeds": len(plan.seeds), "cells": status.to_dict()}
    trainer = config["trainer"]
    budget = {
        "max_epochs": trainer["max_epochs"],
        "min_epochs": trainer["min_epochs"],
        "patience": trainer["early_stopping"]["patience"],
    }
    tracking.tag_run(mlflow_run, config)  # the run the pooled scores go to, in any run
    # The cells' own configuration carries the options as training applied them (the matched width).
    trained = summaries[0]["config"]
    if len(plan.cells) == 1:
        return (
            next(iter(models.values())),
            history,
            _with_options({**summaries[0], **grid}, trained),
            predictions,
            _with_options({**metrics[0], **grid, "budget": budget}, trained),
        )
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
        **grid,
        "per_cell": summaries,
    }
    pooled = _pooled_metrics(predictions, metrics, summary)
    return (
        _grid_module(models),
        history,
        _with_options(summary, trained),
        predictions,
        _with_options({**pooled, **grid, "budget": budget}, trained),
    )


def _pooled_metrics(
    predictions: pd.DataFrame, per_cell: Sequence[dict[str, Any]], summary: Mapping[str, Any]
) -> dict[str, Any]:
    """The metrics of several cells' pooled predictions: the pooled scores, each cell's, and under
    k-fold or with several seeds each fold's and each seed's with their mean and sd."""
    main = per_cell[0]["condition"]
    # Clip counts depend on the fold only: count each fold once, whatever its seeds.
    by_fold = {m["fold"]: m for m in per_cell}
    metrics = {
        **{key: value for key, value in per_cell[0].items() if key not in CELL_STAMP_KEYS},
        **_scores(predictions, main),
        "test_clips": int(sum(m["test_clips"] for m in by_fold.values())),
        "test_clips_unscored": int(sum(m["test_clips_unscored"] for m in by_fold.values())),
        "epochs": summary["epochs"],
        "best_epoch": summary["best_epoch"],
        "train_samples_per_s": summary["train_samples_per_s"],
        "mlflow_run_id": summary["mlflow_run_id"],
        "per_cell": list(per_cell),
    }
    for unit in ("fold", "seed"):
        parts = [
            {unit: int(value), **_scores(rows, main)}
            for value, rows in predictions.groupby(unit, sort=True)
        ]
        if len(parts) > 1:
            metrics[f"per_{unit}"] = parts
            metrics[f"{unit}_mean"] = {
                name: float(np.mean([part[name] for part in parts])) for name in SPREAD_SCORES
            }
            metrics[f"{unit}_sd"] = {
                name: float(np.std([part[name] for part in parts], ddof=1))
                for name in SPREAD_SCORES
            }
    logger.info(
        "Phase %s, %d cells: pooled test accuracy %.3f",
        metrics["phase"],
        len(per_cell),
        metrics["test_accuracy"],
    )
    return metrics


def _scores(predictions: pd.DataFrame, main: str) -> dict[str, Any]:
    """The scores of the main condition's predictions, and of every condition (``conditions``)."""
    conditions = {
        condition: score_predictions(rows)
        for condition, rows in predictions.groupby("condition", sort=False)
    }
    return {**conditions[main], "conditions": conditions}


def _grid_module(models: Mapping[str, nn.Module]) -> nn.ModuleDict:
    """The cells' models in one module: ``fold_<k>`` -> ``seed_<i>`` -> model, so that its
    state_dict's names start with the cell key ``fold_<k>.seed_<i>.``."""
    grid: dict[str, dict[str, nn.Module]] = {}
    for key, model in models.items():
        fold, seed = key.split(".")
        grid.setdefault(fold, {})[seed] = model
    return nn.ModuleDict({fold: nn.ModuleDict(seeds) for fold, seeds in grid.items()})


def _not_gathered_here(
    cell_training_summaries: Mapping[str, Any],
) -> tuple[nn.Module, pd.DataFrame, dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """What a global rank other than 0 returns for the gathering: an empty model, history and
    predictions, the training summary of one of its cells, no scores."""
    first = next(iter(cell_training_summaries.values()))
    # In memory on these ranks when this run trained the cell, else a stored partition.
    summary = first() if callable(first) else first
    columns = ["condition", "clip_id", "actor", "emotion", "level", "target", "predicted"]
    predictions = pd.DataFrame(columns=[*columns, *PROBABILITY_COLUMNS, "fold", "seed"])
    return (
        nn.ModuleDict(),
        pd.DataFrame(columns=["epoch", "fold", "seed"]),
        summary,
        predictions,
        _not_evaluated_here(summary),
    )


def predict_phase_validation(
    *,
    model_weights: dict[str, Tensor],
    targets: pd.DataFrame,
    training_summary: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> pd.DataFrame:
    """``phase.predict_validation`` per gathered cell, pooled with ``fold`` and ``seed`` columns:
    each cell's validation clips predicted by that cell's model (empty on global ranks other
    than 0, which do not evaluate)."""
    columns = ["condition", "clip_id", "actor", "emotion", "level", "target", "predicted"]
    if global_rank() != 0:
        return pd.DataFrame(columns=[*columns, *PROBABILITY_COLUMNS, "fold", "seed"])
    features = {"log_mel_spectrograms": log_mel_spectrograms, "face_frames": face_frames}
    if "per_cell" not in training_summary:
        fold, seed = training_summary.get("fold", 0), training_summary.get("seed", 0)
        return predict_validation(
            model_weights=model_weights,
            targets=_of_fold(targets, fold),
            training_summary=training_summary,
            **features,
        ).assign(fold=fold, seed=seed)
    tables = [
        predict_validation(
            model_weights=weights_of_cell(model_weights, cell["fold"], cell["seed"]),
            targets=_of_fold(targets, cell["fold"]),
            training_summary=cell,
            **features,
        ).assign(fold=cell["fold"], seed=cell["seed"])
        for cell in training_summary["per_cell"]
    ]
    return pd.concat(tables, ignore_index=True)


def _not_evaluated_here(training_summary: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics of a global rank other than 0: no scores."""
    config = training_summary["config"]
    modalities = tuple(config["modalities"])
    nothing = dict.fromkeys(SPREAD_SCORES, float("nan"))
    main = CONDITIONS[modalities]
    logger.info("Rank %d: the test clips are evaluated on global rank 0 only", global_rank())
    return {
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


def weights_of_cell(model_weights: Mapping[str, Tensor], fold: int, seed: int) -> dict[str, Tensor]:
    """One cell's state_dict out of a phase's grid of models (``fold_<k>.seed_<i>.`` prefixes)."""
    prefix = f"{Cell(fold, seed).key}."
    weights = {
        name.removeprefix(prefix): tensor
        for name, tensor in model_weights.items()
        if name.startswith(prefix)
    }
    if not weights:
        raise KeyError(
            f"model_weights has no cell fold {fold}, seed {seed}: it was trained on another split "
            "or other seeds; re-run the phase"
        )
    return weights


def summary_of_cell(training_summary: Mapping[str, Any], fold: int, seed: int) -> dict[str, Any]:
    """One cell's training summary out of a phase's (``per_cell``)."""
    for summary in training_summary["per_cell"]:
        if (summary["fold"], summary["seed"]) == (fold, seed):
            return summary
    cells = [(summary["fold"], summary["seed"]) for summary in training_summary["per_cell"]]
    raise KeyError(f"the training summary has the cells (fold, seed) {cells}, not {(fold, seed)}")


def load_fold_model(
    model_weights: Mapping[str, Tensor],
    training_summary: Mapping[str, Any],
    fold: int = 0,
    seed: int = 0,
) -> nn.Module:
    """``phase.load_trained_model`` for a phase trained on a grid of cells: the model of ``fold``
    and ``seed`` (an index into ``training.seeds``) from the phase's weights and training summary;
    with one cell, that cell's (fold 0, seed 0)."""
    if "per_cell" not in training_summary:
        if (fold, seed) != (0, 0):
            raise KeyError(
                "the phase trained one model (fold 0, seed 0: a single split and one seed), not "
                f"fold {fold}, seed {seed}"
            )
        return load_trained_model(model_weights, training_summary)
    return load_trained_model(
        weights_of_cell(model_weights, fold, seed), summary_of_cell(training_summary, fold, seed)
    )


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


def _with_options(summary: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``summary`` with the equal-treatment / curriculum settings used."""
    extra = {key: config[key] for key in ("matched_parameters", "curriculum") if config.get(key)}
    return {**summary, **extra}
