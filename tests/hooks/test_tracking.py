"""PhaseRunsHook: one child run per phase, and the phase's kedro-mlflow datasets logging into it."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from avshared.hooks.tracking import PhaseRunsHook


@pytest.fixture
def experiment(sqlite_tracking, tmp_path):
    return mlflow.create_experiment("phases", artifact_location=(tmp_path / "mlruns").as_uri())


def _scores(mlflow_run: dict[str, str] | None) -> tuple[dict, pd.DataFrame]:
    return {"test_accuracy": {"value": 0.5, "step": 0}}, pd.DataFrame({"clip": ["a"]})


def _phases_pipeline() -> Pipeline:
    """Two phases whose node reads its run and writes a score and a table for MLflow."""
    template = Pipeline([Node(_scores, "mlflow_run", ["test_scores", "table"], name="score")])
    return sum(
        (
            Pipeline(template, namespace=phase, prefix_datasets_with_namespace=True)
            for phase in "ab"
        ),
        Pipeline([]),
    )


def _catalog(folder) -> DataCatalog:
    return DataCatalog.from_config(
        {
            "{phase}.test_scores": {"type": "kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset"},
            "{phase}.table": {
                "type": "kedro_mlflow.io.artifacts.MlflowArtifactDataset",
                "dataset": {"type": "pandas.CSVDataset", "filepath": f"{folder}/{{phase}}.csv"},
            },
        }
    )


def test_each_phase_logs_its_datasets_into_its_own_child_run(tmp_path, experiment):
    pipeline, catalog, hook = _phases_pipeline(), _catalog(tmp_path), PhaseRunsHook()
    with mlflow.start_run(experiment_id=experiment) as parent:
        hook.before_pipeline_run({}, pipeline, catalog)
        SequentialRunner().run(pipeline, catalog)
        hook.after_pipeline_run()
    client = mlflow.MlflowClient()
    runs = client.search_runs([experiment])
    children = {run.info.run_name: run for run in runs if run.info.run_id != parent.info.run_id}
    assert set(children) == {"a", "b"}
    for phase, run in children.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.metrics == {"test_accuracy": 0.5}, phase
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [f"{phase}.csv"]
        assert run.info.status == "FINISHED"
    assert not client.get_run(parent.info.run_id).data.metrics
    assert not client.list_artifacts(parent.info.run_id)


def test_without_a_run_nothing_is_logged_and_no_run_is_created(tmp_path, experiment):
    pipeline, catalog = _phases_pipeline(), _catalog(tmp_path)
    PhaseRunsHook().before_pipeline_run({}, pipeline, catalog)  # tracking off: no active run
    SequentialRunner().run(pipeline, catalog)
    assert catalog.load("a.mlflow_run") is None
    assert (tmp_path / "a.csv").is_file()  # the local copy is still written
    assert not mlflow.MlflowClient().search_runs([experiment])
