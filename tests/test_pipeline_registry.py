"""The registered pipelines, and the project's main job run end to end as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
import yaml
from scipy.stats import binomtest

from avshared.pipeline_registry import register_pipelines

PHASES = ("video", "audio", "bimodal", "baseline", "baseline_matched")
#: Metric names that every phase's MLflow run carries, so that the compare view lines them up.
SHARED_METRICS = {"train_loss", "val_loss", "val_accuracy", "test_accuracy", "test_macro_f1"}


def test_every_pipeline_is_registered_and_the_default_never_writes_the_demo():
    pipelines = register_pipelines()
    expected = {
        *("demo_data", "ingestion", "labels", "split", "features", "training", "reporting"),
        *("preparation", "predict", "pretrain", "comparison", "analysis"),
    }
    assert expected | set(PHASES) | {"__default__"} <= set(pipelines)
    default = {node.name for node in pipelines["__default__"].nodes}
    for only_when_named in ("demo_data", "predict"):
        assert not default & {node.name for node in pipelines[only_when_named].nodes}
    for phase in PHASES:
        assert f"{phase}.train_cells" in default
        phase_nodes = {node.name for node in pipelines[phase].nodes}
        # A phase runs from the raw files: ingestion and labels included.
        assert {"probe_clips", "build_crowd_labels"} <= phase_nodes, sorted(phase_nodes)


def test_the_analysis_covers_the_two_modality_phases_and_attention_the_shared_encoders():
    pipelines = register_pipelines()
    default = {node.name for node in pipelines["__default__"].nodes}
    analysis = {node.name for node in pipelines["analysis"].nodes}
    assert analysis <= default
    assert {
        f"{p}.measure_alignment" for p in ("bimodal", "baseline", "baseline_matched")
    } <= analysis
    assert {"bimodal.measure_attention_shares", "compare_shared_and_separate"} <= analysis
    assert not any(name.startswith(("audio.", "video.")) for name in analysis)
    comparison = {node.name for node in pipelines["comparison"].nodes}
    for phase in ("bimodal_perceived_majority", "bimodal_perceived_soft", "bimodal_curriculum"):
        assert f"{phase}.measure_attention_shares" in comparison
    assert not {"baseline.measure_attention_shares", "baseline_matched.draw_attention_rollouts"} & (
        comparison
    )


def test_the_model_kinds_come_from_the_parameter_files_conf_local_included(
    scratch_project, tmp_path
):
    """A phase's model kind set in conf/local (merged key by key into conf/base) decides whether
    the analysis takes its attention."""
    project = scratch_project(tmp_path)
    (project / "conf" / "local" / "parameters_training.yml").write_text(
        yaml.safe_dump(
            {"training": {"phases": {"bimodal_curriculum": {"model": {"kind": "separate"}}}}}
        )
    )
    described = subprocess.run(
        [sys.executable, "-m", "kedro", "registry", "describe", "comparison"],
        cwd=project,
        env=os.environ | {"KEDRO_DISABLE_TELEMETRY": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    assert "bimodal_curriculum.measure_alignment" in described
    assert "bimodal_curriculum.measure_attention_shares" not in described
    assert "bimodal_perceived_soft.measure_attention_shares" in described


def test_the_video_phase_extracts_no_spectrograms():
    outputs = register_pipelines()["video"].all_outputs()
    assert "face_frames" in outputs and "log_mel_spectrograms" not in outputs


@pytest.mark.slow
@pytest.mark.parametrize("phase", PHASES)
def test_each_phase_beats_chance_on_unseen_actors(demo_project_run, phase):
    metrics = json.loads(
        demo_project_run.latest(f"data/08_reporting/{phase}/metrics.json").read_text()
    )
    assert metrics["demo"] is True and metrics["data"] == "demo"
    correct = round(metrics["test_accuracy"] * metrics["test_clips"])
    chance = binomtest(correct, metrics["test_clips"], 1 / 6, alternative="greater")
    assert chance.pvalue < 0.01, (phase, metrics["test_accuracy"], metrics["test_clips"])


@pytest.mark.slow
def test_ingestion_rejects_every_fault_of_the_generated_corpus(demo_project_run):
    intermediate = demo_project_run.path / "data" / "02_intermediate"
    rejected = pd.read_parquet(intermediate / "rejected_clips.parquet")
    assert dict(zip(rejected["clip_id"], rejected["reason"], strict=True)) == {
        "1076_MTI_SAD_XX": "too_short",  # silent stub
        "1076_MTI_NEU_XX": "too_short",  # very short video
        "1064_TIE_SAD_XX": "unreadable_video",  # an FLV with no frames
        "1064_IEO_DIS_MD": "too_long",  # every emotion in one minute
        "1003_DFA_HAP_XX": "unreadable_video",  # random bytes
        "1005_DFA_SAD_XX": "lfs_pointer",  # a Git LFS stub for the WAV
    }
    manifest = pd.read_parquet(intermediate / "clip_manifest.parquet")
    assert not set(manifest["clip_id"]) & set(rejected["clip_id"])


@pytest.mark.slow
def test_test_actors_are_never_trained_on(demo_project_run):
    split = pd.read_parquet(demo_project_run.latest("data/03_primary/split.parquet"))
    actors = split.groupby("split")["actor"].agg(set)
    assert actors["test"] and not actors["test"] & (actors["train"] | actors["val"])
    assert not actors["val"] & actors["train"]


@pytest.mark.slow
def test_each_phase_is_a_tagged_child_run_with_the_same_metric_names(demo_project_run):
    client = mlflow.MlflowClient(demo_project_run.tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string="tags.phase != ''")
    by_phase = {run.data.tags["phase"]: run for run in runs}
    assert set(by_phase) == set(PHASES)
    parents = {run.data.tags.get("mlflow.parentRunId") for run in runs}
    assert len(parents) == 1 and None not in parents  # children of the one `kedro run`
    models = client.search_logged_models(experiments)
    for phase, run in by_phase.items():
        assert run.data.tags["data"] == "demo"
        assert set(run.data.metrics) >= SHARED_METRICS, (phase, sorted(run.data.metrics))
        epochs = client.get_metric_history(run.info.run_id, "val_loss")
        assert len(epochs) >= 2
        artifacts = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
        assert "confusion_matrix.png" in artifacts
        assert any(model.source_run_id == run.info.run_id for model in models), phase


@pytest.mark.slow
def test_the_comparison_table_has_every_row_filled(demo_project_run):
    scores = pd.read_csv(demo_project_run.latest("data/08_reporting/comparison_scores.csv"))
    assert scores["accuracy"].notna().all(), scores
    table = demo_project_run.latest("data/08_reporting/comparison_table.md").read_text()
    assert "DEMO" in table.upper()
