"""MLflow for a phase, through Lightning's ``MLFlowLogger``: no node calls ``mlflow`` itself.

The phase's run is created by ``avshared.hooks.tracking.PhaseRunsHook`` (a child of the run
kedro-mlflow opens for ``kedro run``) and reaches the nodes as ``<phase>.mlflow_run``:
``{"run_id", "tracking_uri"}``, or None when tracking is off or this process is not global rank 0.
When a phase has several cells (folds x seeds, ``folds.py``) and with a curriculum, each cell and
stage trains in a run of its own, nested in the phase's (``nested_run``) and tagged ``fold`` and
``seed`` (its index in ``training.seeds``; ``seed_value``: the number) / ``curriculum_stage``.
Every phase logs the same names: parameters (the resolved phase configuration, flattened by
Lightning with ``/``), per epoch ``train_loss``, ``train_accuracy``, ``val_loss``,
``val_accuracy`` (and, for two-modality phases, ``val_accuracy_audio`` and ``val_accuracy_video``:
each sense alone), ``learning_rate``, ``train_seconds``, ``train_samples`` (step = epoch; the
``EpochHistory`` callback logs them), and at the end ``test_accuracy``, ``test_macro_f1``,
``test_uar`` (plus ``<metric>_<condition>`` for the single-modality conditions of two-modality
phases), ``param_count``, ``train_samples_per_s``, ``epochs_trained`` (``summarise_test_scores``,
logged by the catalog's ``<phase>.test_scores``) and ``confusion_matrix.png``
(``<phase>.confusion_matrix``): kedro-mlflow datasets that PhaseRunsHook points at the phase's run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger
from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME


def phase_tags(config: Mapping[str, Any]) -> dict[str, str]:
    """Tags to filter runs by: phase, data (demo | crema-d), modalities, model kind, target,
    training strategy."""
    tags = {
        "phase": config["phase"],
        "data": config["data_source"],
        "modalities": "+".join(config["modalities"]),
        "model_kind": config["model"]["kind"],
        "target": config["target"]["kind"],
        "strategy": config["strategy"]["kind"],
    }
    # Cell and curriculum runs (avshared.training.folds) nest under the phase's run.
    tags |= {
        key: str(config[key])
        for key in ("fold", "seed", "seed_value", "curriculum_stage")
        if key in config
    }
    return tags


def run_name(config: Mapping[str, Any]) -> str:
    """``bimodal``, or ``bimodal fold 2 seed 1`` / ``bimodal_curriculum fold 0 seed 0 stage
    1_audio`` for nested runs."""
    parts = [config["phase"]]
    if "fold" in config:
        parts.append(f"fold {config['fold']} seed {config['seed']}")
    if "curriculum_stage" in config:
        parts.append(f"stage {config['curriculum_stage']}")
    return " ".join(parts)


def phase_logger(mlflow_run: Mapping[str, str] | None) -> MLFlowLogger | None:
    """Lightning's logger bound to the phase's run; None when there is no run to log to."""
    if not mlflow_run:
        return None
    return MLFlowLogger(run_id=mlflow_run["run_id"], tracking_uri=mlflow_run["tracking_uri"])


def tag_run(mlflow_run: Mapping[str, str] | None, config: Mapping[str, Any]) -> None:
    """Tag a run with ``phase_tags(config)`` (nothing without a run): the phase's run when its
    cells or curriculum stages, not the phase itself, train in runs of their own."""
    set_tags(mlflow_run, phase_tags(config))


def set_tags(mlflow_run: Mapping[str, str] | None, tags: Mapping[str, str]) -> None:
    """Set ``tags`` on a run (nothing without a run)."""
    if mlflow_run:
        client = MlflowClient(mlflow_run["tracking_uri"])
        for name, value in tags.items():
            client.set_tag(mlflow_run["run_id"], name, value)


@contextmanager
def nested_run(
    parent: Mapping[str, str] | None, config: Mapping[str, Any]
) -> Iterator[dict[str, str] | None]:
    """A run nested in ``parent`` (a phase's run from PhaseRunsHook, or a cell's run), named
    ``run_name(config)`` and tagged ``phase_tags(config)``: one per cell and curriculum stage.

    Yields ``{"run_id", "tracking_uri"}`` for ``train_model``'s MLFlowLogger, or None when
    ``parent`` is None (tracking off, or a global rank other than 0). The run ends with the block:
    FINISHED, or FAILED if the block raised; results may still be added to it afterwards.
    """
    with child_run(parent, run_name(config), phase_tags(config)) as run:
        yield run


@contextmanager
def child_run(
    parent: Mapping[str, str] | None, name: str, tags: Mapping[str, str]
) -> Iterator[dict[str, str] | None]:
    """A run nested in ``parent``, named ``name`` and tagged ``tags``, as ``nested_run`` makes
    one (None without a parent); it ends with the block, FINISHED or FAILED."""
    if not parent:
        yield None
        return
    client = MlflowClient(parent["tracking_uri"])
    tags = {MLFLOW_PARENT_RUN_ID: parent["run_id"], MLFLOW_RUN_NAME: name, **tags}
    experiment_id = client.get_run(parent["run_id"]).info.experiment_id
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    try:
        yield {"run_id": run_id, "tracking_uri": parent["tracking_uri"]}
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def log_phase_start(logger: MLFlowLogger, config: Mapping[str, Any], params: Mapping) -> None:
    """Tag the phase's run and log its parameters."""
    for name, value in phase_tags(config).items():
        logger.experiment.set_tag(logger.run_id, name, value)
    logger.log_hyperparams(dict(params))


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The test scores (per condition too), parameter count, throughput and epochs, as numbers."""
    final = headline_scores(metrics) | {
        "param_count": metrics["param_count"],
        "train_samples_per_s": metrics["train_samples_per_s"],
        "epochs_trained": metrics["epochs"],
    }
    return {name: float(value) for name, value in final.items()}


def headline_scores(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``test_accuracy``, ``test_macro_f1``, ``test_uar`` and ``<score>_<condition>`` for the
    conditions other than the phase's own."""
    final = {name: metrics[name] for name in ("test_accuracy", "test_macro_f1", "test_uar")}
    for condition, values in metrics["conditions"].items():
        if condition != metrics["condition"]:
            final |= {f"{name}_{condition}": value for name, value in values.items()}
    return {name: float(value) for name, value in final.items()}


def summarise_test_scores(metrics: Mapping[str, Any]) -> dict[str, list[dict[str, float]]]:
    """The phase's final scores as kedro-mlflow's ``MlflowMetricsHistoryDataset`` logs them into
    the phase's run: ``final_metrics`` at step 0 and, when the phase has several folds or seeds,
    each fold's test scores as ``fold_<name>`` at step = fold and each seed's as ``seed_<name>`` at
    step = seed (the cells' runs keep their training curves)."""
    scores = {name: [{"value": value, "step": 0}] for name, value in final_metrics(metrics).items()}
    for unit in ("fold", "seed"):
        for part in metrics.get(f"per_{unit}", []):
            main = {**part, "condition": metrics["condition"]}
            for name, value in headline_scores(main).items():
                scores.setdefault(f"{unit}_{name}", []).append(
                    {"value": value, "step": int(part[unit])}
                )
    return scores
