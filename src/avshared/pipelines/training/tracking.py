"""MLflow for a phase, through Lightning's ``MLFlowLogger``: no node calls ``mlflow`` itself.

The phase's run is created by ``avshared.hooks.tracking.PhaseRunsHook`` (a child of the run
kedro-mlflow opens for ``kedro run``) and reaches the nodes as ``<phase>.mlflow_run``:
``{"run_id", "tracking_uri"}``, or None when tracking is off or this process is not global rank 0.
Every phase logs the same names: parameters (the resolved phase configuration, flattened by
Lightning with ``/``), per epoch ``train_loss``, ``train_accuracy``, ``val_loss``,
``val_accuracy``, ``learning_rate``, ``train_seconds``, ``train_samples`` (step = epoch; the
``EpochHistory`` callback logs them), and at the end ``test_accuracy``, ``test_macro_f1``,
``test_uar`` (plus ``<metric>_<condition>`` for the single-modality conditions of two-modality
phases), ``param_count``, ``train_samples_per_s``, ``epochs_trained`` and the confusion matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.figure
from lightning.pytorch.loggers import MLFlowLogger


def phase_tags(config: Mapping[str, Any]) -> dict[str, str]:
    """Tags to filter runs by: phase, data (demo | crema-d), modalities, model kind, target."""
    return {
        "phase": config["phase"],
        "data": config["data_source"],
        "modalities": "+".join(config["modalities"]),
        "model_kind": config["model"]["kind"],
        "target": config["target"]["kind"],
    }


def phase_logger(mlflow_run: Mapping[str, str] | None) -> MLFlowLogger | None:
    """Lightning's logger bound to the phase's run; None when there is no run to log to."""
    if not mlflow_run:
        return None
    return MLFlowLogger(run_id=mlflow_run["run_id"], tracking_uri=mlflow_run["tracking_uri"])


def log_phase_start(logger: MLFlowLogger, config: Mapping[str, Any], params: Mapping) -> None:
    """Tag the phase's run and log its parameters."""
    for name, value in phase_tags(config).items():
        logger.experiment.set_tag(logger.run_id, name, value)
    logger.log_hyperparams(dict(params))


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The test scores (per condition too), parameter count, throughput and epochs, as numbers."""
    final = {name: metrics[name] for name in ("test_accuracy", "test_macro_f1", "test_uar")}
    for condition, values in metrics["conditions"].items():
        if condition != metrics["condition"]:
            final |= {f"{name}_{condition}": value for name, value in values.items()}
    final |= {
        "param_count": metrics["param_count"],
        "train_samples_per_s": metrics["train_samples_per_s"],
        "epochs_trained": metrics["epochs"],
    }
    return {name: float(value) for name, value in final.items()}


def log_test_results(
    logger: MLFlowLogger,
    metrics: Mapping[str, Any],
    confusion_matrix: matplotlib.figure.Figure,
) -> None:
    """Log the final metrics and the confusion matrix to the phase's run."""
    logger.log_metrics(final_metrics(metrics))
    logger.experiment.log_figure(logger.run_id, confusion_matrix, "confusion_matrix.png")
