"""The ingestion pipeline through Kedro: in process on the project's config, and `kedro run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from avshared import crema_d
from avshared.pipelines.ingestion import create_pipeline
from avshared.pipelines.ingestion.nodes import MANIFEST_DTYPES

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ROOT_DATASETS = ("crema_d_sentence_filenames", "crema_d_video_demographics")


def run_in_process(crema_d_root: Path) -> dict[str, pd.DataFrame]:
    """Run the pipeline on the project's config with ``crema_d_root`` as a runtime parameter.

    The root's datasets come from conf/base/catalog.yml; the final outputs are returned, not saved.
    """
    config = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"),
        base_env="base",
        default_run_env="local",
        runtime_params={"crema_d_root": str(crema_d_root)},
    )
    datasets = config["catalog"]
    for name in ROOT_DATASETS:
        assert Path(datasets[name]["filepath"]).parent == crema_d_root
    catalog = DataCatalog.from_config({name: datasets[name] for name in ROOT_DATASETS})
    parameters = config["parameters"]
    catalog["params:crema_d_root"] = parameters["crema_d_root"]
    catalog["params:ingestion"] = parameters["ingestion"]
    catalog["params:ingestion.workers"] = parameters["ingestion"]["workers"]
    outputs = SequentialRunner().run(create_pipeline(), catalog)
    return {name: dataset.load() for name, dataset in outputs.items()}


def kedro_run(project: Path, crema_d_root: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "KEDRO_DISABLE_TELEMETRY": "1",
        # kedro-mlflow tracks every run; without an mlflow.yml it falls back to ./mlruns, a store
        # MLflow 3 refuses unless allowed.
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "COLUMNS": "200",  # fewer line breaks in rich's log output
    }
    command = [sys.executable, "-m", "kedro", "run", "--pipelines=ingestion"]
    return subprocess.run(
        [*command, f"--params=crema_d_root={crema_d_root}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_pipeline_reads_the_root_and_writes_the_agreed_datasets():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {
        "params:crema_d_root",
        "params:ingestion",
        "params:ingestion.workers",
        *ROOT_DATASETS,
    }
    assert {"clip_manifest", "rejected_clips", "rejected_clips_report"} <= pipeline.all_outputs()


def test_the_root_given_at_run_time_is_ingested(fixture_corpus):
    outputs = run_in_process(fixture_corpus.root)
    manifest = outputs["clip_manifest"]
    assert list(manifest.columns) == list(MANIFEST_DTYPES)
    assert set(manifest["clip_id"]) == fixture_corpus.usable
    report = outputs["rejected_clips_report"]
    found = {row.clip_id: (row.stage, row.reason) for row in report.itertuples()}
    assert found == fixture_corpus.rejected


def test_a_missing_root_is_explained_before_its_datasets_load(tmp_path):
    # Loading SentenceFilenames.csv first would fail with a bare DatasetError instead.
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        run_in_process(tmp_path / "no_such_root")
    assert crema_d.MISSING_ROOT_HELP in str(error.value)


def test_kedro_run_with_the_root_in_params(tmp_path, fixture_corpus, scratch_project):
    project = scratch_project(tmp_path)
    result = kedro_run(project, fixture_corpus.root)
    assert result.returncode == 0, result.stdout + result.stderr

    outputs = project / "data"
    manifest = pd.read_parquet(outputs / "02_intermediate" / "clip_manifest.parquet")
    assert list(manifest.columns) == list(MANIFEST_DTYPES)
    assert {col: str(dtype) for col, dtype in manifest.dtypes.items()} == MANIFEST_DTYPES
    assert set(manifest["clip_id"]) == fixture_corpus.usable

    rejects = pd.read_parquet(outputs / "02_intermediate" / "rejected_clips.parquet")
    report = pd.read_csv(outputs / "08_reporting" / "rejected_clips.csv")
    for table in (rejects, report):
        found = {row.clip_id: (row.stage, row.reason) for row in table.itertuples()}
        assert found == fixture_corpus.rejected
