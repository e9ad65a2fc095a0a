"""Pretraining by masked autoencoding: the Lightning module, one pretraining per fold on its
training clips (and the extra recordings), its MLflow runs, and resuming after an interruption."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
import yaml

from avshared.features.store import FeatureStore, write_feature_store
from avshared.models import DecoderConfig, MaskedAutoencoder
from avshared.training.data import LoaderSettings, PretrainingDataModule, UnlabelledClipDataset
from avshared.training.phase import sized_model_config
from avshared.training.pretrain import pretrain_config, pretrain_encoders
from avshared.training.pretrain_module import MaskedAutoencoderModule

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_pretrain_config(tiny_defaults, tmp_path):
    """The pretraining configuration of conf/base (its pretrain block) over the tiny defaults, with
    a tiny decoder and ``epochs`` epochs."""
    pretrain = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_pretrain.yml").read_text())

    def make(epochs: int = 1, **overrides):
        block = copy.deepcopy(pretrain["pretrain"]) | {
            "decoder": {"dim": 16, "depth": 1, "heads": 2},
            "training": {
                "trainer": {"max_epochs": epochs},
                "checkpoint_dir": str(tmp_path / "pretrain_checkpoints"),
            },
        }
        return pretrain_config(tiny_defaults, block | overrides, str(tmp_path))

    return make


def _two_folds(split: pd.DataFrame) -> pd.DataFrame:
    """Fold 0: the corpus's split; fold 1: its test and train actors swapped."""
    swapped = split.assign(split=split["split"].replace({"train": "test", "test": "train"}))
    return pd.concat([split.assign(fold=0), swapped.assign(fold=1)], ignore_index=True)


def _pretrain(corpus, config, split=None, **kwargs):
    return pretrain_encoders(
        split=corpus.split if split is None else split,
        config=config,
        log_mel_spectrograms=corpus.log_mel_spectrograms,
        face_frames=corpus.face_frames,
        spectrogram_stats=corpus.spectrogram_stats,
        **kwargs,
    )


def test_the_lightning_module_takes_a_step_and_logs_each_senses_loss(corpus, make_pretrain_config):
    config = make_pretrain_config(contrastive={"weight": 0.5, "temperature": 0.1})
    model_config = sized_model_config(
        config, {"audio": corpus.log_mel_spectrograms, "video": corpus.face_frames}
    )
    torch.manual_seed(0)
    model = MaskedAutoencoder(
        "bimodal", model_config, DecoderConfig(16, 1, 2), contrastive_weight=0.5
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module = MaskedAutoencoderModule(
        model, corpus.spectrogram_stats, learning_rate=1e-3, implementation="for-loop"
    )
    clips = corpus.split.loc[corpus.split["split"] == "train", "clip_id"].tolist()[:8]
    data = PretrainingDataModule(
        UnlabelledClipDataset(clips, corpus.log_mel_spectrograms, corpus.face_frames),
        batch_size=4,
        seed=0,
        loader=LoaderSettings(),
    )
    trainer = L.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)

    logged = trainer.callback_metrics
    assert {"train_loss", "train_reconstruction_audio", "train_reconstruction_video"} <= set(logged)
    assert logged["train_contrastive"] > 0
    assert logged["train_loss"] == pytest.approx(
        float(
            logged["train_reconstruction_audio"]
            + logged["train_reconstruction_video"]
            + 0.5 * logged["train_contrastive"]
        ),
        rel=1e-5,
    )
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in changed)
    assert any(k.startswith("decoder.") for k in changed)


