"""The demo_data pipeline's wiring, and a whole `kedro run --pipelines=demo_data` in a new root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from avshared import crema_d, media
from avshared.crema_d import DEMO_MARKER_FILE
from avshared.crowd_ratings import (
    R_CSV_LOAD_ARGS,
    SUMMARY_TABLE_COLUMNS,
    SUMMARY_TABLE_LOAD_ARGS,
    TABULATED_VOTES_COLUMNS,
    summary_table,
    tabulate_votes,
)
from avshared.pipelines.demo_data import create_pipeline

PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: The files of a CREMA-D root that the pipeline writes through the catalog.
ROOT_FILES = {
    "demo_sentence_filenames": crema_d.SENTENCE_FILENAMES_FILE,
    "demo_video_demographics": crema_d.DEMOGRAPHICS_FILE,
    "demo_finished_responses": crema_d.FINISHED_RESPONSES_FILE,
    "demo_tabulated_votes": crema_d.TABULATED_VOTES_FILE,
    "demo_summary_table": crema_d.SUMMARY_TABLE_FILE,
}


def test_every_file_is_written_after_the_root_is_claimed():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {
        "params:demo_data",
        "params:demo_data.crowd",
        "params:demo_data.seed",
        "params:crema_d_root",
    }
    after_claim = pipeline.from_nodes("render_demo_media")
    assert {*ROOT_FILES, "demo_clip_truth"} <= after_claim.all_outputs()
    planning = {node.name for node in pipeline.nodes} - {node.name for node in after_claim.nodes}
    assert planning == {"plan_demo_actors", "plan_demo_clips"}


def test_the_catalog_puts_every_file_under_the_crema_d_root():
    catalog = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "catalog.yml").read_text())
    root = "${runtime_params:crema_d_root,${globals:crema_d_root}}"
    for dataset, relative in ROOT_FILES.items():
        assert catalog[dataset]["filepath"] == f"{root}/{relative}"
    memory = {"demo_actors", "demo_clip_plan"}
    assert create_pipeline().all_outputs() - memory <= set(catalog)


@pytest.fixture(scope="module")
def generated_root(tmp_path_factory, scratch_project) -> Path:
    """A `kedro run --pipelines=demo_data` of 24 clips into a new root, from a scratch project."""
    scratch = tmp_path_factory.mktemp("demo_project")
    project = scratch_project(scratch)
    parameters = project / "conf" / "base" / "parameters_demo_data.yml"
    params = yaml.safe_load(parameters.read_text())
    params["demo_data"].update(actors=[1064, 1076], sentences=["TIE", "MTI"])
    parameters.write_text(yaml.safe_dump(params))
    root = scratch / "crema_d_demo"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "kedro", "run", "--pipelines=demo_data"),
            f"--params=crema_d_root={root}",
        ],
        cwd=project,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return root


def test_kedro_run_writes_a_complete_crema_d_root(generated_root):
    assert (generated_root / DEMO_MARKER_FILE).is_file()
    listed = pd.read_csv(generated_root / crema_d.SENTENCE_FILENAMES_FILE)
    assert len(listed) == 24
    for clip in listed["Filename"]:
        assert crema_d.audio_path(generated_root, clip).is_file()
        assert crema_d.video_path(generated_root, clip).is_file()
    assert media.probe_audio(crema_d.audio_path(generated_root, listed["Filename"][0])).frames > 0
    demographics = pd.read_csv(generated_root / crema_d.DEMOGRAPHICS_FILE)
    assert list(demographics["ActorID"]) == [1064, 1076]


def test_the_ratings_files_agree_with_each_other(generated_root):
    responses = pd.read_csv(generated_root / crema_d.FINISHED_RESPONSES_FILE, **R_CSV_LOAD_ARGS)
    tabulated = pd.read_csv(generated_root / crema_d.TABULATED_VOTES_FILE, **R_CSV_LOAD_ARGS)
    summary = pd.read_csv(generated_root / crema_d.SUMMARY_TABLE_FILE, **SUMMARY_TABLE_LOAD_ARGS)
    assert tuple(tabulated.columns) == TABULATED_VOTES_COLUMNS
    assert tuple(summary.columns) == SUMMARY_TABLE_COLUMNS
    assert len(tabulated) == 3 * 24 and len(summary) == 24
    pd.testing.assert_frame_equal(tabulate_votes(responses), tabulated, check_exact=False)
    pd.testing.assert_frame_equal(summary_table(tabulated), summary)


@pytest.mark.parametrize("relative", ROOT_FILES.values())
def test_the_files_start_like_the_real_ones(generated_root, real_crema_d_metadata, relative):
    real = real_crema_d_metadata / relative
    if not real.is_file():
        pytest.skip(f"{relative} is not part of the real metadata at {real_crema_d_metadata}")
    with real.open() as real_file, (generated_root / relative).open() as demo_file:
        assert demo_file.readline() == real_file.readline()
