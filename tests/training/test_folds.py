"""Equal treatment, the grid of cells (folds x seeds), the curriculum and label-source phases."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

from avshared.features.audio import spectrogram_stats as measure_spectrogram_stats
from avshared.models import ModelConfig, build_model, count_parameters, parse_modalities
from avshared.pipelines.training import PHASE_MODALITIES, create_phase_pipeline
from avshared.pipelines.training.pipeline import CELL_DATASETS
from avshared.training import folds as folds_module
from avshared.training.cells import Cell, cell_config, plan_cells
from avshared.training.curriculum import WarmStart, carried_weights
from avshared.training.equal_treatment import apply_parameter_matching, matched_width
from avshared.training.folds import (
    build_fold_targets,
    evaluate_cells,
    gather_cells,
    load_fold_model,
    predict_phase_validation,
    train_cells,
    train_stages,
    weights_of_cell,
)
from avshared.training.phase import load_trained_model, phase_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TWO_MODALITY_PHASES = (
    "bimodal",
    "baseline",
    "baseline_matched",
    "bimodal_curriculum",
    "bimodal_late",
    "bimodal_mid",
    "bimodal_alternating",
    "bimodal_unimodal_auxiliary",
    "baseline_ogm_ge",
)


def _features(corpus):
    return {
        "log_mel_spectrograms": corpus.log_mel_spectrograms,
        "spectrogram_stats": corpus.spectrogram_stats,
        "face_frames": corpus.face_frames,
    }


@pytest.fixture
def resolve(tiny_defaults, phase_overrides, training_parameters, tmp_path):
    def make(phase, defaults=None, seeds=None, **overrides):
        return phase_config(
            defaults or tiny_defaults,
            phase_overrides[phase] | overrides,
            str(tmp_path),
            phase=phase,
            modalities=PHASE_MODALITIES[phase],
            seeds=seeds or training_parameters["seeds"],
        )

    return make


def _plan(targets, config, corpus, only_fold=None, only_seed=None):
    stores = {"audio": corpus.log_mel_spectrograms, "video": corpus.face_frames}
    return plan_cells(
        targets, config, only_fold=only_fold, only_seed=only_seed, feature_stores=stores
    )


def _stored(results: dict) -> dict:
    """A node's per-cell results as a PartitionedDataset loads them: key -> function loading it
    (a model is stored as its state_dict)."""

    def loader(value):
        return value.state_dict if isinstance(value, torch.nn.Module) else lambda: value

    return {key: loader(value) for key, value in results.items()}


def _train_evaluate_gather(corpus, targets, target_summary, config, plan, *, mlflow_run=None):
    """The template's cell and gather nodes in a row, the cells' results passed as partitions."""
    weights, histories, summaries = train_cells(
        targets=targets,
        target_summary=target_summary,
        config=config,
        plan=plan,
        mlflow_run=mlflow_run,
        **_features(corpus),
    )
    predictions, metrics = evaluate_cells(
        cell_weights=_stored(weights),
        cell_training_summaries=_stored(summaries),
        targets=targets,
        plan=plan,
        log_mel_spectrograms=corpus.log_mel_spectrograms,
        face_frames=corpus.face_frames,
    )
    gathered = gather_cells(
        plan=plan,
        config=config,
        target_summary=target_summary,
        cell_weights=_stored(weights),
        cell_training_summaries=_stored(summaries),
        cell_histories=_stored(histories),
        cell_predictions=_stored(predictions),
        cell_metrics=_stored(metrics),
        mlflow_run=mlflow_run,
    )
    return weights, gathered


# ---------------------------------------------------------------- equal treatment


def test_the_project_parameters_treat_every_two_modality_row_alike(training_parameters, tmp_path):
    """Same modality dropout, epoch budget, early stopping, checkpoint selection and optimiser for
    bimodal, both baselines and the sharing x fusion and strategy rows: only the model kind, its
    width, the target and the training strategy may differ."""
    resolved = {
        phase: phase_config(
            training_parameters["defaults"],
            training_parameters["phases"][phase],
            str(tmp_path),
            phase=phase,
            modalities=PHASE_MODALITIES[phase],
            seeds=training_parameters["seeds"],
        )
        for phase in TWO_MODALITY_PHASES
    }
    dropouts = {phase: config["model"]["modality_dropout"] for phase, config in resolved.items()}
    assert set(dropouts.values()) == {0.25}, dropouts
    for phase, config in resolved.items():
        for key in ("trainer", "optimiser", "data", "seeds", "target"):
            assert config[key] == resolved["bimodal"][key], (phase, key)


def test_the_matched_baseline_has_the_shared_models_parameter_count():
    config = ModelConfig.preset(
        "default", n_mels=64, audio_frames=300, video_frames=8, image_size=112,
        video_tubelet=(4, 16, 16),
    )  # fmt: skip
    dim, count, target = matched_width("separate", "shared", ["audio", "video"], config)
    shared = count_parameters(build_model("shared", ["audio", "video"], config))
    narrowed = build_model(
        "separate", ["audio", "video"], ModelConfig(**{**config.to_dict(), "dim": dim})
    )
    assert target == shared and count == count_parameters(narrowed)
    assert abs(count - shared) / shared < 0.03, (dim, count, shared)
    assert dim < config.dim and dim % config.heads == 0
    same_width = count_parameters(build_model("separate", ["audio", "video"], config))
    assert same_width > 1.4 * shared  # what the same-width baseline is compared with


def test_parameter_matching_follows_the_stored_features(corpus, resolve):
    config = resolve("baseline_matched")
    stores = {"audio": corpus.log_mel_spectrograms, "video": corpus.face_frames}
    matched = apply_parameter_matching(config, stores)
    record = matched["matched_parameters"]
    assert record["reference"] == "shared"
    assert abs(record["count"] - record["reference_count"]) / record["reference_count"] < 0.05
    assert matched["model"]["dim"] < config["model"]["dim"]
    assert apply_parameter_matching(resolve("baseline"), stores) == resolve("baseline")


def test_the_matched_width_is_recorded_in_the_phases_gathered_outputs(
    corpus, resolve, tiny_defaults
):
    defaults = copy.deepcopy(tiny_defaults)
    defaults["trainer"] |= {"max_epochs": 1}
    config = resolve("baseline_matched", defaults)
    targets, target_summary = build_fold_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split.assign(fold=0), config
    )
    plan = _plan(targets, config, corpus)
    _, (_, _, summary, _, metrics) = _train_evaluate_gather(
        corpus, targets, target_summary, config, plan
    )
    assert summary["matched_parameters"] == metrics["matched_parameters"]
    assert metrics["matched_parameters"]["count"] == metrics["param_count"]
    assert summary["model_config"]["dim"] < config["model"]["dim"] == tiny_defaults["model"]["dim"]


# ---------------------------------------------------------------- k-fold


def _two_fold_split(corpus) -> pd.DataFrame:
    """Fold 0 is the corpus's split; fold 1 swaps the test and val actors' roles."""
    swap = {"test": "val", "val": "test", "train": "train"}
    fold_1 = corpus.split.assign(split=corpus.split["split"].map(swap))
    return pd.concat([corpus.split.assign(fold=0), fold_1.assign(fold=1)], ignore_index=True)


@pytest.mark.slow
def test_every_fold_trains_and_the_predictions_pool_the_folds(corpus, resolve, tiny_defaults):
    defaults = copy.deepcopy(tiny_defaults)
    defaults["trainer"] |= {"max_epochs": 2}
    config = resolve("audio", defaults)
    split = _two_fold_split(corpus)
    targets, target_summary = build_fold_targets(
        corpus.clip_manifest, corpus.crowd_labels, split, config
    )
    assert target_summary["folds"] == 2 and set(target_summary["per_fold"]) == {"0", "1"}
    plan = _plan(targets, config, corpus)
    assert [cell.key for cell in plan.cells] == ["fold_0.seed_0", "fold_1.seed_0"]
    weights, gathered = _train_evaluate_gather(corpus, targets, target_summary, config, plan)
    model, history, summary, predictions, metrics = gathered
    assert isinstance(model, torch.nn.ModuleDict) and set(model) == {"fold_0", "fold_1"}
    assert sorted(history["fold"].unique()) == [0, 1] and set(history["seed"]) == {0}
    # Each fold's standardisation is measured on its own training clips.
    assert len(summary["per_cell"]) == 2 and (summary["folds"], summary["seeds"]) == (2, 1)
    tested = split.loc[split["split"] == "test"]
    assert sorted(predictions["clip_id"].unique()) == sorted(tested["clip_id"])
    assert len(predictions.loc[predictions["condition"] == "audio_only"]) == len(tested)
    assert predictions.groupby("clip_id")["fold"].nunique().eq(1).all()
    assert metrics["folds"] == 2 and len(metrics["per_fold"]) == 2 and "per_seed" not in metrics
    assert metrics["test_clips"] == len(tested)  # every clip tested once
    assert metrics["cells"]["missing"] == [] and len(metrics["cells"]["present"]) == 2
    pooled = (predictions["target"] == predictions["predicted"]).mean()
    assert metrics["test_accuracy"] == pytest.approx(pooled)
    per_fold = [m["test_accuracy"] for m in metrics["per_fold"]]
    assert metrics["fold_mean"]["test_accuracy"] == pytest.approx(sum(per_fold) / 2)
    assert metrics["fold_sd"]["test_accuracy"] == pytest.approx(pd.Series(per_fold).std())
    # Each fold's validation clips, predicted by that fold's model, for choices made after
    # training (the unimodal ensemble's weight): never a test clip.
    validation = predict_phase_validation(
        model_weights=model.state_dict(),
        targets=targets,
        training_summary=summary,
        log_mel_spectrograms=corpus.log_mel_spectrograms,
    )
    validated = split.loc[split["split"] == "val"]
    assert set(validation.columns) == set(predictions.columns)
    for fold in (0, 1):
        of_fold = validation.loc[validation["fold"] == fold, "clip_id"]
        assert sorted(of_fold) == sorted(validated.loc[validated["fold"] == fold, "clip_id"])
        assert not set(of_fold) & set(tested.loc[tested["fold"] == fold, "clip_id"])
    first = weights_of_cell(model.state_dict(), 0, 0)
    assert set(first) == set(weights["fold_0.seed_0"].state_dict())
    # Each fold's model reloads from the phase's weights and summary alone; the whole phase's
    # weights are refused by the single-model loader, which names the grid-aware one.
    for fold in (0, 1):
        reloaded = load_fold_model(model.state_dict(), summary, fold)
        for name, tensor in weights[f"fold_{fold}.seed_0"].state_dict().items():
            torch.testing.assert_close(reloaded.state_dict()[name], tensor, rtol=0, atol=0)
    with pytest.raises(ValueError, match="load_fold_model"):
        load_trained_model(model.state_dict(), summary)


def test_two_seeds_train_two_models_and_the_predictions_pool_the_seeds(
    corpus, resolve, tiny_defaults, mlflow_phase_run
):
    defaults = copy.deepcopy(tiny_defaults)
    defaults["trainer"] |= {"max_epochs": 1}
    config = resolve("audio", defaults, seeds=[11, 12])
    targets, target_summary = build_fold_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split.assign(fold=0), config
    )
    plan = _plan(targets, config, corpus)
    assert [cell.key for cell in plan.cells] == ["fold_0.seed_0", "fold_0.seed_1"]
    client, phase_run = mlflow_phase_run
    weights, gathered = _train_evaluate_gather(
        corpus, targets, target_summary, config, plan, mlflow_run=phase_run
    )
    model, history, summary, predictions, metrics = gathered
    # Two models from two initialisations: their weights differ.
    first, second = (weights[key].state_dict() for key in ("fold_0.seed_0", "fold_0.seed_1"))
    assert not torch.equal(first["head.linear.weight"], second["head.linear.weight"])
    assert set(model) == {"fold_0"} and set(model["fold_0"]) == {"seed_0", "seed_1"}
    reloaded = load_fold_model(model.state_dict(), summary, fold=0, seed=1)
    torch.testing.assert_close(reloaded.state_dict(), second, rtol=0, atol=0)
    assert [s["seed_value"] for s in summary["per_cell"]] == [11, 12]
    # Each test clip is predicted once per seed; history rows carry their cell too.
    tested = corpus.split.loc[corpus.split["split"] == "test", "clip_id"]
    own = predictions.loc[predictions["condition"] == "audio_only"]
    assert sorted(own["seed"].unique()) == [0, 1] and len(own) == 2 * len(tested)
    assert own.groupby("clip_id")["seed"].nunique().eq(2).all()
    assert sorted(history["seed"].unique()) == [0, 1]
    assert metrics["seeds"] == 2 and metrics["test_clips"] == len(tested)
    per_seed = [m["test_accuracy"] for m in metrics["per_seed"]]
    assert metrics["seed_mean"]["test_accuracy"] == pytest.approx(np.mean(per_seed))
    assert metrics["seed_sd"]["test_accuracy"] == pytest.approx(np.std(per_seed, ddof=1))
    assert metrics["budget"]["max_epochs"] == 1
    # One MLflow run per cell, nested in the phase's and tagged with its fold and seed.
    experiment = client.get_run(phase_run["run_id"]).info.experiment_id
    cells = [r for r in client.search_runs([experiment]) if r.info.run_id != phase_run["run_id"]]
    assert sorted((r.data.tags["fold"], r.data.tags["seed"]) for r in cells) == [
        ("0", "0"),
        ("0", "1"),
    ]
    assert {r.data.tags["mlflow.parentRunId"] for r in cells} == {phase_run["run_id"]}


def test_a_single_split_keeps_the_outputs_of_one_model(corpus, resolve):
    targets, summary = build_fold_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split.assign(fold=0), resolve("audio")
    )
    assert summary["folds"] == 1 and "per_fold" not in summary
    assert set(targets["fold"]) == {0} and len(targets) == len(corpus.split)


# ---------------------------------------------------------------- curriculum


class StartRecorder(L.Callback):
    """The model's weights when each stage's training starts (after any warm start)."""

    def __init__(self):
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_start(self, trainer, pl_module):
        self.states.append({k: v.detach().clone() for k, v in pl_module.model.state_dict().items()})


@pytest.mark.slow
def test_each_curriculum_stage_starts_from_the_stage_before(
    corpus, resolve, tiny_defaults, mlflow_phase_run
):
    defaults = copy.deepcopy(tiny_defaults)
    defaults["trainer"] |= {"max_epochs": 1}
    config = resolve("bimodal_curriculum", defaults)
    targets, target_summary = build_fold_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split.assign(fold=0), config
    )
    recorder = StartRecorder()
    video, audio, bimodal = train_stages(
        targets.drop(columns="fold"),
        target_summary,
        cell_config(config, Cell(fold=0, seed=0)),
        {"log_mel_spectrograms": corpus.log_mel_spectrograms, "face_frames": corpus.face_frames},
        corpus.spectrogram_stats,
        mlflow_run=mlflow_phase_run[1],
        extra_callbacks=[recorder],
    )
    assert [s[2]["targets"]["kind"] for s in (video, audio, bimodal)] == ["acted"] * 3
    audio_end = audio[0].state_dict()
    bimodal_start = recorder.states[2]
    carried = [k for k in bimodal_start if k.startswith(("encoder.", "embeddings.audio"))]
    assert carried
    for name in carried:
        torch.testing.assert_close(bimodal_start[name], audio_end[name], rtol=0, atol=0)
    # The audio stage itself started from the video stage's encoder.
    video_end = video[0].state_dict()
    for name in (k for k in recorder.states[1] if k.startswith("encoder.")):
        torch.testing.assert_close(recorder.states[1][name], video_end[name], rtol=0, atol=0)
    # The head starts afresh in every stage.
    assert not torch.equal(bimodal_start["head.linear.weight"], audio_end["head.linear.weight"])
    # Each stage logs its epochs to a run of its own, nested in the phase's run.
    client, phase_run = mlflow_phase_run
    stages = {
        run.data.tags["curriculum_stage"]: run
        for run in client.search_runs([client.get_run(phase_run["run_id"]).info.experiment_id])
        if run.info.run_id != phase_run["run_id"]
    }
    assert sorted(stages) == ["0_video", "1_audio", "2_bimodal"]
    for stage, run in stages.items():
        assert run.data.tags["mlflow.parentRunId"] == phase_run["run_id"]
        assert run.data.tags["modalities"] == "+".join(parse_modalities(stage.split("_")[1]))
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 1  # one epoch
    assert bimodal[2]["mlflow_run_id"] == stages["2_bimodal"].info.run_id


def test_warm_start_carries_only_the_encoder_and_common_embeddings(tiny_config):
    audio = build_model("shared", "audio", tiny_config)
    bimodal = build_model("shared", "bimodal", tiny_config)
    carried = carried_weights(audio.state_dict(), bimodal)
    assert carried and all(k.startswith(("encoder.", "embeddings.audio")) for k in carried)
    assert not any(k.startswith(("head.", "embeddings.video")) for k in carried)
    with pytest.raises(ValueError, match="shares no encoder"):
        WarmStart({}).setup(None, type("M", (), {"model": bimodal})(), "fit")


# ---------------------------------------------------------------- label-source phases


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["bimodal_perceived_majority", "bimodal_perceived_soft"])
def test_perceived_targets_run_end_to_end_through_the_phase_pipeline(
    corpus, tiny_defaults, training_parameters, tmp_path, monkeypatch, *, mlflow_phase_run, phase
):
    """The phase's Kedro pipeline from the shared datasets to its metrics, on the small corpus."""
    # The outputs go through the project's dataset types, as in `kedro run`.
    types = {
        "model_weights.pt": "kedro_datasets_experimental.pytorch.PyTorchDataset",
        "metrics.json": "json.JSONDataset",
        "test_predictions.parquet": "pandas.ParquetDataset",
    }
    # The cells' partitioned datasets as the project's catalog defines them.
    project_catalog = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog.yml").read_text())
    catalog = DataCatalog.from_config(
        {
            f"{phase}.{file.split('.')[0]}": {"type": kind, "filepath": str(tmp_path / file)}
            for file, kind in types.items()
        }
        | {
            f"{phase}.{name}": project_catalog[f"{{phase}}.{name}"] | {"path": str(tmp_path / name)}
            for name in CELL_DATASETS
        }
    )
    catalog["clip_manifest"] = corpus.clip_manifest
    catalog["crowd_labels"] = corpus.crowd_labels
    catalog["split"] = corpus.split.assign(fold=0)
    for name, value in _features(corpus).items():
        catalog[name] = value
    defaults = copy.deepcopy(tiny_defaults)
    defaults["trainer"] |= {"max_epochs": 2}
    catalog["params:training.defaults"] = defaults
    catalog["params:training.seeds"] = training_parameters["seeds"]
    catalog["params:training.only_fold"] = catalog["params:training.only_seed"] = None
    catalog["pretrained_encoder"] = catalog["pretrain_summary"] = None  # never pretrained
    catalog[f"params:training.phases.{phase}"] = training_parameters["phases"][phase]
    catalog["params:crema_d_root"] = str(tmp_path)
    client, phase_run = mlflow_phase_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", phase_run["tracking_uri"])  # as kedro-mlflow sets it
    # As PhaseRunsHook provides the run and points the phase's kedro-mlflow datasets at it.
    catalog[f"{phase}.mlflow_run"] = phase_run
    catalog[f"{phase}.test_scores"] = MlflowMetricsHistoryDataset(run_id=phase_run["run_id"])

    SequentialRunner().run(create_phase_pipeline(phase), catalog)

    metrics = catalog.load(f"{phase}.metrics")
    predictions = catalog.load(f"{phase}.test_predictions")
    kind = training_parameters["phases"][phase]["target"]["kind"]
    assert metrics["target"] == kind and metrics["phase"] == phase
    test_clips = set(corpus.split.loc[corpus.split["split"] == "test", "clip_id"])
    audiovisual = predictions.loc[predictions["condition"] == "audiovisual"]
    # Tied votes have no single-label target: dropped (majority) or left unscored (soft).
    assert set(audiovisual["clip_id"]) < test_clips
    # Predictions carry the acted emotion beside the perceived target, for both scorings.
    assert (audiovisual["emotion"] != "").all() and "target" in audiovisual
    assert 0 <= metrics["test_accuracy"] <= 1
    logged = client.get_run(phase_run["run_id"]).data
    assert logged.tags["target"] == kind
    assert logged.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


