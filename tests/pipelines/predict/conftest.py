"""One tiny trained project shared by the prediction tests: a small demo corpus, the bimodal phase
trained with the tiny model for two epochs, its model logged and registered in MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: Eight actors (four per sex: two train, one val, one test each) and one sentence: 48 clips.
ACTORS = [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008]


@dataclass(frozen=True)
class TrainedProject:
    path: Path
    env: dict[str, str]
    crema_d_root: Path

    def kedro(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "kedro", "run", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"kedro run {args} failed:\n{result.stderr[-6000:]}"
        return result

    def latest(self, dataset: str) -> Path:
        folder = self.path / dataset
        return sorted(folder.iterdir())[-1] / folder.name

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.path / 'mlflow.db'}"


def _tiny_conf(local: Path) -> None:
    demo = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_demo_data.yml").read_text())
    demo["demo_data"] |= {"actors": ACTORS, "sentences": ["DFA"], "faults": {}}
    training = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())
    defaults = training["training"]["defaults"]
    defaults["model"]["preset"] = "tiny"
    defaults["trainer"] |= {"max_epochs": 2, "min_epochs": 1, "progress_bar": False}
    for name, params in (("demo_data", demo), ("training", training)):
        (local / f"parameters_{name}.yml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory, scratch_project) -> TrainedProject:
    """A scratch project with the demo corpus and a trained, registered bimodal phase."""
    project = scratch_project(tmp_path_factory.mktemp("predict_project"))
    _tiny_conf(project / "conf" / "local")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    trained = TrainedProject(project, env, project / "data/01_raw/crema_d_demo")
    trained.kedro("--pipelines=demo_data")
    trained.kedro("--pipelines=bimodal")
    return trained
