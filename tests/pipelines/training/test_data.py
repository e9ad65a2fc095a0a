"""Batches: features joined to targets by clip id, actor-disjoint splits, seeded order, the loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from avshared.crema_d import EMOTIONS
from avshared.features.audio import apply_spectrogram_stats
from avshared.pipelines.training.data import (
    NO_LABEL,
    ClipDataModule,
    ClipDataset,
    EpochSeededSampler,
    select_clips_with_features,
)
from avshared.pipelines.training.module import labelled_accuracy, soft_cross_entropy
from avshared.pipelines.training.nodes import build_targets, resolve_phase_config


@pytest.fixture
def acted_targets(corpus, tiny_defaults, tmp_path) -> pd.DataFrame:
    config = resolve_phase_config(
        tiny_defaults, {"modalities": ["audio", "video"]}, str(tmp_path), phase="bimodal"
    )
    targets, _ = build_targets(corpus.clip_manifest, corpus.crowd_labels, corpus.split, config)
    return targets


def test_items_join_features_and_targets_by_clip_id(corpus, acted_targets):
    # The stores hold the clips in two different shuffled orders, neither the targets' order.
    assert list(corpus.log_mel_spectrograms.clip_ids) != list(acted_targets["clip_id"])
    assert list(corpus.face_frames.clip_ids) != list(corpus.log_mel_spectrograms.clip_ids)
    dataset = ClipDataset(
        acted_targets, corpus.log_mel_spectrograms, corpus.face_frames, corpus.spectrogram_stats
    )
    for index in np.random.default_rng(1).choice(len(dataset), 20, replace=False):
        clip_id = acted_targets["clip_id"].iloc[index]
        item = dataset[index]
        expected_audio = apply_spectrogram_stats(
            corpus.log_mel_spectrograms.get(clip_id), corpus.spectrogram_stats
        )
        np.testing.assert_array_equal(item["audio"].numpy(), expected_audio)
        np.testing.assert_array_equal(item["video"].numpy(), corpus.face_frames.get(clip_id))
        emotion = clip_id.split("_")[2]
        assert EMOTIONS[int(item["label"])] == emotion
        assert EMOTIONS[int(item["target"].argmax())] == emotion
        assert item["video"].dtype == torch.uint8
        assert item["audio"].dtype == torch.float32


def test_spectrograms_are_standardised_with_the_training_statistics(corpus, acted_targets):
    train = acted_targets.loc[acted_targets["split"] == "train"]
    dataset = ClipDataset(
        train, audio=corpus.log_mel_spectrograms, spectrogram_stats=corpus.spectrogram_stats
    )
    audio = torch.stack([dataset[i]["audio"] for i in range(len(dataset))])
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
    data = ClipDataModule(
        acted_targets,
        audio=None,
        video=corpus.face_frames,
        spectrogram_stats=None,
        batch_size=8,
        num_workers=0,
        seed=3,
    )
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


def test_sampler_order_depends_only_on_seed_and_epoch():
    first, again, other_seed = (EpochSeededSampler(50, s) for s in (7, 7, 8))
    orders = []
    for epoch in range(3):
        first.set_epoch(epoch)
        orders.append(list(first))
        assert sorted(orders[-1]) == list(range(50))
    assert orders[0] != orders[1] != orders[2]
    again.set_epoch(2)
    assert list(again) == orders[2]
    other_seed.set_epoch(2)
    assert list(other_seed) != orders[2]


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


def test_accuracy_ignores_samples_without_a_label():
    logits = torch.tensor([[2.0, 0, 0, 0, 0, 0], [0, 2.0, 0, 0, 0, 0], [0, 0, 2.0, 0, 0, 0]])
    accuracy, counted = labelled_accuracy(logits, torch.tensor([0, NO_LABEL, 1]))
    assert counted == 2
    assert accuracy.item() == pytest.approx(0.5)
