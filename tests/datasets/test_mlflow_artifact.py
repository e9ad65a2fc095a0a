"""VersionedMlflowArtifactDataset: Kedro's versioned local copy AND the MLflow artifact."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from kedro.io import DataCatalog

ENTRY = {
    "type": "avshared.datasets.mlflow_artifact.VersionedMlflowArtifactDataset",
    "versioned": True,
    "artifact_path": "reporting",
}


@pytest.fixture
def experiment(sqlite_tracking, tmp_path):
    return mlflow.create_experiment("reports", artifact_location=(tmp_path / "mlruns").as_uri())


def _catalog(folder, version: str) -> DataCatalog:
    inner = {"type": "pandas.CSVDataset", "filepath": str(folder / "table.csv")}
    return DataCatalog.from_config({"table": {**ENTRY, "dataset": inner}}, save_version=version)


def test_each_run_keeps_its_version_and_logs_its_file(tmp_path, experiment):
    client = mlflow.MlflowClient()
    tables = {"2026-01-01T00.00.00.000Z": [1, 2], "2026-01-02T00.00.00.000Z": [3]}
    for version, values in tables.items():
        with mlflow.start_run(experiment_id=experiment) as run:
            _catalog(tmp_path, version).save("table", pd.DataFrame({"a": values}))
        downloads = tmp_path / "downloads" / run.info.run_id
        downloads.mkdir(parents=True)
        logged = client.download_artifacts(run.info.run_id, "reporting/table.csv", str(downloads))
        assert pd.read_csv(logged)["a"].tolist() == values
    kept = sorted(p.name for p in (tmp_path / "table.csv").iterdir())
    assert kept == sorted(tables)  # both versions on disk, neither overwritten
    latest = _catalog(tmp_path, "2026-01-03T00.00.00.000Z").load("table")
    assert latest["a"].tolist() == [3]
