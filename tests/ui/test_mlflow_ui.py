"""The MLflow UI as a user sees it after `kedro run`: the project's tracking store (one parent run,
one nested run per phase with the shared metric names and tags), served by `mlflow server` and
opened in headless Chromium."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import mlflow
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHASES = ("video", "audio", "bimodal", "baseline")
RENDER_MS = 60_000


@pytest.fixture(scope="module")
def tracking_store(demo_project_run) -> dict[str, object]:
    """The store that `kedro run` wrote: its experiment, the parent run and each phase's run."""
    client = mlflow.MlflowClient(demo_project_run.tracking_uri)
    experiment = client.get_experiment_by_name("avshared")
    phase_runs = client.search_runs([experiment.experiment_id], filter_string="tags.phase != ''")
    runs = {run.data.tags["phase"]: run for run in phase_runs}
    parent = client.get_run(phase_runs[0].data.tags["mlflow.parentRunId"])
    return {
        "uri": demo_project_run.tracking_uri,
        "experiment": experiment.experiment_id,
        "parent": parent.info.run_name,
        "runs": {phase: run.info.run_id for phase, run in runs.items()},
        "test_accuracy": {phase: run.data.metrics["test_accuracy"] for phase, run in runs.items()},
        "matching_runs": len(client.search_runs([experiment.experiment_id])),
    }


@pytest.fixture(scope="module")
def mlflow_server(tracking_store, tmp_path_factory, cli) -> Iterator[str]:
    """`mlflow server` on a free loopback port, in its own process group (stopped afterwards)."""
    port = cli.free_port()
    log = tmp_path_factory.mktemp("server") / "mlflow_server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                str(tracking_store["uri"]),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=cli.env(),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        cli.wait_until_healthy(url, server, log)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(RENDER_MS)
    yield page
    page.close()


def _route(server: str, route: str) -> str:
    return f"{server}/#/experiments/{route}?workflowType=machine_learning"


def test_runs_page_lists_the_kedro_run_and_every_phase(
    mlflow_server, tracking_store, page, tmp_path
) -> None:
    page.goto(_route(mlflow_server, f"{tracking_store['experiment']}/runs"))
    parent = page.get_by_role("gridcell").filter(has_text=tracking_store["parent"])
    parent.wait_for()
    # Nested runs are folded under their parent run: unfold it like a user would.
    parent.get_by_role("button").first.click()
    for phase in PHASES:
        page.get_by_role("link", name=phase, exact=True).wait_for()
    page.get_by_text(f"{tracking_store['matching_runs']} matching runs").wait_for()
    page.screenshot(path=tmp_path / "mlflow_runs.png")


@pytest.mark.parametrize("phase", PHASES)
def test_phase_run_page_shows_its_test_accuracy(
    mlflow_server, tracking_store, page, tmp_path, phase
) -> None:
    run_id = tracking_store["runs"][phase]
    page.goto(_route(mlflow_server, f"{tracking_store['experiment']}/runs/{run_id}"))
    page.get_by_role("heading", name=phase, exact=True).wait_for()
    rows = page.get_by_role("row").filter(has_text="test_accuracy")
    rows.first.wait_for()
    # test_accuracy itself, not test_accuracy_audio_only and the like.
    shown = {
        match[1]: match[2]
        for row in rows.all()
        if (match := re.match(r"(test_accuracy\S*)\s+([-0-9.e]+)", row.inner_text().strip()))
    }
    assert float(shown["test_accuracy"]) == pytest.approx(
        tracking_store["test_accuracy"][phase], abs=5e-4
    ), shown
    row = rows.filter(has_text=shown["test_accuracy"]).first
    row.scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / f"mlflow_{phase}.png")
