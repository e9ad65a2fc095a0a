"""Kedro dataset of a trained model to predict with: a phase's latest model from 06_models, or a
model logged in MLflow by avshared.inference.serving (``models:/avshared-bimodal@candidate``,
``runs:/...``).

Loads ``{"spec": <model specification>, "weights": <state_dict>, "source": <where from>}``.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError, Version
from kedro_datasets.json import JSONDataset
from kedro_datasets_experimental.pytorch import PyTorchDataset

#: Prefixes of the MLflow model URIs accepted instead of a phase name.
MLFLOW_URI_PREFIXES = ("models:/", "runs:/", "mlflow-artifacts:/")


class EmotionModelDataset(AbstractDataset[None, dict[str, Any]]):
    """Load-only. Example catalog entry::

        prediction_model:
          type: avshared.datasets.emotion_model.EmotionModelDataset
          model: ${runtime_params:predict.model,bimodal}
          models_dir: data/06_models

    ``model``: a phase name (its latest ``model_spec.json`` in ``models_dir/<phase>/`` and the
    weights saved by the same run), or an MLflow model URI.
    """

    def __init__(self, *, model: str, models_dir: str, metadata: dict[str, Any] | None = None):
        self._model = str(model)
        self._models_dir = PurePosixPath(models_dir)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if self._model.startswith(MLFLOW_URI_PREFIXES):
            from avshared.inference import serving

            spec, weights = serving.load_registered(self._model)
            return {"spec": spec, "weights": weights, "source": self._model}
        phase_dir = self._models_dir / self._model
        spec_dataset = JSONDataset(
            filepath=str(phase_dir / "model_spec.json"), version=Version(None, None)
        )
        try:
            version = spec_dataset.resolve_load_version()
        except DatasetError as err:
            raise DatasetError(
                f"no trained model {self._model!r} in {phase_dir}: train it first (kedro run "
                f"--pipelines={self._model}), or give predict.model a phase name or an MLflow "
                "model URI such as models:/avshared-bimodal@candidate"
            ) from err
        weights_dataset = PyTorchDataset(
            filepath=str(phase_dir / "model_weights.pt"), version=Version(version, None)
        )
        if not weights_dataset.exists():
            raise DatasetError(
                f"{phase_dir}/model_weights.pt has no version {version}, the one of the latest "
                f"model_spec.json: that training run did not finish; run it again"
            )
        spec = spec_dataset.load()
        folds, seeds = spec.get("folds", 1), spec.get("seeds", 1)
        if folds * seeds > 1:
            raise DatasetError(
                f"the latest {self._model!r} model was trained on {folds} fold(s) x {seeds} "
                "seed(s): models for the comparison, none to deploy. Train it on a single split "
                f"with one seed (kedro run --pipelines={self._model} "
                "--params=split.strategy=actor and one seed in training.seeds), or give "
                "predict.model an MLflow model URI"
            )
        return {
            "spec": spec,
            "weights": weights_dataset.load(),
            "source": f"{phase_dir} (version {version})",
        }

    def save(self, data: None) -> None:
        raise DatasetError("EmotionModelDataset is read-only: training writes the model")

    def _describe(self) -> dict[str, Any]:
        return {"model": self._model, "models_dir": str(self._models_dir)}
