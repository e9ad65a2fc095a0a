"""RegisteredMediaModelDataset: what it registers, what it leaves, and that it is save-only.
The registration itself is tested end to end in tests/pipelines/predict (a registered model
predicts as its phase, and is served)."""

from __future__ import annotations

import logging
import re

import mlflow
import pytest
from kedro.io import DatasetError

from avshared.datasets.media_model import RegisteredMediaModelDataset


@pytest.fixture
def registry(sqlite_tracking):
    return mlflow.MlflowClient()


@pytest.mark.parametrize(
    ("run_id", "folds", "seeds", "reason"),
    [
        (None, 1, 1, "MLflow logging is off"),
        ("abc", 5, 1, "5 models (folds x seeds) are compared"),
        ("abc", 1, 3, "3 models (folds x seeds) are compared"),
    ],
)
def test_a_model_without_a_run_or_of_several_cells_is_not_registered(
    registry, caplog, *, run_id, folds, seeds, reason
):
    dataset = RegisteredMediaModelDataset(
        registered_model_name="avshared-bimodal", alias="candidate"
    )
    spec = {"phase": "bimodal", "mlflow_run_id": run_id, "folds": folds, "seeds": seeds}
    with caplog.at_level(logging.INFO, logger="avshared.datasets.media_model"):
        dataset.save({"spec": spec, "weights": {}})
    assert reason in caplog.text
    assert not registry.search_registered_models()


def test_it_is_save_only_and_says_how_to_load_the_model():
    dataset = RegisteredMediaModelDataset(registered_model_name="avshared-audio", alias="prod")
    with pytest.raises(DatasetError, match=re.escape("predict.model=models:/avshared-audio@prod")):
        dataset.load()
