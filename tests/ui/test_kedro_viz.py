"""`kedro viz build`: the static Kedro-Viz site of the project shows the three training phases, each
under its namespace, and the reporting pipeline reading their predictions; in the browser, the
catalog's layers as bands and a dataset's preview (the analysis's attention-by-layer figure)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog

from avshared.analysis.figures import DEMO_LABEL, shares_by_layer_figure
from avshared.kedro_mlflow_adapter import bind_to_run
from avshared.pipelines.reporting import create_pipeline as create_reporting_pipeline
from avshared.settings import CONFIG_LOADER_ARGS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: The phases a user must find in Kedro-Viz, each a namespace (modular pipeline) of its own.
PHASES = ("video", "audio", "bimodal")
#: Nodes every phase's namespace must hold (the training template's core steps).
PHASE_NODES = ("train_cells", "evaluate_cells", "gather_cells")
#: The dataset whose preview the browser test opens, and the layers the analysis pipeline spans.
PREVIEWED = "bimodal.attention_by_layer"
ANALYSIS_LAYERS = {"feature", "primary", "model_input", "models", "model_output", "reporting"}
RENDER_MS = 60_000

# `kedro viz build` loads the whole project in a subprocess: 20-45 s on 2 cores.
pytestmark = pytest.mark.slow


def _save_attention_figure(project: Path) -> None:
    """What an analysis run leaves for ``PREVIEWED``, written through its catalog entry (MLflow
    logging off), so that the build has a file to preview."""
    config = OmegaConfigLoader(str(project / "conf"), **CONFIG_LOADER_ARGS)["catalog"]
    entry = config["{phase}.attention_by_layer"]
    filepath = str(project / entry["dataset"]["filepath"])
    entry = entry | {"dataset": entry["dataset"] | {"filepath": filepath}}
    catalog = DataCatalog.from_config({"{phase}.attention_by_layer": entry})
    dataset = catalog.get(PREVIEWED)
    bind_to_run(dataset, None)
    by_layer = pd.DataFrame(
        {
            "layer": [0, 1, 2, 3],
            "audio_to_video": [0.10, 0.18, 0.26, 0.31],
            "video_to_audio": [0.12, 0.20, 0.24, 0.35],
            "uniform_video": [0.57] * 4,
            "uniform_audio": [0.42] * 4,
        }
    )
    dataset.save(shares_by_layer_figure(by_layer, demo=True, model="bimodal"))


@pytest.fixture(scope="module")
def viz_build(tmp_path_factory) -> Path:
    """The site (build/) of `kedro viz build --include-previews` run in a copy of the project
    holding one analysis figure."""
    project = tmp_path_factory.mktemp("viz_project")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    shutil.copytree(PROJECT_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.pyc"))
    # conf/base only: conf/local holds one machine's settings and is never in git.
    shutil.copytree(PROJECT_ROOT / "conf" / "base", project / "conf" / "base")
    (project / "conf" / "local").mkdir()
    _save_attention_figure(project)
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build", "--include-previews"],
        cwd=project,
        env=os.environ | {"KEDRO_DISABLE_TELEMETRY": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    graph = project / "build" / "api" / "main"
    assert result.returncode == 0 and graph.is_file(), (
        f"`kedro viz build` failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}"
    )
    return project / "build"


@pytest.fixture(scope="module")
def viz_graph(viz_build) -> dict:
    """The graph JSON (build/api/main) of the build."""
    return json.loads((viz_build / "api" / "main").read_text())


def _nodes(graph: dict, kind: str) -> dict[str, dict]:
    return {
        node.get("full_name", node["name"]): node for node in graph["nodes"] if node["type"] == kind
    }


@pytest.mark.parametrize("phase", PHASES)
def test_each_phase_is_a_namespace_with_its_training_nodes(viz_graph, phase) -> None:
    assert phase in viz_graph["modular_pipelines"], sorted(viz_graph["modular_pipelines"])
    tasks = _nodes(viz_graph, "task")
    for name in PHASE_NODES:
        node = tasks.get(f"{phase}.{name}")
        assert node is not None, f"no node {phase}.{name} in {sorted(tasks)}"
        assert node["modular_pipelines"] == [phase]
        assert {phase, "__default__"} <= set(node["pipelines"])
    registered = {pipeline["id"] for pipeline in viz_graph["pipelines"]}
    assert phase in registered


def test_reporting_is_in_the_default_pipeline_and_reads_every_phase(viz_graph) -> None:
    tasks = _nodes(viz_graph, "task")
    for node in create_reporting_pipeline().nodes:
        assert node.name in tasks, f"reporting node {node.name} missing from Kedro-Viz"
        assert {"reporting", "__default__"} <= set(tasks[node.name]["pipelines"])

    datasets = _nodes(viz_graph, "data")
    gather = tasks["gather_model_predictions"]["id"]
    edges = {(edge["source"], edge["target"]) for edge in viz_graph["edges"]}
    for phase in (*PHASES, "baseline"):
        predictions = datasets[f"{phase}.test_predictions"]
        assert predictions["modular_pipelines"] == [phase]
        assert (predictions["id"], gather) in edges, f"{phase}.test_predictions not read"


@pytest.fixture(scope="module")
def viz_site(viz_build, tmp_path_factory, cli) -> Iterator[str]:
    """The built site served on a free loopback port (stopped afterwards)."""
    port = cli.free_port()
    log = tmp_path_factory.mktemp("viz_server") / "http_server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "-b",
                "127.0.0.1",
                "-d",
                str(viz_build),
                str(port),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # until it listens
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the site's server did not answer:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.browser
def test_the_layers_are_drawn_as_bands_and_a_figure_previews(
    viz_graph, viz_site, browser, tmp_path
) -> None:
    previewed = _nodes(viz_graph, "data")[PREVIEWED]
    assert previewed["layer"] == "reporting"
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(RENDER_MS)
    # The analysis pipeline, every namespace expanded, the figure's dataset selected.
    page.goto(f"{viz_site}/?pid=analysis&expandAllPipelines=true&sid={previewed['id']}")

    preview = page.locator("img.pipeline-metadata__plot-image")
    preview.wait_for()
    assert preview.get_attribute("src").startswith("data:image/png;base64,")
    assert preview.evaluate("image => image.naturalWidth") > 100  # the PNG decoded
    names = page.locator("li.pipeline-layer-name")
    names.first.wait_for()
    assert set(names.all_inner_texts()) == ANALYSIS_LAYERS
    assert page.locator("rect.pipeline-layer").count() == len(ANALYSIS_LAYERS)
    hint = page.locator(".feature-hints__close")  # the new-feature tour, over the preview
    if hint.is_visible():
        hint.click()
    # Room for the graph, zoomed out so that the bands show beside the preview.
    page.get_by_role("button", name="Hide menu").click()
    for _ in range(4):
        page.get_by_role("button", name="Zoom out").click()
    page.wait_for_timeout(1000)  # the zoom's transition
    screenshot = tmp_path / "kedro_viz_layers_and_preview.png"
    page.screenshot(path=screenshot)
    print(f"screenshot: {screenshot} ({DEMO_LABEL} figure of {PREVIEWED})")
    page.close()