# ---------------------------------------------------------------- per-fold standardisation


def _folds_with_other_training_actors(corpus) -> pd.DataFrame:
    """Fold 0 is the corpus's split; in fold 1 two training actors become test actors and the test
    actors train, so the folds' training clips differ."""
    split = corpus.split
    train_actors = sorted(split.loc[split["split"] == "train", "actor"].unique())
    test_actors = sorted(split.loc[split["split"] == "test", "actor"].unique())
    moved = dict.fromkeys(train_actors[:2], "test") | dict.fromkeys(test_actors, "train")
    roles = zip(split["actor"], split["split"], strict=True)
    fold_1 = split.assign(split=[moved.get(actor, role) for actor, role in roles])
    return pd.concat([split.assign(fold=0), fold_1.assign(fold=1)], ignore_index=True)


def test_each_folds_log_mel_standardisation_is_measured_on_its_training_clips_only(
    corpus, resolve, monkeypatch
):
    config = resolve("audio")
    split = _folds_with_other_training_actors(corpus)
    targets, target_summary = build_fold_targets(
        corpus.clip_manifest, corpus.crowd_labels, split, config
    )
    seen = {}

    def no_training(fold_targets, summary, cell_config, features, stats, *, mlflow_run, initial):
        seen[cell_config["fold"]] = (fold_targets, stats)
        result = {
            "model_kind": "shared",
            "modalities": ["audio"],
            "model_config": {},
            "param_count": 1,
            "epochs": 1,
            "best_epoch": 0,
            "train_samples_per_s": 1.0,
        }
        return torch.nn.Linear(1, 1), pd.DataFrame({"epoch": [0]}), result

    monkeypatch.setattr(folds_module, "_train_cell", no_training)
    plan = _plan(targets, config, corpus)
    train_cells(
        targets=targets,
        target_summary=target_summary,
        config=config,
        plan=plan,
        **_features(corpus),
    )

    store, mode = corpus.log_mel_spectrograms, corpus.spectrogram_stats["mode"]
    pooled_train = split.loc[split["split"] == "train", "clip_id"].unique()
    pooled = measure_spectrogram_stats((store.get(c) for c in pooled_train), mode)
    measured = {}
    for fold in (0, 1):
        fold_targets, stats = seen[fold]
        assert set(fold_targets["split"]) == {"train", "val", "test"}
        train = split.loc[(split["fold"] == fold) & (split["split"] == "train"), "clip_id"]
        expected = measure_spectrogram_stats((store.get(c) for c in train), mode)
        np.testing.assert_allclose(stats["mean"], expected["mean"], rtol=1e-6)
        np.testing.assert_allclose(stats["std"], expected["std"], rtol=1e-6)
        assert stats["split"] == "train"
        measured[fold] = np.asarray(stats["mean"])
    # The folds train on different actors, so their statistics differ, and neither is the
    # statistics of every fold's training clips pooled.
    assert not np.allclose(measured[0], measured[1])
    for fold in (0, 1):
        assert not np.allclose(measured[fold], np.asarray(pooled["mean"]))
