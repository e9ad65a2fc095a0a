"""Nodes of the ``features`` pipeline: log-mel spectrograms and face frames per clip, their report,
the spectrogram statistics of the training clips, and an example figure.

The two extraction nodes return a lazy ``FeatureStream``: the work happens while
``FeatureStoreDataset`` saves it, in a bounded worker pool, one clip at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from avshared.crema_d import is_demo_root
from avshared.features.audio import LogMelConfig, extract_clip_log_mel, spectrogram_stats
from avshared.features.parallel import FeatureStream
from avshared.features.store import FINGERPRINT, FeatureStore
from avshared.features.video import FaceFramesConfig, extract_clip_face_frames

logger = logging.getLogger(__name__)

REPORT_COLUMNS = ["clip_id", "modality", "issue", "action"]
#: Bump a modality's number whenever its extraction code changes what it produces: stores made by
#: an older extractor then no longer match and are extracted again.
EXTRACTOR_VERSIONS: dict[str, int] = {"audio": 1, "video": 2}


def extraction_fingerprint(jobs: list[tuple[str, str]], config: Any, modality: str) -> str:
    """What a store is made from: each clip's id, media path, size and modification time, the
    extraction parameters and the extractor's version. The feature store dataset reuses a stored
    version with the same fingerprint instead of extracting again."""
    clips = []
    for clip_id, path in jobs:
        try:
            stat = os.stat(path)
            clips.append((clip_id, path, stat.st_size, stat.st_mtime_ns))
        except OSError:  # the extractor reports and rejects it
            clips.append((clip_id, path, None, None))
    description = {
        "modality": modality,
        "extractor_version": EXTRACTOR_VERSIONS[modality],
        "parameters": asdict(config),
        "clips": clips,
    }
    return hashlib.sha256(json.dumps(description, default=str).encode()).hexdigest()


def _jobs(clip_manifest: pd.DataFrame, path_column: str) -> list[tuple[str, str]]:
    missing = {"clip_id", path_column} - set(clip_manifest.columns)
    if missing:
        raise KeyError(
            f"clip_manifest lacks the columns {sorted(missing)}: re-run the ingestion pipeline "
            "(kedro run --pipelines=ingestion)"
        )
    return list(zip(clip_manifest["clip_id"], clip_manifest[path_column].astype(str), strict=True))


def extract_log_mel_spectrograms(
    clip_manifest: pd.DataFrame, audio: dict[str, Any], extraction: dict[str, Any]
) -> FeatureStream:
    """A lazy stream of every clip's log-mel spectrogram, ``(1, n_mels, frames)``, in decibels."""
    config = LogMelConfig(**audio)
    jobs = _jobs(clip_manifest, "audio_path")
    return FeatureStream(
        jobs,
        partial(extract_clip_log_mel, config=config),
        workers=extraction["audio_workers"],
        prefetch_per_worker=extraction["prefetch_per_worker"],
        description="log-mel spectrograms",
        attrs={
            "modality": "audio",
            "layout": "channel, mel band, frame",
            **asdict(config),
            FINGERPRINT: extraction_fingerprint(jobs, config, "audio"),
        },
    )


def extract_face_frames(
    clip_manifest: pd.DataFrame, video: dict[str, Any], extraction: dict[str, Any]
) -> FeatureStream:
    """A lazy stream of every clip's sampled face crops, ``(frames, 3, size, size)`` uint8 RGB."""
    config = FaceFramesConfig(**video)
    jobs = _jobs(clip_manifest, "video_path")
    return FeatureStream(
        jobs,
        partial(extract_clip_face_frames, config=config),
        workers=extraction["workers"],
        prefetch_per_worker=extraction["prefetch_per_worker"],
        description="face frames",
        attrs={
            "modality": "video",
            "layout": "frame, RGB channel, row, column",
            **asdict(config),
            FINGERPRINT: extraction_fingerprint(jobs, config, "video"),
        },
    )


