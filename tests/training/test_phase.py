"""The training template's nodes: configuration, targets, training, resuming and evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from avshared.crema_d import DEMO_MARKER_FILE, EMOTIONS
from avshared.evaluation.figures import plot_phase_confusion_matrix
from avshared.pipelines.training import PHASE_MODALITIES
from avshared.training.cells import Cell, cell_config
from avshared.training.phase import (
    build_targets,
    evaluate_model,
    load_trained_model,
    phase_config,
    train_model,
)

CHANCE = 1 / len(EMOTIONS)


@pytest.fixture
def make_config(tiny_defaults, phase_overrides, training_parameters, tmp_path):
    """The config of a phase's one cell (a single split, the project's one seed) from the tiny
    defaults and the project's phase overrides."""

    def make(phase, root=tmp_path, **overrides):
        config = phase_config(
            tiny_defaults,
            phase_overrides[phase] | overrides,
            str(root),
            phase=phase,
            modalities=PHASE_MODALITIES[phase],
            seeds=training_parameters["seeds"],
        )
        return cell_config(config, Cell(fold=0, seed=0))

    return make


def _features(corpus):
    return {
        "log_mel_spectrograms": corpus.log_mel_spectrograms,
        "spectrogram_stats": corpus.spectrogram_stats,
        "face_frames": corpus.face_frames,
    }


def _stores(corpus):
    return {
        "log_mel_spectrograms": corpus.log_mel_spectrograms,
        "face_frames": corpus.face_frames,
    }


def _train(corpus, config, **kwargs):
    targets, summary = build_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split, config
    )
    model, history, training_summary = train_model(
        targets=targets, target_summary=summary, config=config, **_features(corpus), **kwargs
    )
    return targets, model, history, training_summary


def test_phase_config_merges_shared_defaults_and_phase_overrides(
    make_config, tiny_defaults, phase_overrides
):
    bimodal = make_config("bimodal")
    baseline = make_config("baseline")
    video = make_config("video")
    assert (bimodal["phase"], bimodal["modalities"], bimodal["model"]["kind"]) == (
        "bimodal",
        ["audio", "video"],
        "shared",
    )
    # Equal treatment: modality dropout is a default, the same for every two-modality row.
    assert "model" not in phase_overrides["bimodal"]
    assert bimodal["model"].get("modality_dropout") == baseline["model"].get("modality_dropout")
    assert bimodal["model"]["dim"] == tiny_defaults["model"]["dim"]  # merged, not replaced
    assert (baseline["model"]["kind"], baseline["modalities"]) == ("separate", ["audio", "video"])
    assert "modality_dropout" not in video["model"]
    assert video["modalities"] == ["video"]
    assert video["trainer"] == tiny_defaults["trainer"]
    assert video["data_source"] == "crema-d"


def test_generated_corpus_is_labelled_demo(make_config, tmp_path):
    (tmp_path / DEMO_MARKER_FILE).write_text("{}")
    assert make_config("audio", tmp_path)["data_source"] == "demo"


def test_acted_targets_are_the_file_name_emotions(corpus, make_config):
    targets, summary = build_targets(
        corpus.clip_manifest,
        corpus.crowd_labels,
        corpus.split,
        make_config("audio"),
    )
    assert len(targets) == len(corpus.clip_manifest)
    assert (targets["target"] == targets["clip_id"].str.split("_").str[2]).all()
    assert (targets[[f"p_{e}" for e in EMOTIONS]].sum(axis=1) == 1).all()
    assert summary["clips"] == corpus.split["split"].value_counts().to_dict()


def test_perceived_majority_drops_tied_votes_and_counts_them(corpus, make_config):
    config = make_config("audio", target={"kind": "perceived_majority", "rating_modality": "voice"})
    targets, summary = build_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split, config
    )
    voice = corpus.crowd_labels.loc[corpus.crowd_labels["modality"] == "voice"]
    tied = voice.loc[voice["majority_emotion"].isna(), "clip_id"]
    assert len(tied) > 0, "the fixture should contain tied votes"
    assert set(targets["clip_id"]).isdisjoint(tied)
    assert sum(summary["dropped"]["tied_vote"].values()) == len(tied)
    expected = voice.set_index("clip_id").loc[targets["clip_id"], "majority_emotion"]
    assert list(targets["target"]) == list(expected)


