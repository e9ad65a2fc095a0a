"""One model of a phase (one cell of its grid, ``cells``): its configuration, targets, training and
evaluation, which the training template's nodes call through ``folds``.

config -> targets -> trained model + history + training summary -> test predictions + metrics.
Features and targets always meet by clip id. The training summary holds what reloading the model
needs (kind, modalities, sizes, spectrogram statistics), so evaluation runs from the catalog alone
(``kedro run --pipelines=<phase> --tags=evaluate,gather``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from avshared.crema_d import EMOTIONS, PROBABILITY_COLUMNS, SPLITS, is_demo_root
from avshared.evaluation.scoring import classification_scores
from avshared.features.store import FeatureStore
from avshared.models import (
    ModelConfig,
    build_model,
    count_parameters,
    restore_model,
)
from avshared.training import tracking
from avshared.training.callbacks import (
    EarlyStoppingAfterWarmUp,
    EpochHistory,
    ReseedEveryEpoch,
    read_history,
    samples_per_second,
)
from avshared.training.checkpoints import BEST, PhaseCheckpoints, fingerprint, without_paths
from avshared.training.data import (
    TARGET_COLUMNS,
    ClipDataModule,
    ClipDataset,
    select_clips_with_features,
    target_indices,
)
from avshared.training.devices import TrainerSettings, trainer_settings
from avshared.training.module import EmotionClassifierModule
from avshared.training.pretrained import InitialWeights, apply_initial_weights
from avshared.training.schema import MONITOR_MODES, resume_independent_paths
from avshared.training.strategies import TRAINING_STRATEGIES, training_strategy

logger = logging.getLogger(__name__)

#: The feature dataset each modality is read from.
FEATURE_DATASETS: dict[str, str] = {"audio": "log_mel_spectrograms", "video": "face_frames"}
#: Parameters that do not change what a run computes (marked in the schema): a run may resume
#: across changes to them.
RESUME_INDEPENDENT: tuple[tuple[str, ...], ...] = resume_independent_paths()
HISTORY_FILE = "history.json"
#: What a test prediction's ``condition`` says about the inputs the model was given.
CONDITIONS: dict[tuple[str, ...], str] = {
    ("audio", "video"): "audiovisual",
    ("audio",): "audio_only",
    ("video",): "video_only",
}


def data_source(crema_d_root: str) -> str:
    """``demo`` when the root holds the demo generator's marker file, else ``crema-d``."""
    return "demo" if is_demo_root(crema_d_root) else "crema-d"


def phase_config(
    defaults: dict[str, Any],
    overrides: dict[str, Any],
    crema_d_root: str,
    *,
    phase: str,
    modalities: Sequence[str],
    seeds: Sequence[int],
) -> dict[str, Any]:
    """One phase's training configuration: the shared defaults with the phase's overrides merged in
    (OmegaConf, key by key), and the phase's ``modalities`` (fixed by PHASE_MODALITIES).

    Adds ``phase``, ``modalities``, ``data_source`` (demo | crema-d) and ``seeds``
    (``training.seeds``: the phase trains once per seed and fold, ``avshared.training.cells``). The
    values are checked against ``avshared.training.schema`` once, when the pipeline starts
    (avshared.parameters).
    """
    merged = OmegaConf.merge(OmegaConf.create(defaults), OmegaConf.create(overrides or {}))
    config: dict[str, Any] = OmegaConf.to_container(merged, resolve=True)  # type: ignore[assignment]
    config["modalities"] = list(modalities)
    config["phase"] = phase
    config["data_source"] = data_source(crema_d_root)
    config["seeds"] = [int(seed) for seed in seeds]
    return config


def _model_config(model: Mapping[str, Any], **sizes: int) -> ModelConfig:
    fields = {key: value for key, value in model.items() if key not in ("kind", "preset")}
    return ModelConfig.preset(model["preset"], **fields, **sizes)


