"""`kedro viz build`: the static Kedro-Viz site of the project shows the three training phases, each
under its namespace, and the reporting pipeline reading their predictions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avshared.pipelines.reporting import create_pipeline as create_reporting_pipeline

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: The phases a user must find in Kedro-Viz, each a namespace (modular pipeline) of its own.
PHASES = ("video", "audio", "bimodal")
#: Nodes every phase's namespace must hold (the training template's core steps).
PHASE_NODES = ("train_cells", "evaluate_cells", "gather_cells")

# `kedro viz build` loads the whole project in a subprocess: 20-45 s on 2 cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def viz_graph(tmp_path_factory) -> dict:
    """The graph JSON (build/api/main) of `kedro viz build` run in a copy of the project."""
    project = tmp_path_factory.mktemp("viz_project")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    shutil.copytree(PROJECT_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.pyc"))
    # conf/base only: conf/local holds one machine's settings and is never in git.
    shutil.copytree(PROJECT_ROOT / "conf" / "base", project / "conf" / "base")
    (project / "conf" / "local").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
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
    return json.loads(graph.read_text())


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