def test_perceived_soft_targets_are_the_vote_distribution(corpus, make_config):
    config = make_config("audio", target={"kind": "perceived_soft", "rating_modality": "face"})
    targets, summary = build_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split, config
    )
    face = corpus.crowd_labels.loc[corpus.crowd_labels["modality"] == "face"].set_index("clip_id")
    columns = [f"p_{e}" for e in EMOTIONS]
    assert len(targets) == len(corpus.clip_manifest)  # ties are kept for training
    np.testing.assert_allclose(
        targets[columns].to_numpy(), face.loc[targets["clip_id"], columns].to_numpy(), rtol=1e-6
    )
    assert targets["target"].isna().sum() == face["majority_emotion"].isna().sum()
    assert summary["dropped"] == {"unrated": {"train": 0, "val": 0, "test": 0}}


#: Overrides the tiny defaults need per phase: mid fusion splits its layers, so needs two.
TINY_PHASE_OVERRIDES = {"bimodal_mid": {"model": {"kind": "shared_mid", "depth": 2}}}


@pytest.mark.parametrize(
    "phase",
    [
        "video",
        "audio",
        "bimodal",
        "baseline",
        "bimodal_late",
        "bimodal_mid",
        "bimodal_alternating",
        "bimodal_unimodal_auxiliary",
        "baseline_ogm_ge",
    ],
)
def test_each_phase_learns_emotions_of_unseen_actors(corpus, make_config, tiny_defaults, phase):
    config = make_config(phase, **TINY_PHASE_OVERRIDES.get(phase, {}))
    targets, model, history, summary = _train(corpus, config)
    predictions, metrics = evaluate_model(
        model_weights=model.state_dict(),
        targets=targets,
        training_summary=json.loads(json.dumps(summary)),  # as the catalog stores it
        **_stores(corpus),
    )
    test_clips = (corpus.split["split"] == "test").sum()
    conditions = {"video": ["video_only"], "audio": ["audio_only"]}.get(
        phase, ["audiovisual", "audio_only", "video_only"]
    )
    assert list(predictions["condition"].unique()) == conditions
    assert len(predictions) == test_clips * len(conditions)
    assert metrics["condition"] == conditions[0]
    assert metrics["test_accuracy"] > CHANCE + 0.3, metrics
    assert metrics["test_uar"] > CHANCE + 0.3, metrics
    assert 0 < metrics["test_macro_f1"] <= 1
    assert set(metrics["conditions"]) == set(conditions)
    # Scores follow from the predictions.
    own = predictions.loc[predictions["condition"] == conditions[0]]
    assert metrics["test_accuracy"] == pytest.approx((own["target"] == own["predicted"]).mean())
    np.testing.assert_allclose(own[[f"p_{e}" for e in EMOTIONS]].sum(axis=1), 1.0, rtol=1e-5)
    assert (own["predicted"] == own[[f"p_{e}" for e in EMOTIONS]].to_numpy().argmax(1)).all()
    assert set(own["actor"]) == set(corpus.split.loc[corpus.split["split"] == "test", "actor"])
    assert (metrics["phase"], metrics["data"], metrics["demo"]) == (phase, "crema-d", False)
    assert metrics["param_count"] == sum(p.numel() for p in model.parameters())
    assert metrics["epochs"] == len(history) == tiny_defaults["trainer"]["max_epochs"]
    assert metrics["train_samples_per_s"] > 0
    json.dumps(metrics)  # the catalog stores it as JSON
    assert list(history["epoch"]) == list(range(len(history)))
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy"} <= set(history.columns)
    per_sense = ["val_accuracy_audio", "val_accuracy_video"]
    if len(config["modalities"]) == 2:
        assert history[per_sense].notna().all().all()
        assert history[per_sense].iloc[-1].gt(CHANCE).all(), history[per_sense]
    else:
        assert not set(per_sense) & set(history.columns)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert summary["config"]["strategy"]["kind"] == config["strategy"]["kind"]
    assert not Path(config["checkpoint_dir"], phase).exists(), "a finished run keeps no checkpoint"


