"""One tiny trained project shared by the prediction tests: a small demo corpus, the bimodal phase
trained with the tiny model for two epochs, its model logged and registered in MLflow."""

from __future__ import annotations

from collections.abc import Callable
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
    crema_d_root: Path
    run: Callable[..., str]  # the `cli` fixture's run

    def kedro(self, *args: str) -> str:
        """`kedro run <args>` in the project; its log."""
        return self.run(self.path, *args)

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
def trained_project(tmp_path_factory, scratch_project, cli) -> TrainedProject:
    """A scratch project with the demo corpus and a trained, registered bimodal phase."""
    project = scratch_project(tmp_path_factory.mktemp("predict_project"))
    _tiny_conf(project / "conf" / "local")
    trained = TrainedProject(project, project / "data/01_raw/crema_d_demo", cli.run)
    trained.kedro("--pipelines=demo_data")
    trained.kedro("--pipelines=bimodal")
    return trained
