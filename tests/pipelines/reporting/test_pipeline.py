"""The reporting pipeline end to end, with the project's catalog entries and parameters, under an
MLflow run as kedro-mlflow opens one during `kedro run`: every report is written, versioned, and
logged to the run by its catalog entry."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from mlflow.tracking import MlflowClient

from avshared.crema_d import DEMO_MARKER_FILE
from avshared.evaluation.ensembles import COMBINED_PHASES, ENSEMBLE_ROWS
from avshared.evaluation.systems import DEMO_LABEL
from avshared.pipelines.reporting import create_pipeline, nodes
from avshared.pipelines.reporting.pipeline import PHASES
from avshared.settings import CONFIG_LOADER_ARGS

PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: Datasets of other pipelines that reporting reads.
UPSTREAM = (
    {"split", "clip_manifest", "crowd_labels"}
    | {
        f"{phase}.{name}"
        for phase in PHASES
        for name in ("test_predictions", "metrics", "training_history")
    }
    | {f"{phase}.validation_predictions" for phase in COMBINED_PHASES}
)
#: What reporting writes to data/08_reporting, every one versioned.
REPORTS = {
    "comparison_table",
    "comparison_table_markdown",
    "comparison_scores",
    "paired_comparisons",
    "fold_scores",
    "per_emotion_scores",
    "per_level_scores",
    "confusion_matrices",
    "training_histories",
    "training_budgets",
    "confusion_matrix_figures",
    "per_emotion_f1_figure",
    "training_curves_figure",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def project_config() -> OmegaConfigLoader:
    return OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)


@pytest.fixture
def upstream(
    *,
    split,
    clip_manifest,
    crowd_labels,
    phase_predictions,
    validation_predictions,
    phase_metrics,
    phase_histories,
) -> dict[str, object]:
    """What the other pipelines hand to reporting, by catalog name."""
    datasets = {"split": split, "clip_manifest": clip_manifest, "crowd_labels": crowd_labels}
    for phase in PHASES:
        datasets[f"{phase}.test_predictions"] = phase_predictions[phase]
        datasets[f"{phase}.metrics"] = {**phase_metrics[phase], "demo": False}
        datasets[f"{phase}.training_history"] = phase_histories[phase]
    for phase, predictions in validation_predictions.items():
        datasets[f"{phase}.validation_predictions"] = predictions
    return datasets


@pytest.fixture
def tracking_uri(tmp_path):
    """A throw-away MLflow store (runs and artifacts under tmp_path), restored afterwards."""
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


def _experiment_in(tmp_path: Path) -> str:
    """An experiment whose artifacts go under tmp_path (the default one would use ./mlruns)."""
    return mlflow.create_experiment("reporting", artifact_location=(tmp_path / "mlruns").as_uri())


def _only_file(folder: Path, name: str) -> Path:
    """The one version of a versioned dataset: <folder>/<version>/<name>."""
    versions = list(folder.iterdir())
    assert len(versions) == 1, versions
    return versions[0] / name


def test_pipeline_reads_the_training_contract_and_writes_every_report(project_config) -> None:
    pipeline = create_pipeline()
    free_inputs = {name for name in pipeline.inputs() if not name.startswith("params:")}
    assert free_inputs == UPSTREAM
    assert pipeline.all_outputs() >= REPORTS
    catalog = project_config["catalog"]
    for name in REPORTS:
        assert catalog[name]["versioned"] is True, name
        assert catalog[name]["artifact_path"] == "reporting", name
        assert catalog[name]["dataset"]["filepath"].startswith("data/08_reporting/"), name


def test_reporting_pipeline_writes_labelled_reports_and_logs_them_to_mlflow(
    project_config, tmp_path, tracking_uri, upstream, reporting_params
) -> None:
    entries = {}
    for name in REPORTS:
        entry = project_config["catalog"][name]
        entries[name] = {**entry, "dataset": {**entry["dataset"], "filepath": str(tmp_path / name)}}
    catalog = DataCatalog.from_config(entries, save_version="2026-01-01T00.00.00.000Z")
    demo_root = tmp_path / "crema_d_demo"
    demo_root.mkdir()
    (demo_root / DEMO_MARKER_FILE).write_text("")
    catalog["params:crema_d_root"] = str(demo_root)
    for key, value in reporting_params.items():
        catalog[f"params:reporting.{key}"] = value
    # Kedro adds every nested parameter too.
    catalog["params:reporting.unimodal_ensemble.weight_step"] = reporting_params[
        "unimodal_ensemble"
    ]["weight_step"]
    for name, value in upstream.items():
        catalog[name] = value

    with mlflow.start_run(experiment_id=_experiment_in(tmp_path), run_name="kedro run") as run:
        SequentialRunner().run(create_pipeline(), catalog)

    table = pd.read_csv(_only_file(tmp_path / "comparison_table", "comparison_table"))
    systems = set(table["system"])
    assert {"video", "audio", "bimodal", "baseline", "bimodal (audio only)"} <= systems
    assert set(ENSEMBLE_ROWS) <= systems
    parameters = table.set_index("system")["parameters"]
    assert parameters["unimodal_ensemble"] == f"{1000 + 1100:,}"  # the video and audio models
    assert {"chance (uniform)", "human raters (voice)", "crowd majority (audiovisual)"} <= systems
    assert not table[["accuracy", "macro_f1", "weighted_f1", "uar"]].isna().any().any()

    markdown = _only_file(tmp_path / "comparison_table_markdown", "comparison_table_markdown")
    # The marker file in the root labels the report, though the metrics say nothing of demo data.
    assert DEMO_LABEL in markdown.read_text().splitlines()[0]

    figures = [
        _only_file(tmp_path / "confusion_matrix_figures", "confusion_matrix_figures") / f"{p}.png"
        for p in (*PHASES, *ENSEMBLE_ROWS)
    ]
    figures += [
        _only_file(tmp_path / "per_emotion_f1_figure", "per_emotion_f1_figure"),
        _only_file(tmp_path / "training_curves_figure", "training_curves_figure"),
    ]
    for figure in figures:
        assert figure.read_bytes().startswith(PNG_MAGIC), figure

    paired = pd.read_csv(_only_file(tmp_path / "paired_comparisons", "paired_comparisons"))
    assert {"bimodal", "video"} <= set(paired["system_a"]) | set(paired["system_b"])
    assert set(paired["verdict"]) <= {"better", "worse", "no detectable difference at 95%"}
    assert "## Paired comparisons" in markdown.read_text()

    # Each report's catalog entry logged the very file it wrote to the run.
    client = MlflowClient(tracking_uri)
    logged = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "reporting")}
    assert logged == {f"reporting/{name}" for name in REPORTS}
    downloads = tmp_path / "downloaded"
    downloads.mkdir()
    csv = client.download_artifacts(run.info.run_id, "reporting/comparison_table", str(downloads))
    assert (
        Path(csv).read_bytes()
        == _only_file(tmp_path / "comparison_table", "comparison_table").read_bytes()
    )
    figures = {
        a.path for a in client.list_artifacts(run.info.run_id, "reporting/confusion_matrix_figures")
    }
    assert figures == {
        f"reporting/confusion_matrix_figures/{row}.png" for row in (*PHASES, *ENSEMBLE_ROWS)
    }


def test_no_reporting_node_calls_mlflow() -> None:
    """Tracking belongs to the catalog (kedro-mlflow datasets) and hooks, not to node code."""
    from avshared.evaluation import figures, grid, scoring, statistics, systems, tables

    for module in (nodes, figures, grid, scoring, statistics, systems, tables):
        source = inspect.getsource(module)
        assert not re.search(r"^\s*(import|from) mlflow|\bmlflow\.", source, re.MULTILINE)