def build_targets(
    clip_manifest: pd.DataFrame,
    crowd_labels: pd.DataFrame,
    split: pd.DataFrame,
    config: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per clip to learn from: clip_id, actor, sentence, emotion, level, split, target,
    p_ANG..p_SAD (the target distribution), sorted by clip_id.

    ``acted``: the emotion of the file name (one-hot). ``perceived_majority``: the crowd's majority
    emotion for ``rating_modality`` (one-hot); clips whose vote is tied are dropped.
    ``perceived_soft``: the crowd's vote distribution; ``target`` is the untied majority (missing
    for a tie, so such clips train but are not scored). Returns also a summary: clips kept and
    dropped per split.
    """
    kind, rating_modality = config["target"]["kind"], config["target"]["rating_modality"]
    clips = split.loc[:, ["clip_id", "split"]].merge(
        clip_manifest.loc[:, ["clip_id", "actor", "sentence", "emotion", "level"]],
        on="clip_id",
        how="inner",
        validate="one_to_one",
    )
    dropped: dict[str, dict[str, int]] = {}
    if kind == "acted":
        clips["target"] = clips["emotion"]
        distribution = _one_hot(clips["target"])
    else:
        ratings = crowd_labels.loc[
            crowd_labels["modality"] == rating_modality,
            ["clip_id", "majority_emotion", *TARGET_COLUMNS],
        ]
        rated = clips.merge(ratings, on="clip_id", how="left", validate="one_to_one")
        unrated = rated["majority_emotion"].isna() & rated[TARGET_COLUMNS[0]].isna()
        dropped["unrated"] = _count_by_split(rated.loc[unrated])
        rated = rated.loc[~unrated]
        if kind == "perceived_majority":
            tied = rated["majority_emotion"].isna()
            dropped["tied_vote"] = _count_by_split(rated.loc[tied])
            rated = rated.loc[~tied]
        clips = rated.rename(columns={"majority_emotion": "target"}).reset_index(drop=True)
        distribution = (
            clips.loc[:, list(TARGET_COLUMNS)].to_numpy(np.float32)
            if kind == "perceived_soft"
            else _one_hot(clips["target"])
        )
    targets = clips.loc[:, ["clip_id", "actor", "sentence", "emotion", "level", "split", "target"]]
    targets[list(TARGET_COLUMNS)] = distribution
    targets = targets.sort_values("clip_id", ignore_index=True)
    summary = {
        "kind": kind,
        "rating_modality": rating_modality if kind != "acted" else None,
        "clips": _count_by_split(targets),
        "dropped": dropped,
    }
    for reason, counts in dropped.items():
        if sum(counts.values()):
            logger.warning("%s targets: dropped %s clips (%s) per split", kind, reason, counts)
    return targets, summary


def _one_hot(emotions: pd.Series) -> np.ndarray:
    return (emotions.to_numpy()[:, None] == np.array(EMOTIONS)[None, :]).astype(np.float32)


def _count_by_split(rows: pd.DataFrame) -> dict[str, int]:
    counts = rows["split"].value_counts()
    return {split: int(counts.get(split, 0)) for split in SPLITS}


def _feature_stores(
    config: Mapping[str, Any],
    log_mel_spectrograms: FeatureStore | None,
    face_frames: FeatureStore | None,
) -> dict[str, FeatureStore]:
    given = {"audio": log_mel_spectrograms, "video": face_frames}
    missing = [FEATURE_DATASETS[m] for m in config["modalities"] if given[m] is None]
    if missing:
        raise ValueError(
            f"phase {config['phase']!r} trains on {config['modalities']} but was not given "
            f"{missing}: the phase's pipeline passes the features of PHASE_MODALITIES "
            "(avshared/training/phases.py); call the node with them"
        )
    return {m: given[m] for m in config["modalities"]}


def sized_model_config(
    config: Mapping[str, Any], stores: Mapping[str, FeatureStore]
) -> ModelConfig:
    """The ModelConfig of ``config["model"]`` with the input sizes of the stored features."""
    sizes: dict[str, int] = {}
    if "audio" in stores:
        _, n_mels, frames = stores["audio"].item_shape
        sizes |= {"n_mels": n_mels, "audio_frames": frames}
    if "video" in stores:
        frames, _, height, _ = stores["video"].item_shape
        sizes |= {"video_frames": frames, "image_size": height}
    return _model_config(config["model"], **sizes)


def without_resume_independent(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` without the parameters that do not change what a run computes
    (``RESUME_INDEPENDENT``: checkpoint folder, loader workers, progress bar)."""
    return without_paths(config, RESUME_INDEPENDENT)


