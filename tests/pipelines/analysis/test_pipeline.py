"""The analysis pipeline's wiring (which phases, which nodes, what it reads and writes), and a run
of it with the project's catalog entries under an MLflow run as `kedro run` makes one: every output
is written, versioned, and logged into its phase's run (or, beside the report, the parent run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from avshared.hooks.tracking import PhaseRunsHook
from avshared.pipelines.analysis import analysed_phases, create_pipeline
from avshared.pipelines.analysis.pipeline import SHARED_INPUTS, SHARED_VS_SEPARATE
from avshared.settings import CONFIG_LOADER_ARGS
from avshared.training.phases import DEFAULT_PHASES, PHASE_MODALITIES

PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: The model kinds conf/base/parameters_training.yml gives the default phases.
DEFAULT_KINDS = {"video": "shared", "audio": "shared", "bimodal": "shared"} | {
    "baseline": "separate",
    "baseline_matched": "separate",
}
ALIGNMENT_OUTPUTS = {
    "alignment",
    "embedding_map",
    "embedding_map_figure",
    "disagreement_correlation",
    "disagreement_figure",
}
ATTENTION_OUTPUTS = {
    "attention_shares",
    "attention_shares_by_emotion",
    "attention_by_layer",
    "attention_rollout",
}
#: Outputs handed from node to node only: the model and test clips and the embeddings (catalog
#: MemoryDatasets), the clips they belong to, the per-clip attention shares.
PASSED_ON = {"analysed_inputs", "clip_embeddings", "analysed_clips", "clip_attention_shares"}
#: The template's nodes that run the phase's model.
MODEL_NODES = {"embed_test_clips", "measure_attention_shares", "draw_attention_rollouts"}
BESIDE_THE_REPORT = {"alignment_comparison", "embedding_maps_figure"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def catalog_config() -> dict[str, Any]:
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)
    return loader["catalog"]


def _names(pipeline, phase: str) -> set[str]:
    return {n.name.removeprefix(f"{phase}.") for n in pipeline.nodes if n.namespace == phase}


def _outputs_of(pipeline, phase: str) -> set[str]:
    return {
        name.removeprefix(f"{phase}.")
        for name in pipeline.all_outputs()
        if name.startswith(f"{phase}.")
    }


def test_every_two_modality_phase_is_analysed_and_joint_encoders_get_attention() -> None:
    pipeline = create_pipeline(DEFAULT_PHASES, model_kinds=DEFAULT_KINDS)

    assert {node.namespace for node in pipeline.nodes} == {
        "bimodal",
        "baseline",
        "baseline_matched",
        None,  # the comparison beside the report
    }
    assert _outputs_of(pipeline, "bimodal") == ALIGNMENT_OUTPUTS | ATTENTION_OUTPUTS | PASSED_ON
    for phase in ("baseline", "baseline_matched"):
        assert _outputs_of(pipeline, phase) == ALIGNMENT_OUTPUTS | PASSED_ON - {
            "clip_attention_shares"
        }
    assert "measure_attention_shares" in _names(pipeline, "bimodal")
    assert pipeline.all_outputs() >= BESIDE_THE_REPORT


def test_each_phases_model_and_test_clips_are_loaded_once_for_the_nodes_that_run_it() -> None:
    pipeline = create_pipeline(DEFAULT_PHASES, model_kinds=DEFAULT_KINDS)

    for phase in ("bimodal", "baseline"):
        loading = [node for node in pipeline.nodes if f"{phase}.model_weights" in node.inputs]
        assert [node.name for node in loading] == [f"{phase}.load_analysed_inputs"]
        assert loading[0].outputs == [f"{phase}.analysed_inputs"]
        readers = {
            node.name.removeprefix(f"{phase}.")
            for node in pipeline.nodes
            if f"{phase}.analysed_inputs" in node.inputs
        }
        assert readers == MODEL_NODES & _names(pipeline, phase)


def test_it_reads_each_phases_trained_model_and_the_shared_features() -> None:
    pipeline = create_pipeline(DEFAULT_PHASES, model_kinds=DEFAULT_KINDS)

    per_phase = {"model_weights", "training_summary", "targets"}
    expected = {
        f"{p}.{name}" for p in ("bimodal", "baseline", "baseline_matched") for name in per_phase
    }
    expected |= {"bimodal.test_predictions", *SHARED_INPUTS}
    expected |= {f"params:analysis.{block}" for block in ("clips", "bootstrap", "alignment")}
    expected |= {"params:analysis.rollout", "params:analysis.projection"}
    assert pipeline.inputs() == expected


def test_a_new_two_modality_row_is_analysed_by_its_model_kind(monkeypatch) -> None:
    """A row added to PHASE_MODALITIES gets the analysis; its parameters' model kind decides
    whether it gets attention, without a change to the pipeline."""
    monkeypatch.setitem(PHASE_MODALITIES, "bimodal_late", ("audio", "video"))
    phases = (*DEFAULT_PHASES, "bimodal_late")

    late_separate = create_pipeline(
        phases, model_kinds=DEFAULT_KINDS | {"bimodal_late": "separate"}
    )
    late_shared = create_pipeline(phases, model_kinds=DEFAULT_KINDS | {"bimodal_late": "shared"})

    assert "measure_alignment" in _names(late_separate, "bimodal_late")
    assert not ATTENTION_OUTPUTS & _outputs_of(late_separate, "bimodal_late")
    assert _outputs_of(late_shared, "bimodal_late") >= ATTENTION_OUTPUTS


def test_the_shared_versus_separate_comparison_needs_both_phases() -> None:
    shared, separate = SHARED_VS_SEPARATE
    alone = create_pipeline([shared], model_kinds=DEFAULT_KINDS)

    assert not alone.all_outputs() & BESIDE_THE_REPORT
    with pytest.raises(ValueError, match=r"no model kind given for the phases \['baseline'\]"):
        create_pipeline([shared, separate], model_kinds={shared: "shared"})
    assert analysed_phases(PHASE_MODALITIES) == tuple(
        phase for phase, senses in PHASE_MODALITIES.items() if len(senses) == 2
    )


def test_every_written_output_is_a_versioned_catalog_entry_logged_to_mlflow(catalog_config) -> None:
    every_kind = {phase: "shared" for phase in PHASE_MODALITIES} | {"baseline": "separate"}
    pipeline = create_pipeline(PHASE_MODALITIES, model_kinds=every_kind)

    for name in pipeline.all_outputs():
        phase, _, dataset = name.rpartition(".")
        if dataset in PASSED_ON:
            continue
        entry = catalog_config[f"{{phase}}.{dataset}" if phase else dataset]
        assert entry["versioned"] is True, name
        if dataset == "embedding_map":  # the coordinates, for reading back
            assert entry["filepath"] == "data/07_model_output/{phase}/embedding_map.parquet"
            continue
        assert entry["type"].endswith("VersionedMlflowArtifactDataset"), name
        assert entry["artifact_path"] == ("analysis" if phase else "reporting"), name
        folder = "data/08_reporting/{phase}/" if phase else "data/08_reporting/"
        assert entry["dataset"]["filepath"].startswith(folder), name
    # Handed on as they are: the model, the clips and the embeddings are never deep-copied.
    for dataset in ("analysed_inputs", "clip_embeddings"):
        assert catalog_config[f"{{phase}}.{dataset}"]["type"] == "MemoryDataset"
        assert catalog_config[f"{{phase}}.{dataset}"]["copy_mode"] == "assign"


# ---------------------------------------------------------------- a run under MLflow
def _local_copy(entry: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A catalog entry writing under ``folder`` instead of the project's data/."""
    entry = dict(entry)
    if "dataset" in entry:
        entry["dataset"] = _local_copy(entry["dataset"], folder)
    if "filepath" in entry:
        entry["filepath"] = str(folder / entry["filepath"])
    return entry


