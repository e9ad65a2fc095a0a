"""A team's tracking server (MLflow on PostgreSQL, artifacts through the server, logins checked):
two researchers' projects run `kedro run` against it at the same time, with their credentials in
conf/local/credentials.yml as docs/tracking.md says, and the MLflow UI compares one run's phases
in headless Chromium."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

PHASES = ("video", "audio", "bimodal", "baseline")
EPOCH_METRICS = ("train_loss", "val_loss", "val_accuracy")


def _team_project(
    tiny_project, server, name: str, password: str | None = None, **conf: dict[str, Any]
) -> Path:
    """A project set up as docs/tracking.md says: the server in conf/local/mlflow.yml, the login
    in conf/local/credentials.yml."""
    return tiny_project(
        name,
        mlflow={
            "server": {"mlflow_tracking_uri": server.url, "credentials": "team_tracking_server"}
        },
        credentials={
            "team_tracking_server": {
                "MLFLOW_TRACKING_USERNAME": server.username,
                "MLFLOW_TRACKING_PASSWORD": password or server.password,
            }
        },
        **conf,
    )


@pytest.fixture(scope="module")
def client(tracking_server, monkeypatch_module) -> mlflow.MlflowClient:
    monkeypatch_module.setenv("MLFLOW_TRACKING_USERNAME", tracking_server.username)
    monkeypatch_module.setenv("MLFLOW_TRACKING_PASSWORD", tracking_server.password)
    return mlflow.MlflowClient(tracking_server.url)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def team_runs(cli, tiny_project, tracking_server, client) -> dict[str, dict[str, Any]]:
    """Two projects' runs started at once against the server: Ana's `kedro run` (every phase and
    the report), Ben's audio phase; per project: its folder, phases and their MLflow runs. Small
    face crops keep the video features cheap."""
    features = {"features": {"video": {"size": 32, "num_frames": 4}}}
    projects = {
        name: _team_project(tiny_project, tracking_server, name, parameters_features=features)
        for name in ("ana", "ben")
    }
    started = {
        "ana": cli.start(projects["ana"]),
        "ben": cli.start(projects["ben"], "--pipelines=audio"),
    }
    for name, process in started.items():
        code, log = cli.finish(process)
        assert code == 0, f"{name}'s kedro run failed ({code}):\n{log[-6000:]}"
    experiment = client.get_experiment_by_name("avshared")
    runs: dict[str, dict[str, Any]] = {}
    for name, phases in (("ana", PHASES), ("ben", ("audio",))):
        project = projects[name]
        metrics = {
            phase: json.loads(
                _latest(project, f"data/08_reporting/{phase}/metrics.json").read_text()
            )
            for phase in phases
        }
        runs[name] = {
            "project": project,
            "experiment": experiment.experiment_id,
            "metrics": metrics,
            "runs": {phase: client.get_run(metrics[phase]["mlflow_run_id"]) for phase in phases},
        }
    return runs


def _latest(project: Path, dataset: str) -> Path:
    folder = project / dataset
    return sorted(folder.iterdir())[-1] / folder.name


def test_kedro_run_records_every_phase_on_the_team_server(team_runs, client, tracking_server):
    for name, team_run in team_runs.items():
        parents = set()
        for phase, run in team_run["runs"].items():
            assert run.data.tags["phase"] == phase, name
            assert run.data.metrics["test_accuracy"] == pytest.approx(
                team_run["metrics"][phase]["test_accuracy"]
            )
            parents.add(run.data.tags["mlflow.parentRunId"])
            # Artifacts go through the server's proxy into its own folder, not the project's.
            assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
            assert client.list_artifacts(run.info.run_id), f"{name} {phase}: no artifacts"
        assert len(parents) == 1, f"{name}: the phases belong to one `kedro run`"
        assert not (team_run["project"] / "mlruns").exists()
    assert any(tracking_server.artifacts.rglob("*.png"))


def test_two_runs_at_once_keep_every_epoch_row(team_runs, client):
    run_ids = [run.info.run_id for team in team_runs.values() for run in team["runs"].values()]
    assert len(set(run_ids)) == len(PHASES) + 1
    for name, team_run in team_runs.items():
        for phase, run in team_run["runs"].items():
            history = pd.read_parquet(
                _latest(
                    team_run["project"], f"data/07_model_output/{phase}/training_history.parquet"
                )
            )
            for metric in EPOCH_METRICS:
                logged = sorted(
                    client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step
                )
                assert [m.value for m in logged] == pytest.approx(
                    history[metric].tolist(), rel=1e-6
                ), f"{name} {phase} {metric}"


def test_a_wrong_password_is_refused(cli, tiny_project, tracking_server):
    project = _team_project(tiny_project, tracking_server, "intruder", password="not-the-password")
    code, log = cli.finish(cli.start(project, "--pipelines=ingestion"))
    assert code != 0
    assert "401" in log or "Unauthorized" in log or "credentials" in log.lower()
    assert "Running node" not in log


# ---------------------------------------------------------------- the MLflow UI in Chromium

RENDER_MS = 60_000


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def _metric_values(page_text: str) -> list[float]:
    """The numbers of the compare view's Metrics section (names first, then values by metric)."""
    section = page_text.split("\nMetrics\n", 1)[1].split("\nArtifacts", 1)[0]
    return [float(line) for line in map(str.strip, section.splitlines()) if NUMBER.fullmatch(line)]


@pytest.mark.browser
def test_compare_view_shows_each_phase_test_accuracy(team_runs, tracking_server, browser, tmp_path):
    team_run = team_runs["ana"]
    run_ids = [team_run["runs"][phase].info.run_id for phase in PHASES]
    query = urllib.parse.urlencode(
        {"runs": json.dumps(run_ids), "experiments": json.dumps([team_run["experiment"]])}
    )
    context = browser.new_context(
        viewport={"width": 1600, "height": 1000},
        http_credentials={
            "username": tracking_server.username,
            "password": tracking_server.password,
        },
    )
    page = context.new_page()
    page.set_default_timeout(RENDER_MS)
    try:
        page.goto(f"{tracking_server.url}/#/compare-runs?{query}")
        page.get_by_text("test_accuracy", exact=True).first.wait_for()
        page.screenshot(path=tmp_path / "compare.png", full_page=True)
        names = page.get_by_role("row").filter(has_text="Run Name:").first.inner_text()
        assert names.split()[2:] == list(PHASES), names  # one column per phase run
        shown = _metric_values(page.inner_text("body"))
        for phase in PHASES:
            expected = team_run["metrics"][phase]["test_accuracy"]
            # The view rounds to 3 decimals.
            assert any(abs(value - expected) < 5e-4 for value in shown), (phase, expected, shown)
    finally:
        context.close()