def compute_spectrogram_stats(
    log_mel_spectrograms: FeatureStore, split: pd.DataFrame, normalisation: dict[str, Any]
) -> dict[str, Any]:
    """Mean and std of the log-mels of the TRAINING clips only, for standardising model inputs.

    Val and test clips never enter the statistics. Apply them with
    ``avshared.features.audio.apply_spectrogram_stats``.
    """
    train_ids = split.loc[split["split"] == "train", "clip_id"]
    stored = [clip_id for clip_id in train_ids if clip_id in log_mel_spectrograms]
    if len(stored) < len(train_ids):
        logger.warning(
            "%d training clips have no spectrogram (rejected at extraction) and are left out",
            len(train_ids) - len(stored),
        )
    stats = spectrogram_stats(
        (log_mel_spectrograms.get(clip_id) for clip_id in stored), normalisation["mode"]
    )
    return {**stats, "split": "train"}


def _issues(store: FeatureStore, modality: str) -> pd.DataFrame:
    return store.issues.assign(modality=modality)[REPORT_COLUMNS]


def build_features_report(
    clip_manifest: pd.DataFrame, log_mel_spectrograms: FeatureStore, face_frames: FeatureStore
) -> pd.DataFrame:
    """Every defect met during extraction (clip, modality, issue) with the action taken.

    Raises if a manifest clip is missing from a store without a recorded rejection: no clip may be
    dropped silently.
    """
    report = pd.concat(
        [_issues(log_mel_spectrograms, "audio"), _issues(face_frames, "video")], ignore_index=True
    )
    rejected = report[report["action"] == "rejected"]
    for modality, store in (("audio", log_mel_spectrograms), ("video", face_frames)):
        accounted = set(store.clip_ids) | set(
            rejected.loc[rejected["modality"] == modality, "clip_id"]
        )
        unaccounted = sorted(set(clip_manifest["clip_id"]) - accounted)
        if unaccounted:
            raise RuntimeError(
                f"{len(unaccounted)} manifest clips have no {modality} features and no recorded "
                f"rejection, e.g. {unaccounted[:3]}: the {modality} store is stale or incomplete; "
                "re-run the features pipeline"
            )
    for (modality, issue, action), count in report.value_counts(
        ["modality", "issue", "action"]
    ).items():
        logger.info("features report: %s %s -> %s: %d clips", modality, issue, action, count)
    return report.sort_values(["clip_id", "modality"], ignore_index=True)


def plot_features_example(
    log_mel_spectrograms: FeatureStore,
    face_frames: FeatureStore,
    example: dict[str, Any],
    crema_d_root: str,
) -> Figure:
    """One clip's log-mel spectrogram beside its sampled face frames, titled as demo data when
    ``crema_d_root`` holds the generated corpus.

    The clip is ``example["clip_id"]``, or the first clip with both modalities when that is null.
    """
    clip_id = example.get("clip_id") or next(
        (clip_id for clip_id in log_mel_spectrograms.clip_ids if clip_id in face_frames), None
    )
    if clip_id is None:
        raise ValueError("no clip has both a spectrogram and face frames: nothing to plot")
    spectrogram = np.asarray(log_mel_spectrograms.get(clip_id), dtype=np.float32)[0]
    frames = np.asarray(face_frames.get(clip_id)).transpose(0, 2, 3, 1)
    hop_s = log_mel_spectrograms.attrs.get("hop_length", 160) / log_mel_spectrograms.attrs.get(
        "sample_rate", 16_000
    )

    columns = int(np.ceil(len(frames) / 2))
    figure = Figure(figsize=(4 + 1.6 * columns, 4), layout="constrained")
    grid = figure.add_gridspec(2, 2 + columns)
    axes = figure.add_subplot(grid[:, :2])
    image = axes.imshow(
        spectrogram,
        origin="lower",
        aspect="auto",
        extent=(0, spectrogram.shape[1] * hop_s, 0, spectrogram.shape[0]),
    )
    axes.set(xlabel="time (s)", ylabel="mel band", title=f"{clip_id}: log-mel (dB)")
    figure.colorbar(image, ax=axes, shrink=0.8)
    for index, frame in enumerate(frames):
        frame_axes = figure.add_subplot(grid[index // columns, 2 + index % columns])
        frame_axes.imshow(frame)
        frame_axes.set_axis_off()
        frame_axes.set_title(f"frame {index + 1}", fontsize=8)
    if is_demo_root(crema_d_root):
        figure.suptitle("DEMO DATA (generated, not CREMA-D recordings)", color="tab:red")
    return figure
