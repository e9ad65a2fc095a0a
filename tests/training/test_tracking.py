"""Runs nested in a phase's MLflow run (folds, curriculum stages), through MlflowClient only."""

from __future__ import annotations

import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from avshared.training import tracking

CONFIG = {
    "phase": "bimodal",
    "data_source": "demo",
    "modalities": ["audio", "video"],
    "model": {"kind": "shared"},
    "target": {"kind": "acted"},
    "strategy": {"kind": "alternating"},
}


def test_a_fold_run_is_nested_in_the_phase_run_tagged_and_finished(mlflow_phase_run):
    client, parent = mlflow_phase_run
    with tracking.nested_run(parent, CONFIG | {"fold": 2}) as child:
        assert child["tracking_uri"] == parent["tracking_uri"]
        assert client.get_run(child["run_id"]).info.status == "RUNNING"
    run = client.get_run(child["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "bimodal fold 2"
    assert run.data.tags[MLFLOW_PARENT_RUN_ID] == parent["run_id"]
    assert run.data.tags["fold"] == "2" and run.data.tags["phase"] == "bimodal"
    assert run.info.experiment_id == client.get_run(parent["run_id"]).info.experiment_id


def test_a_stage_run_that_raises_is_marked_failed(mlflow_phase_run):
    client, parent = mlflow_phase_run
    with (
        pytest.raises(RuntimeError, match="stage broke"),
        tracking.nested_run(parent, CONFIG | {"curriculum_stage": "1_audio"}) as child,
    ):
        raise RuntimeError("stage broke")
    run = client.get_run(child["run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["curriculum_stage"] == "1_audio"
    assert "fold" not in run.data.tags


def test_without_a_phase_run_nothing_is_created_or_tagged(mlflow_phase_run):
    client, parent = mlflow_phase_run
    with tracking.nested_run(None, CONFIG | {"fold": 0}) as child:
        assert child is None
    tracking.tag_run(None, CONFIG)
    experiment = client.get_run(parent["run_id"]).info.experiment_id
    assert len(client.search_runs([experiment])) == 1


def test_the_phase_run_is_tagged_with_the_phase(mlflow_phase_run):
    client, parent = mlflow_phase_run
    tracking.tag_run(parent, CONFIG)
    tags = client.get_run(parent["run_id"]).data.tags
    assert tags["phase"] == "bimodal" and tags["modalities"] == "audio+video"
    assert tags["strategy"] == "alternating"
    assert "fold" not in tags


def _scores(accuracy: float, fold: int | None = None) -> dict:
    """A phase's (or one fold's) metrics as evaluate_phase gives them, for an audio phase."""
    scores = {"test_accuracy": accuracy, "test_macro_f1": accuracy / 2, "test_uar": accuracy / 3}
    metrics = {
        **scores,
        "condition": "audio_only",
        "conditions": {"audio_only": scores},
        "param_count": 10,
        "train_samples_per_s": 5.0,
        "epochs": 3,
    }
    return metrics if fold is None else {**metrics, "fold": fold}


def test_test_scores_are_logged_at_step_0_and_each_fold_at_its_step():
    single = tracking.summarise_test_scores(_scores(0.5))
    assert single["test_accuracy"] == [{"value": 0.5, "step": 0}]
    assert single["epochs_trained"] == [{"value": 3.0, "step": 0}]
    assert not any(name.startswith("fold_") for name in single)

    folds = [_scores(0.4, 0), _scores(0.6, 1)]
    kfold = tracking.summarise_test_scores({**_scores(0.5), "per_fold": folds})
    assert kfold["test_accuracy"] == [{"value": 0.5, "step": 0}]
    assert kfold["fold_test_accuracy"] == [{"value": 0.4, "step": 0}, {"value": 0.6, "step": 1}]
    assert [m["step"] for m in kfold["fold_test_uar"]] == [0, 1]
    assert [m["value"] for m in kfold["fold_test_uar"]] == pytest.approx([0.4 / 3, 0.2])
