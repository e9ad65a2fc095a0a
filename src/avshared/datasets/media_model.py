"""Kedro dataset of a phase's media-in MLflow model: saving it logs the model into the phase's
MLflow run and registers it (avshared.inference.serving), so that no node calls MLflow.

kedro-mlflow's ``MlflowModelTrackingDataset`` does not fit this model: it logs into the active run
(the phase's is a child run the nodes do not activate), and a pyfunc *object* would be pickled,
which ``mlflow models serve`` would unpickle from the registry. avshared.inference.serving logs the
model from code instead, with its specification (JSON) and weights (read back with
``torch.load(weights_only=True)``) as artifacts.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)


class RegisteredMediaModelDataset(AbstractDataset[dict[str, Any], None]):
    """Save-only. Example catalog entry::

        "{phase}.media_model":
          type: avshared.datasets.media_model.RegisteredMediaModelDataset
          registered_model_name: avshared-{phase}
          alias: candidate

    Saves ``{"spec": <model specification>, "weights": <state_dict>}``: logs the media model into
    the run named by ``spec["mlflow_run_id"]``, registers a new version of
    ``registered_model_name`` and points ``alias`` at it. Nothing is registered when the phase
    trained without an MLflow run, or under actor k-fold (fold models are compared, not deployed).
    Load a registered model with ``kedro run --pipelines=predict
    --params=predict.model=models:/<name>@<alias>``.
    """

    def __init__(
        self,
        *,
        registered_model_name: str,
        alias: str,
        metadata: dict[str, Any] | None = None,
    ):
        self._registered_model_name = registered_model_name
        self._alias = alias
        self.metadata = metadata

    def save(self, data: dict[str, Any]) -> None:
        spec = data["spec"]
        if spec["mlflow_run_id"] is None:
            logger.info("Phase %s: MLflow logging is off, no model registered", spec["phase"])
            return
        models = spec["folds"] * spec.get("seeds", 1)
        if models > 1:
            logger.info(
                "Phase %s: %d models (folds x seeds) are compared, not deployed; no model "
                "registered (train with a single split and one seed to register one)",
                spec["phase"],
                models,
            )
            return
        from avshared.inference import (
            serving,  # MLflow's pyfunc machinery, only when a model is logged
        )

        serving.log_and_register(
            spec, data["weights"], name=self._registered_model_name, alias=self._alias
        )

    def load(self) -> dict[str, Any]:
        raise DatasetError(
            f"{self._registered_model_name} is saved to the MLflow registry, not read from this "
            f"dataset: predict with --params=predict.model=models:/{self._registered_model_name}"
            f"@{self._alias}"
        )

    def _describe(self) -> dict[str, Any]:
        return {"registered_model_name": self._registered_model_name, "alias": self._alias}
