"""MLflow: each phase is its own run, nested under the run kedro-mlflow opens for `kedro run`.

Every phase logs the same names: per epoch ``train_loss``, ``train_accuracy``, ``val_loss``,
``val_accuracy`` (step = epoch); at the end ``test_accuracy``, ``test_macro_f1``, ``test_uar`` (plus
``<metric>_<condition>`` for single-modality conditions of two-modality phases), the phase's
parameters, the confusion-matrix figure and the trained model with an input example. Runs on
generated data carry the tag ``data: demo``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import matplotlib.figure
import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
from torch import nn


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested parameters as ``{"a.b.c": "value"}``, each value cut to MLflow's length limit."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten_params(value, f"{name}.")
        else:
            flat[name] = str(value)[:MAX_PARAM_VAL_LENGTH]
    return flat


def phase_tags(config: Mapping[str, Any]) -> dict[str, str]:
    """Tags to filter runs by: phase, data (demo | crema-d), modalities, model kind, target."""
    tags = {
        "phase": config["phase"],
        "data": config["data_source"],
        "modalities": "+".join(config["modalities"]),
        "model_kind": config["model"]["kind"],
        "target": config["target"]["kind"],
    }
    # k-fold and curriculum runs (avshared.pipelines.training.folds) nest under the phase's run.
    tags |= {key: str(config[key]) for key in ("fold", "curriculum_stage") if key in config}
    return tags


def run_name(config: Mapping[str, Any]) -> str:
    """``bimodal``, or ``bimodal fold 2`` / ``bimodal_curriculum stage 1_audio`` for nested runs."""
    parts = [config["phase"]]
    if "fold" in config:
        parts.append(f"fold {config['fold']}")
    if "curriculum_stage" in config:
        parts.append(f"stage {config['curriculum_stage']}")
    return " ".join(parts)


@contextmanager
def phase_run(config: Mapping[str, Any]) -> Iterator[str | None]:
    """Open the phase's MLflow run (nested in the active one, if any) and yield its id.

    Yields None and logs nothing when ``config["log_to_mlflow"]`` is false. The run ends with the
    block: FINISHED, or FAILED if the block raised.
    """
    if not config["log_to_mlflow"]:
        yield None
        return
    with mlflow.start_run(run_name=run_name(config), nested=True, tags=phase_tags(config)) as run:
        yield run.info.run_id


@contextmanager
def reopen_phase_run(run_id: str | None) -> Iterator[bool]:
    """Reopen a phase run to add results; yields whether there is a run to log to."""
    if run_id is None:
        yield False
        return
    with mlflow.start_run(run_id=run_id, nested=True):
        yield True


def log_phase_params(params: Mapping[str, Any]) -> None:
    """Log nested parameters, flattened, to the active run."""
    mlflow.log_params(flatten_params(params))


def log_epoch(row: Mapping[str, float]) -> None:
    """Log one epoch's metrics to the active run, with the epoch as the step."""
    mlflow.log_metrics(
        {name: value for name, value in row.items() if name != "epoch"}, step=int(row["epoch"])
    )


def log_test_results(
    metrics: Mapping[str, Any],
    confusion_matrix: matplotlib.figure.Figure,
    model: nn.Module,
    input_example: dict[str, np.ndarray],
) -> None:
    """Log the final metrics, the confusion matrix and the model to the active run."""
    final = {name: metrics[name] for name in ("test_accuracy", "test_macro_f1", "test_uar")}
    for condition, values in metrics["conditions"].items():
        if condition != metrics["condition"]:
            final |= {f"{name}_{condition}": value for name, value in values.items()}
    final |= {
        "param_count": metrics["param_count"],
        "train_samples_per_s": metrics["train_samples_per_s"],
        "epochs_trained": metrics["epochs"],
    }
    mlflow.log_metrics({name: float(value) for name, value in final.items()})
    mlflow.log_figure(confusion_matrix, "confusion_matrix.png")
    log_model(model, input_example)


def log_model(model: nn.Module, input_example: dict[str, np.ndarray]) -> None:
    """Log ``model`` (pickled nn.Module) with its input example and a tensor signature.

    The model takes named tensors (``audio``, ``video``), which MLflow's PyTorch pyfunc wrapper (one
    array in) cannot serve, so its serving check fails by design; load the model with
    ``mlflow.pytorch.load_model(uri)`` and call it as ``model(audio=..., video=...)``.
    """
    model = model.eval()
    with torch.no_grad():
        logits = model(**{name: torch.from_numpy(x) for name, x in input_example.items()})
    serving_check = logging.getLogger("mlflow.models.model")
    level = serving_check.level
    serving_check.setLevel(logging.ERROR)
    try:
        mlflow.pytorch.log_model(
            model,
            name="model",
            signature=infer_signature(input_example, logits.numpy()),
            input_example=input_example,
            serialization_format="pickle",
            # Pinned here: inferring requirements reloads the model in a subprocess (slow).
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
    finally:
        serving_check.setLevel(level)
