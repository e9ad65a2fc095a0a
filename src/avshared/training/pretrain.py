"""Pretraining the encoders by masked autoencoding, once per fold of the split, on training clips.

What is pretrained follows ``pretrain.model_kinds`` (``AUTOENCODERS``): the shared encoder by one
autoencoder that sees both senses at once (``shared``); the separate-encoder baseline's two
encoders each by an autoencoder of its own sense (``separate_audio``, ``separate_video``), on the
same clips for the same epochs and optimiser steps, so that each encoder of either model gets the
same budget. Every autoencoder is built with the phases' model sizes (``training.defaults.model``
and the stored features' sizes), so its encoder and embeddings fit the classifiers.

The clips of fold k are the fold's ``train`` clips that have both features, plus the recordings of
``pretrain.extra_inputs`` (their own feature stores): never a clip of the fold's validation or test
actors, not even unlabelled. The audio is standardised with the fold's training statistics, as the
phase's fold k is. Each autoencoder trains through Lightning on the devices of
``training.defaults.trainer`` (``devices.trainer_settings``), resumes from its checkpoint after an
interruption (``checkpoints.PhaseCheckpoints``, under ``<checkpoint_dir>[/fold_<k>]/<autoencoder>``)
and logs its epochs to the pretraining run (``PhaseRunsHook``'s ``pretrain.mlflow_run``, or a run
per fold nested in it under k-fold) as ``<autoencoder>/<metric>``.

The result is one ``ModuleDict`` whose state_dict names each tensor
``fold_<k>.<model kind>.<classifier parameter>`` (``encoder.*`` and ``embeddings.<m>.*`` for the
shared kind, ``encoders.<m>.*`` and ``embeddings.<m>.*`` for the separate kind): what a phase's
fold k starts from with ``init: pretrain`` (``avshared.training.pretrained``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from avshared.features.store import FeatureStore
from avshared.models import DecoderConfig, MaskedAutoencoder, ModelConfig
from avshared.splits import fold_splits
from avshared.training import tracking
from avshared.training.callbacks import (
    EpochHistory,
    ReseedEveryEpoch,
    read_history,
    samples_per_second,
)
from avshared.training.checkpoints import LAST, PhaseCheckpoints, fingerprint, without_paths
from avshared.training.data import PretrainingDataModule, UnlabelledClipDataset
from avshared.training.devices import trainer_settings
from avshared.training.folds import fold_spectrogram_stats
from avshared.training.module import spectrogram_standardiser
from avshared.training.phase import (
    RESUME_INDEPENDENT,
    _known_warnings,
    data_source,
    sized_model_config,
)
from avshared.training.pretrain_module import PRETRAIN_METRICS, MaskedAutoencoderModule

logger = logging.getLogger(__name__)

PRETRAIN = "pretrain"
#: The autoencoders (name -> senses) that pretrain each model kind's encoders.
AUTOENCODERS: dict[str, dict[str, tuple[str, ...]]] = {
    "shared": {"shared": ("audio", "video")},
    "separate": {"separate_audio": ("audio",), "separate_video": ("video",)},
}
#: training.defaults keys a pretraining run takes (merged with pretrain.training).
TRAINING_KEYS: tuple[str, ...] = ("model", "optimiser", "trainer", "data", "checkpoint_dir")
#: pretrain keys the engine reads.
PRETRAIN_KEYS: tuple[str, ...] = (
    "seed",
    "model_kinds",
    "mask_ratio",
    "decoder",
    "contrastive",
    "extra_inputs",
    "figure_clips",
)
HISTORY_FILE = "history.json"

Examples = dict[str, Any]


def pretrain_config(
    defaults: Mapping[str, Any], pretrain: Mapping[str, Any], crema_d_root: str
) -> dict[str, Any]:
    """The pretraining configuration: ``TRAINING_KEYS`` of ``training.defaults`` with
    ``pretrain.training`` merged in (OmegaConf, key by key), the ``PRETRAIN_KEYS`` of
    ``pretrain``, and ``phase`` (pretrain), ``modalities`` and ``data_source`` (demo | crema-d)."""
    merged = OmegaConf.merge(
        OmegaConf.create(dict(defaults)), OmegaConf.create(dict(pretrain.get("training") or {}))
    )
    resolved: dict[str, Any] = OmegaConf.to_container(merged, resolve=True)  # type: ignore[assignment]
    return {
        **{key: resolved[key] for key in TRAINING_KEYS},
        **{key: pretrain[key] for key in PRETRAIN_KEYS},
        "phase": PRETRAIN,
        "modalities": ["audio", "video"],
        "data_source": data_source(crema_d_root),
    }


def pretrain_tags(config: Mapping[str, Any]) -> dict[str, str]:
    """Tags of the pretraining runs: phase, data (demo | crema-d), model kinds, mask ratio."""
    tags = {
        "phase": PRETRAIN,
        "data": config["data_source"],
        "model_kinds": "+".join(config["model_kinds"]),
        "mask_ratio": str(config["mask_ratio"]),
    }
    return tags | ({"fold": str(config["fold"])} if "fold" in config else {})


def clips_with_both(
    clip_ids: Sequence[str], audio: FeatureStore | None, video: FeatureStore | None
) -> list[str]:
    """The clips of ``clip_ids`` that both stores hold, in order (none without a store)."""
    if audio is None or video is None:
        return []
    return [clip_id for clip_id in clip_ids if clip_id in audio and clip_id in video]


def pretrain_encoders(
    *,
    split: pd.DataFrame,
    config: dict[str, Any],
    log_mel_spectrograms: FeatureStore,
    face_frames: FeatureStore,
    spectrogram_stats: dict[str, Any],
    extra_log_mel_spectrograms: FeatureStore | None = None,
    extra_face_frames: FeatureStore | None = None,
    mlflow_run: dict[str, str] | None = None,
    extra_callbacks: Sequence[Callback] = (),
) -> tuple[nn.ModuleDict, pd.DataFrame, dict[str, Any], Examples]:
    """Pretrain the encoders of ``config["model_kinds"]`` once per fold of ``split`` (module
    docstring). Returns the encoders and embeddings (``fold_<k>.<kind>.*``), the per-epoch history
    (fold, autoencoder, epoch, ``PRETRAIN_METRICS``, learning rate, throughput), the summary (model
    sizes, per fold the clips pretrained on, the statistics, epochs, final losses, MLflow run ids)
    and, for pictures, the first fold's reconstructions of ``config["figure_clips"]`` clips.
    ``extra_callbacks`` are added to Lightning's (tests use them to interrupt a run)."""
    stores = {"audio": log_mel_spectrograms, "video": face_frames}
    model_config = sized_model_config(config, stores)
    extra = (
        clips_with_both(
            extra_log_mel_spectrograms.clip_ids, extra_log_mel_spectrograms, extra_face_frames
        )
        if extra_log_mel_spectrograms is not None
        else []
    )
    folds = fold_splits(split)
    tracking.set_tags(mlflow_run, pretrain_tags(config))
    encoders, histories, per_fold, examples = {}, [], {}, {}
    for fold, fold_split in folds.items():
        fold_config = {**config, "fold": fold} if len(folds) > 1 else config
        train = fold_split.loc[fold_split["split"] == "train", "clip_id"]
        clips = clips_with_both(train.tolist(), log_mel_spectrograms, face_frames)
        stats = (
            spectrogram_stats
            if len(folds) == 1
            else fold_spectrogram_stats(spectrogram_stats, log_mel_spectrograms, fold_split)
        )
        sources = {"corpus": (stores, clips)}
        if extra:
            sources["extra"] = (
                {"audio": extra_log_mel_spectrograms, "video": extra_face_frames},
                extra,
            )
        run_context = (
            tracking.child_run(mlflow_run, f"pretrain fold {fold}", pretrain_tags(fold_config))
            if len(folds) > 1
            else nullcontext(mlflow_run)
        )
        with run_context as run:
            _log_parameters(run, fold_config, model_config, len(clips), len(extra))
            autoencoders, facts = {}, {}
            for name, modalities in _autoencoders(config["model_kinds"]).items():
                checkpoint_dir = Path(config["checkpoint_dir"])
                if len(folds) > 1:
                    checkpoint_dir /= f"fold_{fold}"
                model, rows, resumed = _train_autoencoder(
                    name,
                    modalities,
                    sources=sources,
                    config=fold_config,
                    model_config=model_config,
                    spectrogram_stats=stats,
                    mlflow_run=run,
                    checkpoint_dir=checkpoint_dir,
                    extra_callbacks=extra_callbacks,
                )
                autoencoders[name] = model
                histories.append(
                    pd.DataFrame(rows)
                    .assign(fold=fold, autoencoder=name)
                    .astype({"epoch": "int64"})
                )
                facts[name] = {
                    "modalities": list(modalities),
                    "epochs": len(rows),
                    "resumed_from_epoch": resumed,
                    "final_loss": rows[-1]["train_loss"],
                    "train_samples_per_s": samples_per_second(rows, resumed),
                }
        if not examples:
            examples = _reconstructions(autoencoders, sources["corpus"], stats, config)
        encoders[f"fold_{fold}"] = nn.ModuleDict(
            {kind: classifier_weights(kind, autoencoders) for kind in config["model_kinds"]}
        )
        per_fold[str(fold)] = {
            "clips": clips,
            "extra_clips": extra,
            "spectrogram_stats": stats,
            "autoencoders": facts,
            **_run_ids(run),
        }
        logger.info(
            "Pretraining fold %d: %s on %d clips (+%d extra)",
            fold,
            ", ".join(f"{n} loss {f['final_loss']:.3f}" for n, f in facts.items()),
            len(clips),
            len(extra),
        )
    summary = {
        "phase": PRETRAIN,
        "data_source": config["data_source"],
        **_run_ids(mlflow_run),
        "model_kinds": list(config["model_kinds"]),
        "model_config": model_config.to_dict(),
        "folds": len(folds),
        "per_fold": per_fold,
        "config": config,
    }
    history = pd.concat(histories, ignore_index=True)
    leading = ["fold", "autoencoder", "epoch"]
    return (
        nn.ModuleDict(encoders),
        history.loc[:, [*leading, *(c for c in history.columns if c not in leading)]],
        summary,
        examples,
    )