def test_each_fold_pretrains_on_its_own_training_clips_and_logs_a_run(
    corpus, make_pretrain_config, mlflow_phase_run
):
    config = make_pretrain_config()
    split = _two_folds(corpus.split)
    client, pretrain_run = mlflow_phase_run
    encoders, history, summary, examples = _pretrain(corpus, config, split, mlflow_run=pretrain_run)

    names = list(encoders.state_dict())
    for fold in (0, 1):
        train = split.loc[(split["fold"] == fold) & (split["split"] == "train"), "clip_id"]
        assert summary["per_fold"][str(fold)]["clips"] == train.tolist()
        assert set(summary["per_fold"][str(fold)]["autoencoders"]) == {
            "shared",
            "separate_audio",
            "separate_video",
        }
        assert f"fold_{fold}.shared.encoder.cls_token" in names
        assert f"fold_{fold}.separate.encoders.audio.cls_token" in names
        assert f"fold_{fold}.separate.embeddings.video.projection.weight" in names
    # One epoch of each autoencoder in each fold, on that fold's training clips.
    assert len(history) == 2 * 3
    clips = history["fold"].map(lambda fold: len(summary["per_fold"][str(fold)]["clips"]))
    assert history["train_samples"].tolist() == clips.tolist()
    audio_only = history.loc[history["autoencoder"] == "separate_audio"]
    assert audio_only["train_reconstruction_video"].isna().all()
    # The folds' encoders differ: each saw other clips.
    state = encoders.state_dict()
    assert not torch.equal(
        state["fold_0.shared.encoder.norm.weight"], state["fold_1.shared.encoder.norm.weight"]
    )
    assert not Path(config["checkpoint_dir"]).exists() or not any(
        Path(config["checkpoint_dir"]).rglob("*.ckpt")
    ), "a finished pretraining keeps no checkpoint"
    # The pictures: the first fold's first clips, for each autoencoder.
    assert examples["clip_ids"] == summary["per_fold"]["0"]["clips"][:2]
    assert examples["autoencoders"]["shared"]["video"]["reconstructed"].shape[0] == 2
    # MLflow: a run per fold nested in the pretraining run, with each autoencoder's curve in it.
    experiment = client.get_run(pretrain_run["run_id"]).info.experiment_id
    folds = {
        run.data.tags["fold"]: run
        for run in client.search_runs([experiment])
        if run.info.run_id != pretrain_run["run_id"]
    }
    assert sorted(folds) == ["0", "1"]
    for fold, run in folds.items():
        assert run.data.tags["mlflow.parentRunId"] == pretrain_run["run_id"]
        assert run.data.tags["phase"] == "pretrain"
        assert summary["per_fold"][fold]["mlflow_run_id"] == run.info.run_id
        for name in ("shared/train_loss", "separate_video/train_reconstruction_video"):
            assert len(client.get_metric_history(run.info.run_id, name)) == 1, name
    assert client.get_run(pretrain_run["run_id"]).data.tags["model_kinds"] == "shared+separate"


def test_extra_recordings_are_pretrained_on_in_every_fold(corpus, make_pretrain_config, tmp_path):
    extra_ids = [f"recording_{i}" for i in range(5)]
    train = corpus.split.loc[corpus.split["split"] == "train", "clip_id"].tolist()[:5]
    for name, store in (("log_mel", corpus.log_mel_spectrograms), ("faces", corpus.face_frames)):
        write_feature_store(
            tmp_path / f"extra_{name}",
            [(e, store.get(c)) for e, c in zip(extra_ids, train, strict=True)],
        )
    config = make_pretrain_config(model_kinds=["shared"])

    _, history, summary, _ = _pretrain(
        corpus,
        config,
        extra_log_mel_spectrograms=FeatureStore(tmp_path / "extra_log_mel"),
        extra_face_frames=FeatureStore(tmp_path / "extra_faces"),
    )

    clips = summary["per_fold"]["0"]["clips"]
    assert summary["per_fold"]["0"]["extra_clips"] == extra_ids
    assert history["train_samples"].tolist() == [len(clips) + 5]
    assert not set(extra_ids) & set(clips)


class InterruptAtEpoch(L.Callback):
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


def test_an_interrupted_pretraining_resumes_and_ends_as_an_uninterrupted_one(
    corpus, make_pretrain_config
):
    config = make_pretrain_config(epochs=2, model_kinds=["shared"])
    straight, straight_history, *_ = _pretrain(corpus, config)

    with pytest.raises(RuntimeError, match="simulated crash"):
        _pretrain(corpus, config, extra_callbacks=[InterruptAtEpoch(1)])
    assert (Path(config["checkpoint_dir"]) / "shared" / "last.ckpt").is_file()
    recorder = EpochRecorder()
    resumed, resumed_history, summary, _ = _pretrain(corpus, config, extra_callbacks=[recorder])

    assert recorder.epochs == [1]
    assert summary["per_fold"]["0"]["autoencoders"]["shared"]["resumed_from_epoch"] == 1
    pd.testing.assert_frame_equal(
        resumed_history.drop(columns="train_seconds"),
        straight_history.drop(columns="train_seconds"),
    )
    for name, weights in straight.state_dict().items():
        assert torch.equal(weights, resumed.state_dict()[name]), name
    assert not (Path(config["checkpoint_dir"]) / "shared").exists()
