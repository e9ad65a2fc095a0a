"""Nodes of the ``pretrain`` pipeline: its configuration, the extra recordings, the pretraining
itself (``avshared.training.pretrain``) and the figure of its reconstructions."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from avshared.features.store import FeatureStore
from avshared.inference.prediction import find_media_inputs
from avshared.training import pretrain as engine

logger = logging.getLogger(__name__)

#: The columns the features pipeline's extraction nodes read (as a clip manifest's).
RECORDING_COLUMNS: list[str] = ["clip_id", "audio_path", "video_path"]


def resolve_pretrain_config(
    defaults: dict[str, Any], pretrain: dict[str, Any], crema_d_root: str
) -> dict[str, Any]:
    """``training.defaults`` with ``pretrain.training`` merged in, and the pretraining options."""
    return engine.pretrain_config(defaults, pretrain, crema_d_root)


def find_extra_recordings(extra_inputs: str | None) -> pd.DataFrame:
    """The recordings at ``pretrain.extra_inputs`` (a folder, file or glob; none when null) with
    both a picture and a sound, as a manifest for the features pipeline's extraction: clip_id
    (the recording's name, as the predict pipeline names it: the stem of a WAV + video pair, else
    the file's path), audio_path and video_path (a video file's own audio track, or the WAV beside
    it with the same stem). Recordings without both, or unreadable, are left out (logged)."""
    if not extra_inputs:
        return pd.DataFrame(columns=RECORDING_COLUMNS)
    found = find_media_inputs(str(extra_inputs))
    usable = [r for r in found if not r.problem and r.audio_path and r.video_path]
    if len(usable) < len(found):
        logger.warning(
            "pretrain.extra_inputs: %d of %d recordings left out (no video, or a problem): %s",
            len(found) - len(usable),
            len(found),
            [r.name for r in found if r not in usable][:5],
        )
    logger.info("pretrain.extra_inputs: %d recordings at %s", len(usable), extra_inputs)
    return pd.DataFrame(
        [(r.name, r.audio_path, r.video_path) for r in usable], columns=RECORDING_COLUMNS
    )


def pretrain_encoders(
    *,
    split: pd.DataFrame,
    config: dict[str, Any],
    log_mel_spectrograms: FeatureStore,
    face_frames: FeatureStore,
    spectrogram_stats: dict[str, Any],
    extra_log_mel_spectrograms: FeatureStore,
    extra_face_frames: FeatureStore,
    mlflow_run: dict[str, str] | None = None,
) -> tuple[nn.Module, pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """The pretrained encoders and embeddings (per fold and model kind), the per-epoch history,
    the summary (with the clips each fold pretrained on) and the reconstructions to plot."""
    return engine.pretrain_encoders(
        split=split,
        config=config,
        log_mel_spectrograms=log_mel_spectrograms,
        face_frames=face_frames,
        spectrogram_stats=spectrogram_stats,
        extra_log_mel_spectrograms=extra_log_mel_spectrograms,
        extra_face_frames=extra_face_frames,
        mlflow_run=mlflow_run,
    )


def plot_reconstructions(reconstructions: dict[str, Any]) -> Figure:
    """A row per autoencoder, clip and sense: the input, what the encoder saw (hidden patches
    blank) and the reconstruction (predicted hidden patches beside the visible ones). Face
    frames: the middle frame; spectrograms standardised, frames in [0, 1]."""
    rows = [
        (name, index, clip_id, modality, views)
        for name, senses in reconstructions["autoencoders"].items()
        for index, clip_id in enumerate(reconstructions["clip_ids"])
        for modality, views in senses.items()
    ]
    columns = ("original", "masked", "reconstructed")
    figure = Figure(figsize=(9, 1.8 * len(rows) + 0.6), layout="constrained")
    axes = figure.subplots(len(rows), len(columns), squeeze=False)
    for row, (name, index, clip_id, modality, views) in zip(axes, rows, strict=True):
        for ax, column in zip(row, columns, strict=True):
            picture = views[column][index]
            if modality == "audio":
                ax.imshow(picture[0], origin="lower", aspect="auto", cmap="magma", vmin=-3, vmax=3)
            else:
                frame = picture[len(picture) // 2].transpose(1, 2, 0)
                ax.imshow(np.nan_to_num(np.clip(frame, 0, 1), nan=1.0))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: {clip_id} {modality}, {column}", fontsize=7)
    demo = " (DEMO DATA)" if reconstructions["data_source"] == "demo" else ""
    figure.suptitle(f"Masked autoencoding: reconstructions of training clips{demo}")
    return figure