def _resume_description(
    config: Mapping[str, Any], model_config: ModelConfig, targets: pd.DataFrame
) -> dict[str, Any]:
    return {
        "config": without_resume_independent(config),
        "model": model_config.to_dict(),
        "clips": targets.loc[targets["split"] != "test", ["clip_id", "split"]].values.tolist(),
    }


def _phase_module(
    config: Mapping[str, Any], model_config: ModelConfig, spectrogram_stats: Mapping | None
) -> EmotionClassifierModule:
    """The seeded model in its Lightning module (same initial weights in every process)."""
    L.seed_everything(config["seed_value"], workers=True, verbose=False)
    model = build_model(config["model"]["kind"], config["modalities"], model_config)
    strategy = training_strategy(config["strategy"], model, config["modalities"], config["seed"])
    return EmotionClassifierModule(
        model, config["modalities"], spectrogram_stats, **config["optimiser"], strategy=strategy
    )


def _trainer(
    config: Mapping[str, Any],
    settings: TrainerSettings,
    checkpoints: PhaseCheckpoints,
    run_logger: MLFlowLogger | None,
    callbacks: Sequence[Callback],
) -> L.Trainer:
    trainer = config["trainer"]
    monitor = trainer["early_stopping"]["monitor"]
    return L.Trainer(
        **settings.trainer_kwargs(),
        max_epochs=trainer["max_epochs"],
        min_epochs=trainer["min_epochs"],
        gradient_clip_val=trainer["gradient_clip_val"],
        deterministic=trainer["deterministic"],
        callbacks=[
            ReseedEveryEpoch(config["seed_value"]),
            EpochHistory(checkpoints.directory / HISTORY_FILE),
            *callbacks,
            EarlyStoppingAfterWarmUp(
                start_epoch=trainer["min_epochs"],
                monitor=monitor,
                mode=MONITOR_MODES[monitor],
                patience=trainer["early_stopping"]["patience"],
            ),
            ModelCheckpoint(
                dirpath=checkpoints.directory,
                filename=BEST,
                monitor=monitor,
                mode=MONITOR_MODES[monitor],
                save_last=True,
                enable_version_counter=False,
            ),
        ],
        logger=run_logger if run_logger is not None else False,
        enable_progress_bar=trainer["progress_bar"],
        enable_model_summary=False,
        default_root_dir=checkpoints.directory,
    )


