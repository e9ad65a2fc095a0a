"""Batches for training: features joined to targets BY CLIP ID, split by the `split` dataset.

A ``ClipDataset`` row is one clip of the targets table; its spectrogram and face frames are looked
up in the memory-mapped feature stores by that clip's id, never by position, so the stores' row
order does not matter. Spectrograms are standardised with the training-only ``spectrogram_stats``
as items are read; face frames stay uint8 until the model (which converts and normalises them).

Shuffling is seeded per epoch (``EpochSeededSampler``), so the order of epoch ``e`` is the same
whether a run goes straight through or resumes from a checkpoint at epoch ``e``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from avshared.crema_d import EMOTIONS
from avshared.datasets.feature_store import FeatureStore
from avshared.features.audio import apply_spectrogram_stats

#: Target columns: the distribution the loss is taken against (one-hot for hard targets).
TARGET_COLUMNS: tuple[str, ...] = tuple(f"p_{emotion}" for emotion in EMOTIONS)
#: Class index of a clip that has no single-label target (a tied crowd vote under soft targets).
NO_LABEL = -1
SPLITS: tuple[str, ...] = ("train", "val", "test")


def target_indices(targets: pd.DataFrame) -> np.ndarray:
    """Class index of each row's ``target`` emotion code, ``NO_LABEL`` where it is missing."""
    index = {emotion: i for i, emotion in enumerate(EMOTIONS)}
    return np.array(
        [NO_LABEL if pd.isna(t) else index[t] for t in targets["target"]], dtype=np.int64
    )


class ClipDataset(Dataset):
    """Items ``{"audio", "video", "target", "label"}`` for the clips of a targets table.

    ``audio`` (1, n_mels, frames) float32 standardised, ``video`` (frames, 3, H, W) uint8,
    ``target`` (6,) float32 distribution, ``label`` int64 class index (``NO_LABEL`` if none). Only
    the modalities whose store is given are returned.
    """

    def __init__(
        self,
        targets: pd.DataFrame,
        audio: FeatureStore | None = None,
        video: FeatureStore | None = None,
        spectrogram_stats: Mapping[str, Any] | None = None,
    ):
        if audio is None and video is None:
            raise ValueError("a ClipDataset needs at least one feature store (audio or video)")
        if audio is not None and spectrogram_stats is None:
            raise ValueError("audio features need spectrogram_stats to be standardised")
        missing = {
            name: sorted(set(targets["clip_id"]) - set(store.clip_ids))[:5]
            for name, store in (("audio", audio), ("video", video))
            if store is not None and not set(targets["clip_id"]) <= set(store.clip_ids)
        }
        if missing:
            raise KeyError(
                f"clips without features in the {sorted(missing)} store(s), e.g. {missing}: "
                "select the targets with select_clips_with_features first"
            )
        self.clip_ids: list[str] = targets["clip_id"].tolist()
        self.targets = torch.from_numpy(targets.loc[:, list(TARGET_COLUMNS)].to_numpy(np.float32))
        self.labels = torch.from_numpy(target_indices(targets))
        self.audio, self.video = audio, video
        self.spectrogram_stats = spectrogram_stats

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        inputs = clip_inputs(self.clip_ids[index], self.audio, self.video, self.spectrogram_stats)
        return {**inputs, "target": self.targets[index], "label": self.labels[index]}


def clip_inputs(
    clip_id: str,
    audio: FeatureStore | None,
    video: FeatureStore | None,
    spectrogram_stats: Mapping[str, Any] | None,
) -> dict[str, torch.Tensor]:
    """One clip's model inputs: ``audio`` standardised float32, ``video`` uint8, as stores allow."""
    inputs = {}
    if audio is not None:
        spectrogram = apply_spectrogram_stats(audio.get(clip_id), spectrogram_stats)
        inputs["audio"] = torch.from_numpy(spectrogram)
    if video is not None:
        # Copy out of the read-only memory map: torch wants writable memory.
        inputs["video"] = torch.from_numpy(np.array(video.get(clip_id)))
    return inputs


class EpochSeededSampler(Sampler[int]):
    """A shuffled order that depends only on (seed, epoch); Lightning calls ``set_epoch``."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def select_clips_with_features(
    targets: pd.DataFrame, stores: Sequence[FeatureStore]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The target rows whose clip is in every store, and how many were dropped per split."""
    keep = np.ones(len(targets), dtype=bool)
    for store in stores:
        keep &= targets["clip_id"].isin(store.clip_ids).to_numpy()
    dropped = targets.loc[~keep, "split"].value_counts()
    return targets.loc[keep].reset_index(drop=True), {
        split: int(dropped.get(split, 0)) for split in SPLITS
    }


class ClipDataModule(L.LightningDataModule):
    """Train/val/test loaders over a targets table with a ``split`` column.

    Only ``train`` rows are shuffled (``EpochSeededSampler``); val and test keep the table's order.
    """

    def __init__(
        self,
        targets: pd.DataFrame,
        *,
        audio: FeatureStore | None,
        video: FeatureStore | None,
        spectrogram_stats: Mapping[str, Any] | None,
        batch_size: int,
        num_workers: int,
        seed: int,
    ):
        super().__init__()
        self.datasets = {
            split: ClipDataset(
                targets.loc[targets["split"] == split].reset_index(drop=True),
                audio,
                video,
                spectrogram_stats,
            )
            for split in SPLITS
        }
        empty = [split for split in ("train", "val") if not len(self.datasets[split])]
        if empty:
            raise ValueError(
                f"no {' or '.join(empty)} clips to train with: check the split dataset "
                "(split.strategy and fractions in parameters_split.yml) and the features report"
            )
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def _loader(self, split: str, sampler: Sampler[int] | None = None) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            # Its own generator: starting an epoch's iterator then draws nothing from the global
            # one, which dropout uses (a resumed run starts its iterator at another moment).
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(len(self.datasets["train"]), self.seed)
        return self._loader("train", sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