def _autoencoders(model_kinds: Sequence[str]) -> dict[str, tuple[str, ...]]:
    return {name: senses for kind in model_kinds for name, senses in AUTOENCODERS[kind].items()}


def classifier_weights(kind: str, autoencoders: Mapping[str, MaskedAutoencoder]) -> nn.ModuleDict:
    """The pretrained encoder(s) and embeddings of model ``kind``, under the names of that
    classifier's parameters (``encoder``/``encoders.<m>`` and ``embeddings.<m>``)."""
    if kind == "shared":
        shared = autoencoders["shared"]
        return nn.ModuleDict({"encoder": shared.encoder, "embeddings": shared.embeddings})
    per_sense = {name.removeprefix("separate_"): autoencoders[name] for name in AUTOENCODERS[kind]}
    return nn.ModuleDict(
        {
            "encoders": nn.ModuleDict({m: a.encoder for m, a in per_sense.items()}),
            "embeddings": nn.ModuleDict({m: a.embeddings[m] for m, a in per_sense.items()}),
        }
    )


def _dataset(
    sources: Mapping[str, tuple[Mapping[str, FeatureStore | None], list[str]]],
    modalities: Sequence[str],
) -> Dataset:
    parts = [
        UnlabelledClipDataset(clips, **{m: stores[m] for m in modalities})
        for stores, clips in sources.values()
    ]
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def _train_autoencoder(
    name: str,
    modalities: tuple[str, ...],
    *,
    sources: Mapping[str, tuple[Mapping[str, FeatureStore | None], list[str]]],
    config: Mapping[str, Any],
    model_config: ModelConfig,
    spectrogram_stats: Mapping[str, Any],
    mlflow_run: Mapping[str, str] | None,
    checkpoint_dir: Path,
    extra_callbacks: Sequence[Callback],
) -> tuple[MaskedAutoencoder, list[dict[str, float]], int | None]:
    """One autoencoder trained to ``max_epochs`` (resumed when an interrupted run of the same
    description left a checkpoint); returns it, its history rows and the epoch it resumed from."""
    settings = trainer_settings(config["trainer"], config["data"])
    description = {
        "config": without_paths(config, RESUME_INDEPENDENT),
        "model": model_config.to_dict(),
        "autoencoder": name,
        "clips": {source: clips for source, (_, clips) in sources.items()},
    }
    checkpoints = PhaseCheckpoints(checkpoint_dir, name, fingerprint(description))
    resume_from = checkpoints.decide_resume()
    L.seed_everything(config["seed"], workers=True, verbose=False)
    model = MaskedAutoencoder(
        modalities,
        model_config,
        DecoderConfig(**config["decoder"]),
        mask_ratio=config["mask_ratio"],
        contrastive_weight=config["contrastive"]["weight"],
        temperature=config["contrastive"]["temperature"],
    )
    module = MaskedAutoencoderModule(
        model, spectrogram_stats if "audio" in modalities else None, **config["optimiser"]
    )
    data = PretrainingDataModule(
        _dataset(sources, modalities),
        batch_size=settings.batch_size_per_process,
        seed=config["seed"],
        loader=settings.loader,
    )
    run_logger = tracking.phase_logger(mlflow_run)
    trainer = L.Trainer(
        **settings.trainer_kwargs(),
        max_epochs=config["trainer"]["max_epochs"],
        gradient_clip_val=config["trainer"]["gradient_clip_val"],
        deterministic=config["trainer"]["deterministic"],
        callbacks=[
            ReseedEveryEpoch(config["seed"]),
            EpochHistory(
                checkpoints.directory / HISTORY_FILE, PRETRAIN_METRICS, log_prefix=f"{name}/"
            ),
            *extra_callbacks,
            # No validation clips: the model is the last epoch's, written over one file every
            # epoch (the resume point too).
            ModelCheckpoint(
                dirpath=checkpoints.directory, filename=LAST, enable_version_counter=False
            ),
        ],
        logger=run_logger if run_logger is not None else False,
        enable_progress_bar=config["trainer"]["progress_bar"],
        enable_model_summary=False,
        default_root_dir=checkpoints.directory,
    )
    with _known_warnings():
        trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    # Under ddp_spawn the processes that trained have ended; the checkpoint is on disk.
    last = torch.load(checkpoints.last, map_location="cpu", weights_only=True)
    module.load_state_dict(last["state_dict"])
    trainer.strategy.barrier("history written")
    rows, resumed_from_epoch = read_history(checkpoints.directory / HISTORY_FILE)
    trainer.strategy.barrier("history and checkpoint read")
    if trainer.is_global_zero:
        checkpoints.clear()
    return model.cpu().eval(), rows, resumed_from_epoch


