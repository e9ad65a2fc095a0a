"""Batches for training: features joined to targets BY CLIP ID, split by the `split` dataset.

A ``ClipDataset`` row is one clip of the targets table; its spectrogram and face frames are looked
up in the memory-mapped feature stores by that clip's id, never by position, so the stores' row
order does not matter. Items are returned as stored (spectrograms float16, face frames uint8): the
training module standardises spectrograms with the training-only ``spectrogram_stats`` batch-wise
on the device, and the model converts and normalises face frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from avshared.crema_d import EMOTIONS, PROBABILITY_COLUMNS, SPLITS
from avshared.features.store import FeatureStore

#: Target columns: the distribution the loss is taken against (one-hot for hard targets).
TARGET_COLUMNS: tuple[str, ...] = PROBABILITY_COLUMNS
#: Class index of a clip that has no single-label target (a tied crowd vote under soft targets).
NO_LABEL = -1


def target_indices(targets: pd.DataFrame) -> np.ndarray:
    """Class index of each row's ``target`` emotion code, ``NO_LABEL`` where it is missing."""
    index = {emotion: i for i, emotion in enumerate(EMOTIONS)}
    return np.array(
        [NO_LABEL if pd.isna(t) else index[t] for t in targets["target"]], dtype=np.int64
    )


class UnlabelledClipDataset(Dataset):
    """Items ``{"audio", "video"}`` of the clips ``clip_ids``, as stored: what pretraining reads.

    ``audio`` (1, n_mels, frames) float16 dB, ``video`` (frames, 3, H, W) uint8; only the
    modalities whose store is given are returned, looked up by clip id.
    """

    def __init__(
        self,
        clip_ids: Sequence[str],
        audio: FeatureStore | None = None,
        video: FeatureStore | None = None,
    ):
        if audio is None and video is None:
            raise ValueError("a clip dataset needs at least one feature store (audio or video)")
        missing = {
            name: sorted(set(clip_ids) - set(store.clip_ids))[:5]
            for name, store in (("audio", audio), ("video", video))
            if store is not None and not set(clip_ids) <= set(store.clip_ids)
        }
        if missing:
            raise KeyError(
                f"clips without features in the {sorted(missing)} store(s), e.g. {missing}: "
                "select the clips with select_clips_with_features first"
            )
        self.clip_ids: list[str] = list(clip_ids)
        self.audio, self.video = audio, video

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip_id, item = self.clip_ids[index], {}
        # Copies out of the read-only memory maps: torch wants writable memory.
        if self.audio is not None:
            item["audio"] = torch.from_numpy(np.array(self.audio.get(clip_id)))
        if self.video is not None:
            item["video"] = torch.from_numpy(np.array(self.video.get(clip_id)))
        return item


class ClipDataset(UnlabelledClipDataset):
    """Items ``{"audio", "video", "target", "label"}`` for the clips of a targets table, raw.

    ``audio`` (1, n_mels, frames) as stored (float16 dB: the model's module standardises whole
    batches on the device), ``video`` (frames, 3, H, W) uint8, ``target`` (6,) float32
    distribution, ``label`` int64 class index (``NO_LABEL`` if none). Only the modalities whose
    store is given are returned.
    """

    def __init__(
        self,
        targets: pd.DataFrame,
        audio: FeatureStore | None = None,
        video: FeatureStore | None = None,
    ):
        super().__init__(targets["clip_id"].tolist(), audio, video)
        self.targets = torch.from_numpy(targets.loc[:, list(TARGET_COLUMNS)].to_numpy(np.float32))
        self.labels = torch.from_numpy(target_indices(targets))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(index)
        return {**item, "target": self.targets[index], "label": self.labels[index]}


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


@dataclass(frozen=True)
class LoaderSettings:
    """DataLoader settings of every process: worker processes, pinned memory, kept workers."""

    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = True


class ClipDataModule(L.LightningDataModule):
    """Train/val loaders over a targets table with a ``split`` column, for one process or many.

    ``batch_size`` is per process. Train rows are shuffled by a ``DistributedSampler`` seeded with
    ``seed`` (Lightning calls its ``set_epoch``): the order of epoch ``e`` depends only on (seed,
    e), so a resumed run sees what an uninterrupted one would, and under DDP every process takes
    its own share of that order. Val rows keep the table's order and are shared out without
    repeats, so the metrics reduced over processes count every clip once.
    """

    def __init__(
        self,
        targets: pd.DataFrame,
        *,
        audio: FeatureStore | None,
        video: FeatureStore | None,
        batch_size: int,
        seed: int,
        loader: LoaderSettings = LoaderSettings(),
    ):
        super().__init__()
        self.datasets = {
            split: ClipDataset(
                targets.loc[targets["split"] == split].reset_index(drop=True), audio, video
            )
            for split in ("train", "val")
        }
        empty = [split for split, dataset in self.datasets.items() if not len(dataset)]
        if empty:
            raise ValueError(
                f"no {' or '.join(empty)} clips to train with: check the split dataset "
                "(split.strategy and fractions in parameters_split.yml) and the features report"
            )
        self.batch_size, self.seed, self.loader = batch_size, seed, loader

    def train_dataloader(self) -> DataLoader:
        return shuffled_loader(
            self.datasets["train"], self.trainer, self.batch_size, self.seed, self.loader
        )

    def val_dataloader(self) -> DataLoader:
        replicas, rank = _processes(self.trainer)
        sampler = UnrepeatedDistributedSampler(
            self.datasets["val"], num_replicas=replicas, rank=rank, shuffle=False
        )
        return _loader(self.datasets["val"], sampler, self.batch_size, self.seed, self.loader)


class PretrainingDataModule(L.LightningDataModule):
    """A training loader over ``dataset`` (``UnlabelledClipDataset``, or several concatenated),
    shuffled as ``ClipDataModule``'s: the order of epoch ``e`` depends only on (seed, e), and under
    DDP each process takes its share. Pretraining has no validation clips."""

    def __init__(
        self, dataset: Dataset, *, batch_size: int, seed: int, loader: LoaderSettings
    ) -> None:
        super().__init__()
        if not len(dataset):
            raise ValueError(
                "no clips to pretrain on: check the split dataset's train clips and the features"
            )
        self.dataset, self.batch_size, self.seed, self.loader = dataset, batch_size, seed, loader

    def train_dataloader(self) -> DataLoader:
        return shuffled_loader(self.dataset, self.trainer, self.batch_size, self.seed, self.loader)


def _processes(trainer: L.Trainer | None) -> tuple[int, int]:
    return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)


def _loader(
    dataset: Dataset, sampler: Sampler[int], batch_size: int, seed: int, loader: LoaderSettings
) -> DataLoader:
    workers = loader.num_workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=loader.persistent_workers and workers > 0,
        pin_memory=loader.pin_memory,
        # Its own generator: starting an epoch's iterator then draws nothing from the global
        # one, which dropout uses (a resumed run starts its iterator at another moment).
        generator=torch.Generator().manual_seed(seed),
    )


def shuffled_loader(
    dataset: Dataset,
    trainer: L.Trainer | None,
    batch_size: int,
    seed: int,
    loader: LoaderSettings,
) -> DataLoader:
    """A training loader: a ``DistributedSampler`` seeded with ``seed`` (Lightning calls its
    ``set_epoch``) gives this process its share of epoch e's order, which depends on (seed, e)."""
    replicas, rank = _processes(trainer)
    sampler = DistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=True, seed=seed)
    return _loader(dataset, sampler, batch_size, seed, loader)