@contextmanager
def _known_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        # The folder holds this run's fingerprint (and, when resuming, its checkpoints).
        warnings.filterwarnings("ignore", "Checkpoint directory .* is not empty")
        # Lightning 2.6 on torch 2.14 warns once per batch about torch's own pytree API.
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)`", FutureWarning)
        # The module standardises batches on the device, by design, whatever the data module.
        warnings.filterwarnings("ignore", "You have overridden `on_after_batch_transfer`")
        yield


def _fit(
    trainer: L.Trainer,
    module: EmotionClassifierModule,
    data: ClipDataModule,
    resume_from: Path | None,
) -> int:
    """Fit, then load the best checkpoint into ``module``; returns the best epoch."""
    with _known_warnings():
        trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    # Under ddp_spawn the processes that trained have ended; the checkpoint is on disk.
    best = torch.load(
        trainer.checkpoint_callback.best_model_path, map_location="cpu", weights_only=True
    )
    module.load_state_dict(best["state_dict"])
    return int(best["epoch"])


def train_model(
    *,
    targets: pd.DataFrame,
    target_summary: dict[str, Any],
    config: dict[str, Any],
    mlflow_run: dict[str, str] | None = None,
    log_mel_spectrograms: FeatureStore | None = None,
    spectrogram_stats: dict[str, Any] | None = None,
    face_frames: FeatureStore | None = None,
    extra_callbacks: Sequence[Callback] = (),
    initial_weights: InitialWeights | None = None,
) -> tuple[nn.Module, pd.DataFrame, dict[str, Any]]:
    """Train one model of the phase on the train split, early-stopped on the val split, on the
    devices and nodes of ``config["trainer"]``; resume from its checkpoint when an earlier run of it
    was interrupted. Logs to ``mlflow_run`` (the phase's or the cell's MLflow run) if given.

    ``config`` is a cell's configuration (``avshared.training.cells.cell_config``): the phase's,
    with the cell's ``fold``, ``seed`` (an index into ``seeds``), ``seed_value`` (which seeds the
    initial weights, the training order and dropout) and its own ``checkpoint_dir``.

    Returns the best model (by ``early_stopping.monitor``; the catalog stores its state_dict), the
    per-epoch history (epoch, train/val loss and accuracy, for two modalities also
    ``val_accuracy_audio`` and ``val_accuracy_video``, learning rate, throughput) and the
    training summary: what reloading the model needs (``model_kind``, ``modalities``,
    ``model_config``, ``spectrogram_stats``), the phase configuration, parameter count, epochs,
    throughput, devices, clip counts and the MLflow run id. ``extra_callbacks`` are added to
    Lightning's (tests use them to interrupt a run). ``initial_weights`` (``pretrained``) are
    loaded into the seeded model; the summary's ``initialisation`` says what was loaded.
    """
    stores = _feature_stores(config, log_mel_spectrograms, face_frames)
    targets, without_features = select_clips_with_features(targets, list(stores.values()))
    if sum(without_features.values()):
        logger.warning("Clips without features, left out per split: %s", without_features)
    model_config = sized_model_config(config, stores)
    if initial_weights is not None:  # other starting weights: another run to resume
        config = {**config, "initial_weights": initial_weights.identity}
    strategy = TRAINING_STRATEGIES[config["strategy"]["kind"]]
    settings = trainer_settings(
        config["trainer"],
        config["data"],
        find_unused_parameters=not strategy.every_step_uses_every_parameter,
    )
    checkpoints = PhaseCheckpoints(
        config["checkpoint_dir"],
        config["phase"],
        fingerprint(_resume_description(config, model_config, targets)),
    )
    # Under torchrun / srun every rank runs this node: rank 0 decides, the others are told.
    resume_from = checkpoints.decide_resume()
    stats = spectrogram_stats if "audio" in stores else None
    module = _phase_module(config, model_config, stats)
    initialisation = apply_initial_weights(module.model, initial_weights)
    data = ClipDataModule(
        targets,
        audio=stores.get("audio"),
        video=stores.get("video"),
        batch_size=settings.batch_size_per_process,
        seed=config["seed_value"],
        loader=settings.loader,
    )
    run_logger = tracking.phase_logger(mlflow_run)
    param_count = count_parameters(module.model)
    if run_logger is not None:
        tracking.log_phase_start(
            run_logger,
            config,
            {
                **config,
                "model": {**config["model"], **model_config.to_dict()},
                "targets": target_summary,
                "clips_without_features": without_features,
                "param_count": param_count,
                "world_size": settings.world_size,
            },
        )
    trainer = _trainer(config, settings, checkpoints, run_logger, extra_callbacks)
    best_epoch = _fit(trainer, module, data, resume_from)
    # With processes a cluster launcher started (a no-op otherwise): rank 0 has written the history
    # before anyone reads it, and everyone has read it and the checkpoint before rank 0 clears.
    trainer.strategy.barrier("history written")
    rows, resumed_from_epoch = read_history(checkpoints.directory / HISTORY_FILE)
    trainer.strategy.barrier("history and checkpoint read")
    if trainer.is_global_zero:
        checkpoints.clear()
    summary = {
        "phase": config["phase"],
        "data_source": config["data_source"],
        "mlflow_run_id": mlflow_run["run_id"] if mlflow_run else None,
        "mlflow_tracking_uri": mlflow_run["tracking_uri"] if mlflow_run else None,
        "model_kind": config["model"]["kind"],
        "modalities": config["modalities"],
        "model_config": model_config.to_dict(),
        "spectrogram_stats": stats,
        "param_count": param_count,
        "epochs": len(rows),
        "best_epoch": best_epoch,
        "resumed_from_epoch": resumed_from_epoch,
        "train_samples_per_s": samples_per_second(rows, resumed_from_epoch),
        "devices": {
            "accelerator": settings.accelerator,
            "devices": settings.devices,
            "num_nodes": settings.num_nodes,
            "precision": settings.precision,
        },
        "clips": _count_by_split(targets),
        "clips_without_features": without_features,
        "targets": target_summary,
        "initialisation": initialisation,
        "config": config,
    }
    logger.info(
        "Phase %s: %d epochs (best %d) on %d %s process(es), %.1f training samples/s",
        config["phase"],
        summary["epochs"],
        best_epoch,
        settings.world_size,
        settings.accelerator,
        summary["train_samples_per_s"],
    )
    history = pd.DataFrame(rows).astype({"epoch": "int64"})
    return module.model.cpu(), history, summary


def load_trained_model(
    model_weights: Mapping[str, torch.Tensor], training_summary: Mapping[str, Any]
) -> nn.Module:
    """Rebuild a phase's trained model from the catalog alone: its weights and training summary.

    Refuses weights of another model configuration, naming the mismatch.
    """
    if "per_cell" in training_summary:
        raise ValueError(
            f"phase {training_summary['phase']!r} trained {len(training_summary['per_cell'])} "
            "models, one per fold and seed: load one with avshared.training.folds.load_fold_model"
        )
    return restore_model(
        training_summary["model_kind"],
        training_summary["modalities"],
        training_summary["model_config"],
        model_weights,
    )


def _conditions(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Input sets to test: all the phase's modalities, then each alone when there are two."""
    full = tuple(modalities)
    return [full] + ([(m,) for m in full] if len(full) > 1 else [])


def score_predictions(rows: pd.DataFrame) -> dict[str, float]:
    """Accuracy, macro-F1 and UAR (over the emotions present) of predictions against targets."""
    scores = classification_scores(rows["target"], rows["predicted"])
    return {f"test_{name}": scores[name] for name in ("accuracy", "macro_f1", "uar")}


def _evaluation_trainer(training_summary: Mapping[str, Any]) -> L.Trainer:
    """One device of the accelerator the phase trained on (a GPU when there is one)."""
    config = training_summary["config"]
    single = {**config["trainer"], "devices": 1, "num_nodes": 1, "strategy": "auto"}
    settings = trainer_settings(single, {**config["data"], "num_workers": 0})
    return L.Trainer(
        accelerator=settings.accelerator,
        devices=1,
        precision=settings.precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


def evaluate_model(
    *,
    model_weights: dict[str, torch.Tensor],
    targets: pd.DataFrame,
    training_summary: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predict the test split under every input condition with Lightning on the accelerator, and
    score it. Needs only what the catalog holds (weights, training summary, targets, features).

    Returns the predictions, one row per test clip and condition: condition (audiovisual |
    audio_only | video_only: the inputs given), clip_id, actor, emotion (acted), level, target and
    predicted (class indices into crema_d.EMOTIONS), p_ANG..p_SAD (predicted probabilities); and
    the metrics: test accuracy, macro-F1 and UAR of the phase's full input condition, the same per
    condition, parameter count, training samples/s, epochs, phase, data source and demo flag.
    Test clips without a single-label target (a tied crowd vote under ``perceived_soft``) are not
    predicted; ``test_clips_unscored`` counts them.
    """
    config = training_summary["config"]
    test, unscored = _scored_clips(targets, "test", config, log_mel_spectrograms, face_frames)
    if test.empty:
        raise ValueError(
            "no test clips with features and a target: check the split dataset, the features "
            "report and the target parameters"
        )
    predictions = _predict_conditions(
        model_weights, test, training_summary, log_mel_spectrograms, face_frames
    )
    per_condition = {
        condition: score_predictions(rows)
        for condition, rows in predictions.groupby("condition", sort=False)
    }
    main = CONDITIONS[tuple(config["modalities"])]
    metrics = {
        "phase": config["phase"],
        "data": config["data_source"],
        "demo": config["data_source"] == "demo",
        "modalities": config["modalities"],
        "model_kind": config["model"]["kind"],
        "target": config["target"]["kind"],
        "condition": main,
        **per_condition[main],
        "conditions": per_condition,
        "test_clips": len(test),
        "test_clips_unscored": unscored,
        "param_count": training_summary["param_count"],
        "train_samples_per_s": training_summary["train_samples_per_s"],
        "epochs": training_summary["epochs"],
        "best_epoch": training_summary["best_epoch"],
        "mlflow_run_id": training_summary["mlflow_run_id"],
    }
    logger.info(
        "Phase %s test (%s%s): accuracy %.3f, macro-F1 %.3f, UAR %.3f",
        config["phase"],
        main,
        ", DEMO data" if metrics["demo"] else "",
        metrics["test_accuracy"],
        metrics["test_macro_f1"],
        metrics["test_uar"],
    )
    return predictions, metrics


def predict_validation(
    *,
    model_weights: dict[str, torch.Tensor],
    targets: pd.DataFrame,
    training_summary: dict[str, Any],
    log_mel_spectrograms: FeatureStore | None = None,
    face_frames: FeatureStore | None = None,
) -> pd.DataFrame:
    """The validation clips' predictions, in the columns of ``evaluate_model``'s: what a choice
    made after training (the mixing weight of an ensemble of phases) is made on, never the test
    clips. Empty when the split has no validation clips."""
    config = training_summary["config"]
    val, _ = _scored_clips(targets, "val", config, log_mel_spectrograms, face_frames)
    if val.empty:
        return pd.DataFrame(columns=[*PREDICTION_COLUMNS, *PROBABILITY_COLUMNS])
    return _predict_conditions(
        model_weights, val, training_summary, log_mel_spectrograms, face_frames
    )


#: The columns of a prediction table before the class probabilities.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "condition",
    "clip_id",
    "actor",
    "emotion",
    "level",
    "target",
    "predicted",
)


def _scored_clips(
    targets: pd.DataFrame,
    split: str,
    config: Mapping[str, Any],
    log_mel_spectrograms: FeatureStore | None,
    face_frames: FeatureStore | None,
) -> tuple[pd.DataFrame, int]:
    """The clips of ``split`` with features and a single-label target, and how many lack one (a
    tied crowd vote under ``perceived_soft``)."""
    stores = _feature_stores(config, log_mel_spectrograms, face_frames)
    rows, _ = select_clips_with_features(
        targets.loc[targets["split"] == split], list(stores.values())
    )
    unscored = int(rows["target"].isna().sum())
    return rows.loc[rows["target"].notna()].reset_index(drop=True), unscored


def _predict_conditions(
    model_weights: Mapping[str, torch.Tensor],
    clips: pd.DataFrame,
    training_summary: Mapping[str, Any],
    log_mel_spectrograms: FeatureStore | None,
    face_frames: FeatureStore | None,
) -> pd.DataFrame:
    """``clips`` predicted under every input condition of the phase, one row per clip and
    condition (``PREDICTION_COLUMNS`` and the class probabilities)."""
    config = training_summary["config"]
    stores = _feature_stores(config, log_mel_spectrograms, face_frames)
    model = load_trained_model(model_weights, training_summary)
    module = EmotionClassifierModule(
        model, config["modalities"], training_summary["spectrogram_stats"]
    )
    loader = DataLoader(
        ClipDataset(clips, stores.get("audio"), stores.get("video")),
        batch_size=config["data"]["batch_size"],
    )
    trainer = _evaluation_trainer(training_summary)
    tables = []
    for given in _conditions(config["modalities"]):
        module.predict_modalities = given
        with _known_warnings():
            batches = trainer.predict(module, dataloaders=loader)
        probabilities = torch.cat(batches).cpu().numpy()
        table = clips.loc[:, ["clip_id", "actor", "emotion", "level"]]
        table.insert(0, "condition", CONDITIONS[given])
        table["target"] = target_indices(clips)
        table["predicted"] = probabilities.argmax(axis=1).astype(np.int64)
        table[list(PROBABILITY_COLUMNS)] = probabilities
        tables.append(table)
    return pd.concat(tables, ignore_index=True)
