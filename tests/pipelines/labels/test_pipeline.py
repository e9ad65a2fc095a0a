"""The labels pipeline as Kedro runs it: catalog entries, runtime root override, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from avshared.crowd_ratings import tabulate_votes
from avshared.pipelines.labels import create_pipeline

PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: The catalog entries that read the CREMA-D root.
ROOT_DATASETS = ("crema_d_finished_responses", "crema_d_tabulated_votes")
OUTPUT_DATASETS = ("crowd_tabulated_votes", "crowd_labels", "human_accuracy")


def test_pipeline_wiring():
    pipeline = create_pipeline()
    assert {node.name for node in pipeline.nodes} == {
        "select_tabulated_votes",
        "build_crowd_labels",
        "summarise_human_accuracy",
    }
    assert pipeline.inputs() == {
        *ROOT_DATASETS,
        "params:crema_d_root",
        "params:labels.soft_label_pseudocount",
    }
    assert set(OUTPUT_DATASETS) <= pipeline.all_outputs()


def _root_catalog(crema_d_root: Path) -> DataCatalog:
    """The project's catalog entries for the CREMA-D root files, the root overridden at run time."""
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"),
        base_env="base",
        default_run_env="local",
        runtime_params={"crema_d_root": str(crema_d_root)},
    )
    entries = loader["catalog"]
    catalog = DataCatalog.from_config({name: entries[name] for name in ROOT_DATASETS})
    catalog["params:crema_d_root"] = str(crema_d_root)
    catalog["params:labels.soft_label_pseudocount"] = 0.0
    return catalog


def _run_crowd_labels(crema_d_root: Path) -> pd.DataFrame:
    # Up to crowd_labels only, so that it is a free output that the runner hands back.
    pipeline = create_pipeline().to_outputs("crowd_labels")
    outputs = SequentialRunner().run(pipeline, _root_catalog(crema_d_root))
    return outputs["crowd_labels"].load()


def test_tabulated_votes_file_gives_the_same_labels_as_the_individual_ratings(
    tmp_path, synthetic_finished_responses
):
    """tabulate_votes saved with the catalog's CSV settings reads back to the same crowd_labels."""
    catalog = _root_catalog(tmp_path)
    catalog.save("crema_d_finished_responses", synthetic_finished_responses)
    catalog.save("crema_d_tabulated_votes", tabulate_votes(synthetic_finished_responses))
    assert (tmp_path / "finishedResponses.csv").read_text().startswith('"","localid"')

    from_ratings = _run_crowd_labels(tmp_path)
    (tmp_path / "finishedResponses.csv").unlink()
    from_table = _run_crowd_labels(tmp_path)

    assert set(from_ratings["source"]) == {"finishedResponses"}
    assert set(from_table["source"]) == {"tabulatedVotes"}
    assert from_ratings["mean_level_norm"].isna().any()  # NaN must survive the CSV as well
    pd.testing.assert_frame_equal(
        from_table.drop(columns="source"), from_ratings.drop(columns="source")
    )


def test_kedro_run_reads_the_root_given_on_the_command_line(
    tmp_path, real_crema_d_metadata, scratch_project
):
    """`kedro run --pipelines=labels --params=crema_d_root=...` on the real ratings, in a scratch
    copy of the project (conf/base only) so that the project's data/ and MLflow store stay as
    they are."""
    project = scratch_project(tmp_path)
    # Send this run's outputs straight to tmp_path.
    catalog = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "catalog.yml").read_text())
    redirected = {
        name: {**catalog[name], "filepath": str(tmp_path / Path(catalog[name]["filepath"]).name)}
        for name in OUTPUT_DATASETS
    }
    (project / "conf" / "local" / "catalog_labels_test.yml").write_text(yaml.safe_dump(redirected))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kedro",
            "run",
            "--pipelines=labels",
            f"--params=crema_d_root={real_crema_d_metadata}",
        ],
        cwd=project,
        env=env | {"KEDRO_DISABLE_TELEMETRY": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    report = json.loads((tmp_path / "human_accuracy.json").read_text())
    assert report["source"] == "tabulatedVotes"
    assert {m: round(a, 3) for m, a in report["overall"].items()} == {
        "voice": 0.400,
        "face": 0.574,
        "audiovisual": 0.631,
    }
    labels = pd.read_parquet(tmp_path / "crowd_labels.parquet")
    assert len(labels) == 3 * 7442
    assert (project / "mlflow.db").is_file()  # the run was tracked in the project's own store


@pytest.mark.parametrize("dataset", ROOT_DATASETS)
def test_root_files_follow_the_runtime_root(tmp_path, dataset):
    catalog = _root_catalog(tmp_path)
    assert catalog.load(dataset) is None  # absent files load as None
    assert str(tmp_path) in str(catalog[dataset]._filepath)