@pytest.fixture
def tracking_uri(tmp_path):
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


def _written(folder: Path, filepath: str) -> Path:
    """The one version a run wrote of a versioned dataset: <filepath>/<version>/<name>."""
    (version,) = (folder / filepath).iterdir()
    return version / Path(filepath).name


@pytest.fixture
def upstream(trained_phases, analysis_corpus, crowd_votes, analysis_parameters) -> dict[str, Any]:
    """What the training template, the features and labels pipelines hand the analysis."""
    datasets: dict[str, Any] = {
        "log_mel_spectrograms": analysis_corpus.log_mel_spectrograms,
        "face_frames": analysis_corpus.face_frames,
        "crowd_labels": crowd_votes,
    }
    for phase, trained in trained_phases.items():
        datasets[f"{phase}.model_weights"] = trained.model_weights
        datasets[f"{phase}.training_summary"] = trained.training_summary
        datasets[f"{phase}.targets"] = trained.targets
        datasets[f"{phase}.test_predictions"] = trained.test_predictions
    for block, values in analysis_parameters.items():
        datasets[f"params:analysis.{block}"] = values
    return datasets


@pytest.mark.slow  # 30-60 s on 2 busy cores: two phases trained, analysed and logged
def test_a_run_writes_every_output_and_logs_it_into_its_phases_run(
    tmp_path, tracking_uri, catalog_config, upstream
) -> None:
    kinds = {"bimodal": "shared", "baseline": "separate"}
    pipeline = create_pipeline(kinds, model_kinds=kinds)
    entries = {
        key: _local_copy(entry, tmp_path)
        for key, entry in catalog_config.items()
        if key.removeprefix("{phase}.") in ALIGNMENT_OUTPUTS | ATTENTION_OUTPUTS | PASSED_ON
        or key in BESIDE_THE_REPORT
    }
    catalog = DataCatalog.from_config(entries, save_version="2026-12-01T00.00.00.000Z")
    for name, value in upstream.items():
        catalog[name] = value
    experiment = mlflow.create_experiment(
        "analysis", artifact_location=(tmp_path / "mlruns").as_uri()
    )
    hook = PhaseRunsHook()

    with mlflow.start_run(experiment_id=experiment, run_name="analysis") as parent:
        hook.before_pipeline_run({}, pipeline, catalog)
        SequentialRunner().run(pipeline, catalog)
        hook.after_pipeline_run()

    reports = tmp_path / "data" / "08_reporting"
    table = pd.read_csv(_written(reports, "bimodal/alignment.csv"))
    assert {"recall@1", "cka_pooled"} <= set(table["metric"]) and set(table["data"]) == {"demo"}
    rollouts = _written(reports, "bimodal/attention_rollout")
    assert sorted(rollouts.iterdir()) and all(
        path.read_bytes().startswith(PNG_MAGIC) for path in rollouts.iterdir()
    )
    assert not (reports / "baseline" / "attention_shares.csv").exists()
    comparison = pd.read_csv(_written(reports, "alignment_comparison.csv"))
    assert set(comparison["model_a"]) == {"bimodal"} and set(comparison["model_b"]) == {"baseline"}
    coordinates = pd.read_parquet(
        _written(tmp_path / "data" / "07_model_output", "baseline/embedding_map.parquet")
    )
    assert set(coordinates["sense"]) == {"audio", "video", "audiovisual"}

    client = mlflow.MlflowClient()
    runs = client.search_runs([experiment])
    children = {r.info.run_name: r.info.run_id for r in runs if r.info.run_id != parent.info.run_id}
    assert set(children) == set(kinds)
    logged = {
        phase: {a.path for a in client.list_artifacts(run, "analysis")}
        for phase, run in children.items()
    }
    common = {
        "analysis/alignment.csv",
        "analysis/embedding_map.png",
        "analysis/disagreement.png",
        "analysis/disagreement_correlation.json",
    }
    attention = {
        "analysis/attention_shares.csv",
        "analysis/attention_shares_by_emotion.csv",
        "analysis/attention_by_layer.png",
        "analysis/attention_rollout",
    }
    assert logged == {"bimodal": common | attention, "baseline": common}
    drawn = {
        a.path for a in client.list_artifacts(children["bimodal"], "analysis/attention_rollout")
    }
    assert drawn == {f"analysis/attention_rollout/{p.name}" for p in rollouts.iterdir()}
    beside = {a.path for a in client.list_artifacts(parent.info.run_id, "reporting")}
    assert beside == {"reporting/alignment_comparison.csv", "reporting/embedding_maps.png"}


def test_fusion_late_and_mid_way_gets_the_aligned_representations_without_attention() -> None:
    phases = (*DEFAULT_PHASES, "bimodal_late", "bimodal_mid")
    kinds = DEFAULT_KINDS | {"bimodal_late": "shared_late", "bimodal_mid": "shared_mid"}

    pipeline = create_pipeline(phases, model_kinds=kinds)

    for phase in ("bimodal_late", "bimodal_mid"):
        assert _outputs_of(pipeline, phase) == ALIGNMENT_OUTPUTS | PASSED_ON - {
            "clip_attention_shares"
        }, phase