def _log_parameters(
    mlflow_run: Mapping[str, str] | None,
    config: Mapping[str, Any],
    model_config: ModelConfig,
    clips: int,
    extra_clips: int,
) -> None:
    run_logger = tracking.phase_logger(mlflow_run)
    if run_logger is not None:
        run_logger.log_hyperparams(
            {
                **config,
                "model": {**config["model"], **model_config.to_dict()},
                "clips": clips,
                "extra_clips": extra_clips,
            }
        )


def _reconstructions(
    autoencoders: Mapping[str, MaskedAutoencoder],
    source: tuple[Mapping[str, FeatureStore | None], list[str]],
    spectrogram_stats: Mapping[str, Any],
    config: Mapping[str, Any],
) -> Examples:
    """Each autoencoder's pictures (``MaskedAutoencoder.reconstruct``) of the first
    ``figure_clips`` clips, masked with the seed's generator, as numpy arrays."""
    stores, clips = source
    shown = clips[: config["figure_clips"]]
    items = UnlabelledClipDataset(shown, **stores)
    batch = {m: torch.stack([items[i][m] for i in range(len(items))]) for m in stores}
    mean, std = spectrogram_standardiser(spectrogram_stats)
    batch["audio"] = (batch["audio"].float() - mean) / std
    pictures = {}
    for name, autoencoder in autoencoders.items():
        inputs = {m: batch[m] for m in autoencoder.modalities}
        generator = torch.Generator().manual_seed(config["seed"])
        made = autoencoder.reconstruct(**inputs, generator=generator)
        pictures[name] = {
            m: {kind: picture.numpy().astype(np.float32) for kind, picture in views.items()}
            for m, views in made.items()
        }
    return {"clip_ids": shown, "autoencoders": pictures, "data_source": config["data_source"]}


def _run_ids(mlflow_run: Mapping[str, str] | None) -> dict[str, str | None]:
    return {
        "mlflow_run_id": mlflow_run["run_id"] if mlflow_run else None,
        "mlflow_tracking_uri": mlflow_run["tracking_uri"] if mlflow_run else None,
    }
