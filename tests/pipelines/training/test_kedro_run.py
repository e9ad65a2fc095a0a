"""Phase pipelines through `kedro run`, as a user runs them, on a tiny demo corpus in a scratch copy
of the project: features extracted once across phases, one MLflow child run per phase, and an
evaluation from the catalog alone in a fresh process."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

#: 8 actors x 1 sentence x 6 emotions: enough for an actor split, small enough to render fast.
TINY_CORPUS = {"actors": list(range(1001, 1009)), "sentences": ["DFA"], "faults": {}}


def _versions(project: Path, folder: str) -> list[str]:
    return sorted(p.name for p in (project / folder).iterdir())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_phases_reuse_features_log_one_run_each_and_evaluate_from_the_catalog(
    tmp_path, scratch_project, cli
):
    project = scratch_project(tmp_path)
    (project / "conf" / "local" / "parameters_tiny.yml").write_text(
        yaml.safe_dump(
            {
                "demo_data": TINY_CORPUS,
                "training": {
                    "defaults": {
                        "model": {"preset": "tiny"},
                        "trainer": {"max_epochs": 2, "min_epochs": 1, "progress_bar": False},
                    }
                },
            }
        )
    )
    cli.run(project, "--pipelines=demo_data")
    cli.run(project, "--pipelines=video")
    faces = _versions(project, "data/04_feature/face_frames")
    bimodal_log = cli.run(project, "--pipelines=bimodal")
    # The bimodal phase extracts spectrograms, and reuses the video phase's face frames.
    assert _versions(project, "data/04_feature/face_frames") == faces
    assert len(_versions(project, "data/04_feature/log_mel_spectrograms")) == 1
    assert "face frames:" not in bimodal_log  # FeatureStream's summary of an extraction
    assert "log-mel spectrograms:" in bimodal_log

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    finally:
        mlflow.set_tracking_uri("")
    parents = {
        r.info.run_id: r.info.run_name for r in runs if MLFLOW_PARENT_RUN_ID not in r.data.tags
    }
    children = [
        (parents[r.data.tags[MLFLOW_PARENT_RUN_ID]], r.info.run_name)
        for r in runs
        if MLFLOW_PARENT_RUN_ID in r.data.tags
    ]
    assert sorted(children) == [("bimodal", "bimodal"), ("video", "video")]

    predictions = project / "data/07_model_output/bimodal/test_predictions.parquet"
    cli.run(project, "--pipelines=bimodal", "--tags=evaluate,gather")
    first, again = (
        pd.read_parquet(predictions / v / predictions.name)
        for v in _versions(project, predictions.relative_to(project).as_posix())
    )
    pd.testing.assert_frame_equal(again, first, check_exact=False, atol=1e-6, rtol=0)
