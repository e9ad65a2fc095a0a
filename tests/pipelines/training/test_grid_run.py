"""The grid of a phase run one cell per `kedro run`, as docs/grid.md runs it, in a scratch project:
the data prepared once, two cells trained side by side by two concurrent `kedro run`s, gathered;
the report refuses the phase while its third cell is missing, naming it, and takes it once the
cell is trained and gathered again."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from avshared.evaluation.systems import collect_phase_metrics

#: 8 actors x 1 sentence x 6 emotions: enough for an actor split, small enough to render fast.
TINY_CORPUS = {"actors": list(range(1001, 1009)), "sentences": ["DFA"], "faults": {}}
SEEDS = [11, 12, 13]


def _cell(fold: int, seed: int) -> str:
    return f"--params=training.only_fold={fold},training.only_seed={seed}"


def _latest(project: Path, dataset: str) -> Path:
    folder = project / dataset
    return sorted(folder.iterdir())[-1] / folder.name


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_cells_trained_side_by_side_are_gathered_and_a_missing_one_is_refused(
    tmp_path, scratch_project, cli
):
    project = scratch_project(tmp_path)
    (project / "conf" / "local" / "parameters_grid.yml").write_text(
        yaml.safe_dump(
            {
                "demo_data": TINY_CORPUS,
                "training": {
                    "seeds": SEEDS,
                    "defaults": {
                        "model": {"preset": "tiny"},
                        "trainer": {"max_epochs": 1, "min_epochs": 1, "progress_bar": False},
                    },
                },
            }
        )
    )
    cli.run(project, "--pipelines=demo_data")
    cli.run(project, "--pipelines=preparation")

    # Two cells of the audio phase at once: each run locks its own cell only.
    runs = [cli.start(project, "--pipelines=audio", "--tags=cell", _cell(0, s)) for s in (0, 1)]
    for run in runs:
        code, log = cli.finish(run)
        assert code == 0, log[-6000:]
        assert "Cell run: locked audio.fold_0.seed_" in log
    cells = project / "data/06_models/audio/cells/model_weights"
    assert sorted(path.name for path in cells.iterdir()) == [
        "fold_0.seed_0.pt",
        "fold_0.seed_1.pt",
    ]
    assert not (project / "data/06_models/checkpoints/fold_0/seed_0/audio").exists()  # finished

    cli.run(project, "--pipelines=audio", "--tags=gather")
    metrics = json.loads(_latest(project, "data/08_reporting/audio/metrics.json").read_text())
    assert metrics["cells"]["missing"] == ["fold_0.seed_2"]
    assert metrics["cells"]["present"] == ["fold_0.seed_0", "fold_0.seed_1"]
    with pytest.raises(ValueError, match=r"audio: missing fold_0\.seed_2") as refused:
        collect_phase_metrics(audio=metrics)
    assert (
        "kedro run --pipelines=audio --tags=cell "
        "--params=training.only_fold=0,training.only_seed=2" in str(refused.value)
    )

    cli.run(project, "--pipelines=audio", "--tags=cell", _cell(0, 2))
    cli.run(project, "--pipelines=audio", "--tags=gather")
    metrics = json.loads(_latest(project, "data/08_reporting/audio/metrics.json").read_text())
    assert collect_phase_metrics(audio=metrics) == {"audio": metrics}
    assert (metrics["seeds"], len(metrics["per_seed"])) == (3, 3)
    predictions = pd.read_parquet(
        _latest(project, "data/07_model_output/audio/test_predictions.parquet")
    )
    assert sorted(predictions["seed"].unique()) == [0, 1, 2]
    assert predictions.groupby("seed")["clip_id"].nunique().nunique() == 1  # every clip, each seed

    # Each cell trained in an MLflow run of its own, tagged with its fold and seed.
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    cell_runs = [run for run in runs if "seed" in run.data.tags and run.data.tags.get("fold")]
    assert sorted(run.data.tags["seed"] for run in cell_runs) == ["0", "1", "2"]
    assert {run.data.tags["seed_value"] for run in cell_runs} == {str(s) for s in SEEDS}
