"""Batches: features joined to targets by clip id, actor-disjoint splits, seeded order, the loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from avshared.crema_d import EMOTIONS
from avshared.features.audio import apply_spectrogram_stats
from avshared.models import ModelConfig, build_model
from avshared.training.data import (
    NO_LABEL,
    ClipDataModule,
    ClipDataset,
    select_clips_with_features,
)
from avshared.training.module import EmotionClassifierModule, soft_cross_entropy
from avshared.training.phase import build_targets, phase_config


@pytest.fixture
def acted_targets(corpus, tiny_defaults, tmp_path) -> pd.DataFrame:
    config = phase_config(
        tiny_defaults, {}, str(tmp_path), phase="bimodal", modalities=("audio", "video"), seeds=[0]
    )
    targets, _ = build_targets(corpus.clip_manifest, corpus.crowd_labels, corpus.split, config)
    return targets


def test_items_join_features_and_targets_by_clip_id(corpus, acted_targets):
    # The stores hold the clips in two different shuffled orders, neither the targets' order.
    assert list(corpus.log_mel_spectrograms.clip_ids) != list(acted_targets["clip_id"])
    assert list(corpus.face_frames.clip_ids) != list(corpus.log_mel_spectrograms.clip_ids)
    dataset = ClipDataset(acted_targets, corpus.log_mel_spectrograms, corpus.face_frames)
    for index in np.random.default_rng(1).choice(len(dataset), 20, replace=False):
        clip_id = acted_targets["clip_id"].iloc[index]
        item = dataset[index]
        np.testing.assert_array_equal(
            item["audio"].numpy(), corpus.log_mel_spectrograms.get(clip_id)
        )
        np.testing.assert_array_equal(item["video"].numpy(), corpus.face_frames.get(clip_id))
        emotion = clip_id.split("_")[2]
        assert EMOTIONS[int(item["label"])] == emotion
        assert EMOTIONS[int(item["target"].argmax())] == emotion
        assert item["video"].dtype == torch.uint8
        assert item["audio"].dtype == torch.float16  # as stored: standardised on the device


def test_batches_are_standardised_with_the_training_statistics(corpus, acted_targets):
    train = acted_targets.loc[acted_targets["split"] == "train"]
    dataset = ClipDataset(train, audio=corpus.log_mel_spectrograms)
    raw = torch.stack([dataset[i]["audio"] for i in range(len(dataset))])
    config = ModelConfig.preset("tiny", n_mels=raw.shape[2], audio_frames=raw.shape[3])
    module = EmotionClassifierModule(
        build_model("shared", ["audio"], config), ["audio"], corpus.spectrogram_stats
    )
    audio = module.on_after_batch_transfer({"audio": raw}, 0)["audio"]
    assert audio.dtype == torch.float32
    np.testing.assert_allclose(
        audio[0].numpy(),
        apply_spectrogram_stats(raw[0].numpy(), corpus.spectrogram_stats),
        rtol=1e-5,
        atol=1e-5,
    )
    per_band_mean = audio.mean(dim=(0, 1, 3))
    per_band_std = audio.std(dim=(0, 1, 3))
    assert torch.allclose(per_band_mean, torch.zeros_like(per_band_mean), atol=1e-2)
    assert torch.allclose(per_band_std, torch.ones_like(per_band_std), atol=5e-2)


def test_dataset_names_clips_missing_from_a_store(corpus, acted_targets):
    extra = acted_targets.iloc[:1].assign(clip_id="1099_DFA_ANG_XX")
    with pytest.raises(KeyError, match="1099_DFA_ANG_XX"):
        ClipDataset(pd.concat([acted_targets, extra]), video=corpus.face_frames)
    kept, dropped = select_clips_with_features(
        pd.concat([acted_targets, extra.assign(split="val")]), [corpus.face_frames]
    )
    assert len(kept) == len(acted_targets)
    assert dropped == {"train": 0, "val": 1, "test": 0}


def test_test_actors_never_reach_the_training_loader(corpus, acted_targets):
    data = ClipDataModule(acted_targets, audio=None, video=corpus.face_frames, batch_size=8, seed=3)
    actor_of = dict(
        zip(corpus.clip_manifest["clip_id"], corpus.clip_manifest["actor"], strict=True)
    )
    train_actors = {actor_of[c] for c in data.datasets["train"].clip_ids}
    test_actors = set(corpus.split.loc[corpus.split["split"] == "test", "actor"])
    val_actors = set(corpus.split.loc[corpus.split["split"] == "val", "actor"])
    assert train_actors and test_actors
    assert train_actors.isdisjoint(test_actors)
    assert train_actors.isdisjoint(val_actors)
    seen = sum(len(batch["label"]) for batch in data.train_dataloader())
    assert seen == len(data.datasets["train"])


def _epoch_orders(data: ClipDataModule, epochs: int) -> list[list[str]]:
    loader = data.train_dataloader()
    orders = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # what Lightning's fit loop does every epoch
        orders.append([data.datasets["train"].clip_ids[i] for i in loader.sampler])
    return orders


def test_training_order_depends_only_on_seed_and_epoch(corpus, acted_targets):
    def data(seed):
        return ClipDataModule(
            acted_targets, audio=None, video=corpus.face_frames, batch_size=8, seed=seed
        )

    orders = _epoch_orders(data(7), 3)
    assert sorted(orders[0]) == sorted(data(7).datasets["train"].clip_ids)
    assert orders[0] != orders[1] != orders[2]
    assert _epoch_orders(data(7), 3) == orders
    assert _epoch_orders(data(8), 3)[2] != orders[2]


class _Processes:
    """What the data module reads from a Lightning trainer under DDP."""

    def __init__(self, world_size: int, global_rank: int):
        self.world_size, self.global_rank = world_size, global_rank


def test_ddp_processes_share_out_each_epoch_and_every_val_clip_once(corpus, acted_targets):
    def data(world_size, rank):
        module = ClipDataModule(
            acted_targets, audio=None, video=corpus.face_frames, batch_size=4, seed=7
        )
        module.trainer = _Processes(world_size, rank)
        return module

    single = _epoch_orders(data(1, 0), 2)
    ranks = [_epoch_orders(data(2, rank), 2) for rank in (0, 1)]
    for epoch in range(2):
        # Rank r takes every other clip of the one-process order: the same global batches.
        assert ranks[0][epoch] == single[epoch][0::2]
        assert ranks[1][epoch] == single[epoch][1::2]
    val = [
        [clip for batch in data(2, rank).val_dataloader() for clip in batch["label"].tolist()]
        for rank in (0, 1)
    ]
    assert len(val[0]) + len(val[1]) == len(data(1, 0).datasets["val"])


def test_soft_cross_entropy_is_cross_entropy_against_a_distribution():
    logits = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 5, 1, 1])
    one_hot = F.one_hot(labels, 6).float()
    assert torch.allclose(soft_cross_entropy(logits, one_hot), F.cross_entropy(logits, labels))
    soft = torch.softmax(torch.randn(5, 6, generator=torch.Generator().manual_seed(1)), dim=-1)
    by_hand = -(soft * logits.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(soft_cross_entropy(logits, soft), by_hand)
    # Minimised (at the target's entropy) when the prediction is the target distribution.
    entropy = -(soft * soft.log()).sum(-1).mean()
    assert torch.allclose(soft_cross_entropy(soft.log(), soft), entropy)
    assert soft_cross_entropy(logits, soft) > entropy


def test_accuracy_ignores_samples_without_a_label(tiny_config):
    module = EmotionClassifierModule(
        build_model("shared", ["audio"], tiny_config), ["audio"], {"mean": [0.0], "std": [1.0]}
    )
    accuracy = module.metrics["val_accuracy"]
    logits = torch.tensor([[2.0, 0, 0, 0, 0, 0], [0, 2.0, 0, 0, 0, 0], [0, 0, 2.0, 0, 0, 0]])
    accuracy.update(logits, torch.tensor([0, NO_LABEL, 1]))
    assert accuracy.compute().item() == pytest.approx(0.5)
