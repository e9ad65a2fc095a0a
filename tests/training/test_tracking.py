"""Runs nested in a phase's MLflow run (cells, curriculum stages), through MlflowClient only."""

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


def test_a_cell_run_is_nested_in_the_phase_run_tagged_and_finished(mlflow_phase_run):
    client, parent = mlflow_phase_run
    cell = {"fold": 2, "seed": 1, "seed_value": 7}
    with tracking.nested_run(parent, CONFIG | cell) as child:
        assert child["tracking_uri"] == parent["tracking_uri"]
        assert client.get_run(child["run_id"]).info.status == "RUNNING"
    run = client.get_run(child["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "bimodal fold 2 seed 1"
    assert run.data.tags[MLFLOW_PARENT_RUN_ID] == parent["run_id"]
    tags = run.data.tags
    assert (tags["fold"], tags["seed"], tags["seed_value"]) == ("2", "1", "7")
    assert tags["phase"] == "bimodal"
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
    with tracking.nested_run(None, CONFIG | {"fold": 0, "seed": 0}) as child:
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


def _scores(accuracy: float) -> dict:
    """An audio phase's pooled metrics, as folds.gather_cells gives them."""
    scores = {"test_accuracy": accuracy, "test_macro_f1": accuracy / 2, "test_uar": accuracy / 3}
    return {
        **scores,
        "condition": "audio_only",
        "conditions": {"audio_only": scores},
        "param_count": 10,
        "train_samples_per_s": 5.0,
        "epochs": 3,
    }


def _part(unit: str, value: int, accuracy: float) -> dict:
    """One fold's or seed's scores (pooled over the other), as gather_cells gives them."""
    scores = {"test_accuracy": accuracy, "test_macro_f1": accuracy / 2, "test_uar": accuracy / 3}
    return {unit: value, **scores, "conditions": {"audio_only": scores}}


def test_test_scores_are_logged_at_step_0_and_each_fold_and_seed_at_its_step():
    single = tracking.summarise_test_scores(_scores(0.5))
    assert single["test_accuracy"] == [{"value": 0.5, "step": 0}]
    assert single["epochs_trained"] == [{"value": 3.0, "step": 0}]
    assert not any(name.startswith(("fold_", "seed_")) for name in single)

    folds = [_part("fold", 0, 0.4), _part("fold", 1, 0.6)]
    seeds = [_part("seed", 0, 0.45), _part("seed", 1, 0.55), _part("seed", 2, 0.5)]
    grid = tracking.summarise_test_scores({**_scores(0.5), "per_fold": folds, "per_seed": seeds})
    assert grid["test_accuracy"] == [{"value": 0.5, "step": 0}]
    assert grid["fold_test_accuracy"] == [{"value": 0.4, "step": 0}, {"value": 0.6, "step": 1}]
    assert [m["step"] for m in grid["fold_test_uar"]] == [0, 1]
    assert [m["value"] for m in grid["fold_test_uar"]] == pytest.approx([0.4 / 3, 0.2])
    assert [m["step"] for m in grid["seed_test_accuracy"]] == [0, 1, 2]
    assert [m["value"] for m in grid["seed_test_accuracy"]] == pytest.approx([0.45, 0.55, 0.5])
    assert "fold_param_count" not in grid  # the parts carry test scores only