class InterruptAtEpoch(L.Callback):
    """Fails the run at the start of an epoch, as a crash or a killed job would."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


class EpochRecorder(L.Callback):
    def __init__(self):
        self.epochs: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.epochs.append(trainer.current_epoch)


def test_an_interrupted_run_resumes_and_ends_as_an_uninterrupted_one(corpus, make_config):
    config = make_config("bimodal")
    checkpoint_folder = Path(config["checkpoint_dir"], "bimodal")
    _, straight, straight_history, straight_summary = _train(corpus, config)

    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(corpus, config, extra_callbacks=[InterruptAtEpoch(1)])
    assert (checkpoint_folder / "last.ckpt").is_file()

    recorder = EpochRecorder()
    _, resumed, resumed_history, resumed_summary = _train(
        corpus, config, extra_callbacks=[recorder]
    )
    assert recorder.epochs == list(range(1, config["trainer"]["max_epochs"]))  # from epoch 2 on
    assert resumed_summary["resumed_from_epoch"] == 1
    assert resumed_summary["epochs"] == straight_summary["epochs"]
    pd.testing.assert_frame_equal(
        resumed_history.drop(columns=["train_seconds"]),
        straight_history.drop(columns=["train_seconds"]),
    )
    for name, weights in straight.state_dict().items():
        assert torch.equal(weights, resumed.state_dict()[name]), name
    assert not checkpoint_folder.exists(), "a finished run must not resume the next one"


def test_checkpoints_of_other_parameters_are_not_resumed(corpus, make_config):
    config = make_config("audio")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(corpus, config, extra_callbacks=[InterruptAtEpoch(1)])
    changed = make_config("audio", optimiser={"learning_rate": 1e-3})
    recorder = EpochRecorder()
    *_, summary = _train(corpus, changed, extra_callbacks=[recorder])
    assert recorder.epochs[0] == 0
    assert summary["resumed_from_epoch"] is None


def test_a_phase_whose_pipeline_lacks_its_features_says_how_to_fix_it(corpus, make_config):
    config = make_config("audio")
    targets, summary = build_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split, config
    )
    with pytest.raises(ValueError, match=r"log_mel_spectrograms.*PHASE_MODALITIES"):
        train_model(
            targets=targets, target_summary=summary, config=config, face_frames=corpus.face_frames
        )


def test_confusion_matrix_is_labelled_with_the_phase_and_demo_data():
    predictions = pd.DataFrame(
        {
            "condition": ["audiovisual"] * 4 + ["audio_only"] * 4,
            "target": [0, 0, 1, 2] * 2,
            "predicted": [0, 1, 1, 2] * 2,
        }
    )
    metrics = {
        "phase": "bimodal",
        "condition": "audiovisual",
        "target": "acted",
        "demo": True,
        "test_accuracy": 0.75,
        "test_uar": 0.833,
    }
    figure = plot_phase_confusion_matrix(predictions, metrics)
    title = figure.axes[0].get_title()
    assert "bimodal" in title
    assert "DEMO" in title
    counts = [int(t.get_text()) for t in figure.axes[0].texts]
    assert sum(counts) == 4  # only the phase's own condition


RELOAD_SCRIPT = """
import json, sys
from pathlib import Path
import pandas as pd, torch
from avshared.features.store import FeatureStore
from avshared.training.phase import evaluate_model

folder = Path(sys.argv[1])
predictions, _ = evaluate_model(
    model_weights=torch.load(folder / "model_weights.pt", weights_only=True),
    targets=pd.read_parquet(folder / "targets.parquet"),
    training_summary=json.loads((folder / "training_summary.json").read_text()),
    log_mel_spectrograms=FeatureStore(sys.argv[2]),
    face_frames=FeatureStore(sys.argv[3]),
)
predictions.to_parquet(folder / "predictions.parquet")
"""


def test_a_fresh_process_reloads_the_model_from_its_files_and_predicts_the_same(
    corpus, make_config, tmp_path
):
    config = make_config("bimodal")
    targets, model, _, summary = _train(corpus, config)
    predictions, _ = evaluate_model(
        model_weights=model.state_dict(),
        targets=targets,
        training_summary=summary,
        **_stores(corpus),
    )
    # What the catalog writes: the state_dict, the summary as JSON, the targets as Parquet.
    torch.save(model.state_dict(), tmp_path / "model_weights.pt")
    (tmp_path / "training_summary.json").write_text(json.dumps(summary))
    targets.to_parquet(tmp_path / "targets.parquet")
    stores = [str(corpus.log_mel_spectrograms.directory), str(corpus.face_frames.directory)]
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(tmp_path), *stores],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reloaded = pd.read_parquet(tmp_path / "predictions.parquet")
    pd.testing.assert_frame_equal(reloaded, predictions, check_exact=False, atol=1e-6, rtol=0)


def test_weights_of_another_model_configuration_are_refused(corpus, make_config):
    config = make_config("audio")
    _, model, _, summary = _train(corpus, config)
    wider = {**summary, "model_config": {**summary["model_config"], "dim": 64, "heads": 2}}
    with pytest.raises(ValueError, match="do not fit"):
        load_trained_model(model.state_dict(), wider)
