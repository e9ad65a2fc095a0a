"""`kedro run` of one phase under actor k-fold, in a scratch project: every fold trains, and each
fold's MLflow run (its cell's, with the one seed) is nested in the phase's run and tagged with its
fold."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
import yaml

SMALL_CORPUS = {
    "demo_data": {
        "actors": list(range(1001, 1011)),  # 7 male and 3 female actors with the project's seed
        "sentences": ["DFA", "ITS"],
        "faults": {},
    }
}
TINY_TRAINING = {
    "training": {
        "defaults": {
            "model": {"dim": 32, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
            "trainer": {"max_epochs": 2, "min_epochs": 1, "progress_bar": False},
        }
    }
}


@pytest.mark.slow
def test_a_phase_trains_once_per_fold_and_logs_each_fold(tmp_path, scratch_project, cli):
    project = scratch_project(tmp_path)
    local = project / "conf" / "local"
    (local / "parameters_demo_data.yml").write_text(yaml.safe_dump(SMALL_CORPUS))
    (local / "parameters_training.yml").write_text(yaml.safe_dump(TINY_TRAINING))
    cli.run(project, "--pipelines=demo_data")
    cli.run(
        project,
        "--pipelines=audio",
        "--params=split.strategy=actor_kfold,split.actor_kfold.folds=2",
    )

    split_folder = project / "data/03_primary/split.parquet"
    split = pd.read_parquet(next(split_folder.iterdir()) / "split.parquet")
    tested = split.loc[split["split"] == "test"]
    assert sorted(split["fold"].unique()) == [0, 1]
    metrics_folder = project / "data/08_reporting/audio/metrics.json"
    metrics = json.loads((next(metrics_folder.iterdir()) / "metrics.json").read_text())
    assert metrics["folds"] == 2 and [m["fold"] for m in metrics["per_fold"]] == [0, 1]
    assert metrics["test_clips"] == tested["clip_id"].nunique()  # every clip tested once

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    by_id = {run.info.run_id: run for run in runs}
    folds = [run for run in runs if "fold" in run.data.tags]
    assert sorted(run.data.tags["fold"] for run in folds) == ["0", "1"]
    for run in folds:
        parent = by_id[run.data.tags["mlflow.parentRunId"]]
        assert parent.data.tags["phase"] == run.data.tags["phase"] == "audio"
        assert "fold" not in parent.data.tags
        assert run.info.run_name == f"audio fold {run.data.tags['fold']} seed 0"
        assert "val_accuracy" in run.data.metrics  # the fold's training curves
    # The phase's run: the pooled scores, and each fold's at step = fold.
    phase_run = by_id[folds[0].data.tags["mlflow.parentRunId"]]
    assert phase_run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    per_fold = sorted(
        client.get_metric_history(phase_run.info.run_id, "fold_test_accuracy"),
        key=lambda metric: metric.step,
    )
    assert [m.step for m in per_fold] == [m["fold"] for m in metrics["per_fold"]]
    assert [m.value for m in per_fold] == pytest.approx(
        [m["test_accuracy"] for m in metrics["per_fold"]]
    )
    assert "confusion_matrix.png" in {a.path for a in client.list_artifacts(phase_run.info.run_id)}
