"""Faults of a user's `kedro run`, through the command line: kill -9 during feature extraction and
during training, a second run in the same project directory, a tracking server that is down.

One project goes through the first three in order, as a user would meet them: its audio phase is
killed while it extracts features and run again (the reference run); its training is killed and
run again (it resumes, and must end as the reference run did); a second run started meanwhile in
the same directory is refused.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io.core import DatasetError, Version

from avshared.datasets.feature_store import FeatureStoreDataset
from avshared.hooks.run_lock import LOCK_FILE
from avshared.hooks.tracking_server import FALLBACK_ENV

pytestmark = pytest.mark.slow

POLL_S = 0.005
STORE = "data/04_feature/log_mel_spectrograms"
CHECKPOINT = "data/06_models/checkpoints/fold_0/seed_0/audio/last.ckpt"  # the one cell
PHASE = ("--pipelines=audio",)
TRAINING_ONLY = ("--pipelines=audio", "--namespaces=audio")  # on the prepared data
FINAL_METRICS = ("test_accuracy", "test_macro_f1", "test_uar", "epochs")


def _wait_for(cli, condition, process, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            _, log = cli.finish(process)
            pytest.fail(f"the run ended before {what}:\n{log[-4000:]}")
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(POLL_S)


def _partial_shards(project: Path) -> list[Path]:
    return list((project / STORE).glob("*/*.partial-*/shard-*.npy"))


def _latest(project: Path, dataset: str) -> Path:
    folder = project / dataset
    return sorted(folder.iterdir())[-1] / folder.name


def _metrics(project: Path) -> dict[str, Any]:
    return json.loads(_latest(project, "data/08_reporting/audio/metrics.json").read_text())


def _history(project: Path) -> pd.DataFrame:
    history = pd.read_parquet(
        _latest(project, "data/07_model_output/audio/training_history.parquet")
    )
    return history.drop(columns=["train_seconds"])


@pytest.fixture(scope="module")
def project(tiny_project) -> Path:
    """Small shards (a few clips each) and one extraction worker, so that extraction takes long
    enough to be killed midway; small batches and a fixed epoch count for training."""
    return tiny_project(
        "faults",
        catalog={
            "log_mel_spectrograms": {
                "type": "avshared.datasets.feature_store.FeatureStoreDataset",
                "filepath": STORE,
                "versioned": True,
                "shard_size_mb": 0.1,
            }
        },
        parameters_features={"features": {"extraction": {"workers": 1}}},
        parameters_training={
            "training": {
                "defaults": {
                    "trainer": {"max_epochs": 4, "min_epochs": 4},
                    "data": {"batch_size": 4},
                }
            }
        },
    )


@pytest.fixture(scope="module")
def extraction_killed(cli, project) -> dict[str, Any]:
    """kill -9 of `kedro run --pipelines=audio` while it writes the spectrogram store, then the
    same command again (the reference run)."""
    killed = cli.start(project, *PHASE)
    _wait_for(cli, lambda: _partial_shards(project), killed, "a shard of the spectrogram store")
    cli.kill(killed)
    left = _partial_shards(project)
    try:
        FeatureStoreDataset(filepath=str(project / STORE), version=Version(None, None)).load()
        loaded_after_kill = True
    except DatasetError:
        loaded_after_kill = False
    log = cli.run(project, *PHASE)
    return {"left": left, "loaded_after_kill": loaded_after_kill, "log": log}


def test_a_killed_extraction_is_never_read_and_the_next_run_completes_it(
    project, extraction_killed
):
    assert extraction_killed["left"], "the kill must strike after a shard was written"
    assert not extraction_killed["loaded_after_kill"], "a half-written store was loaded"

    assert not list(project.rglob("*.partial-*")), "the next run must remove what the kill left"
    versions = list((project / STORE).iterdir())
    assert len(versions) == 1, versions  # the killed run's version folder is gone too
    store = FeatureStoreDataset(filepath=str(project / STORE), version=Version(None, None)).load()
    manifest = pd.read_parquet(project / "data/02_intermediate/clip_manifest.parquet")
    assert sorted(store.clip_ids) == sorted(manifest["clip_id"])


@pytest.fixture(scope="module")
def training_killed(cli, project, extraction_killed) -> dict[str, Any]:
    """kill -9 of the phase's training after its first checkpoint, then the same command again;
    while the killed run held the project, a second run was started in the same directory."""
    reference = {"metrics": _metrics(project), "history": _history(project)}
    killed = cli.start(project, *TRAINING_ONLY)
    lock = project / LOCK_FILE
    _wait_for(
        cli,
        lambda: lock.is_file() and f'"pid": {killed.pid}' in lock.read_text(),
        killed,
        "the run lock",
    )
    os.kill(killed.pid, signal.SIGSTOP)  # hold it mid-run while the second run starts
    try:
        second_code, second_log = cli.finish(cli.start(project, "--pipelines=split"))
    finally:
        os.kill(killed.pid, signal.SIGCONT)
    _wait_for(cli, (project / CHECKPOINT).is_file, killed, "the first checkpoint")
    cli.kill(killed)
    checkpoint_left = (project / CHECKPOINT).is_file()
    log = cli.run(project, *TRAINING_ONLY)
    return {
        "reference": reference,
        "killed_pid": killed.pid,
        "checkpoint_left": checkpoint_left,
        "second": (second_code, second_log),
        "log": log,
    }


def test_killed_training_resumes_and_ends_as_the_uninterrupted_run(project, training_killed):
    assert training_killed["checkpoint_left"], "the kill must leave a resume checkpoint"
    assert "Resuming the interrupted run from" in training_killed["log"]

    reference = training_killed["reference"]
    resumed = _metrics(project)
    assert {m: resumed[m] for m in FINAL_METRICS} == {
        m: reference["metrics"][m] for m in FINAL_METRICS
    }
    pd.testing.assert_frame_equal(_history(project), reference["history"])
    assert not (project / CHECKPOINT).parent.exists(), "a finished run must not resume the next"


def test_a_second_run_in_the_same_directory_is_refused_naming_the_first(training_killed):
    code, log = training_killed["second"]
    assert code != 0
    assert "another `kedro run` is running in" in log
    assert f"process {training_killed['killed_pid']}:" in log
    assert "Running node" not in log  # refused before any node could read a half-written file


@pytest.fixture(scope="module")
def server_down_project(cli, tiny_project) -> tuple[Path, str]:
    uri = f"http://127.0.0.1:{cli.free_port()}"  # nothing listens there
    return tiny_project("server_down", mlflow={"server": {"mlflow_tracking_uri": uri}}), uri


# A hang guard, not a speed test (Kedro's start-up included; MLflow's own retries would take
# minutes): the timeout catches a run that waits on the server instead of stopping.
@pytest.mark.timeout(600)
def test_a_tracking_server_that_is_down_fails_the_run_at_once(cli, server_down_project):
    project, uri = server_down_project
    code, log = cli.finish(cli.start(project, "--pipelines=ingestion"))

    assert code != 0
    assert f"MLflow tracking server {uri} is unreachable" in log
    assert FALLBACK_ENV in log  # says how to record locally instead
    assert "Running node" not in log


def test_under_the_fallback_setting_the_run_records_locally_and_says_so(cli, server_down_project):
    project, uri = server_down_project
    log = cli.run(project, "--pipelines=ingestion", **{FALLBACK_ENV: "local"})

    assert f"MLflow tracking server {uri} is unreachable" in log
    assert "sqlite:///mlflow.db" in log
    with sqlite3.connect(project / "mlflow.db") as store:
        statuses = [row[0] for row in store.execute("SELECT status FROM runs")]
    assert statuses == ["FINISHED"]
