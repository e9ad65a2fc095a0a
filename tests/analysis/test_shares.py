"""Cross-modal attention shares: sums, bounds, hand-built maps, grouping, the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from avshared.analysis.shares import (
    SHARE_COLUMNS,
    attention_shares,
    clip_facts,
    cross_modal_shares,
    shares_by_group,
    token_groups,
)

SPANS = {"audio": slice(0, 3), "video": slice(3, 7)}  # Na = 3, Nv = 4, 8 positions with [CLS]


def _random_maps(layers=2, batch=3, heads=2, positions=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(layers, batch, heads, positions, positions, generator=generator).softmax(-1)


def test_token_groups_put_cls_first_then_each_sense():
    assert token_groups(SPANS, 7).tolist() == [0, 1, 1, 1, 2, 2, 2, 2]


def test_shares_lie_in_0_1_and_each_senses_rows_sum_to_one():
    shares = cross_modal_shares(_random_maps(), token_groups(SPANS, 7))

    assert len(shares) == 2 * 3 * 2
    values = shares[list(SHARE_COLUMNS)].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    for sense in ("audio", "video", "cls"):
        total = sum(shares[f"{sense}_to_{k}"] for k in ("audio", "video", "cls"))
        np.testing.assert_allclose(total, 1.0)


def test_attention_only_to_video_gives_audio_to_video_one():
    maps = torch.zeros(1, 2, 1, 8, 8)
    maps[..., 4:] = 0.25  # every query spreads its attention over the 4 video tokens

    shares = cross_modal_shares(maps, token_groups(SPANS, 7), clip_ids=["a", "b"])

    assert shares["audio_to_video"].tolist() == [1.0, 1.0]
    assert shares["cls_to_video"].tolist() == [1.0, 1.0]
    assert shares["audio_to_audio"].tolist() == [0.0, 0.0]
    assert shares["clip_id"].tolist() == ["a", "b"]


def test_uniform_attention_equals_the_token_count_reference():
    maps = torch.full((1, 1, 1, 8, 8), 1 / 8)

    row = cross_modal_shares(maps, token_groups(SPANS, 7)).iloc[0]

    assert row["uniform_video"] == pytest.approx(4 / 8)
    assert row["uniform_audio"] == pytest.approx(3 / 8)
    assert row["audio_to_video"] == pytest.approx(row["uniform_video"])
    assert row["video_to_audio"] == pytest.approx(row["uniform_audio"])


def test_missing_queries_are_left_out_and_the_reference_counts_present_tokens():
    maps = torch.full((1, 1, 1, 8, 8), 0.0)
    maps[..., :4] = 0.25  # attention only to [CLS] and the audio tokens
    mask = torch.tensor([[False, False, False, False, True, True, True, True]])

    row = cross_modal_shares(maps, token_groups(SPANS, 7), mask).iloc[0]

    assert np.isnan(row["video_to_audio"])
    assert row["audio_to_audio"] == pytest.approx(0.75)
    assert (row["audio_tokens"], row["video_tokens"]) == (3, 0)
    assert row["uniform_video"] == 0.0


def test_grouping_by_emotion_averages_clips_and_heads():
    maps = torch.zeros(1, 2, 2, 8, 8)
    maps[:, 0, :, :, 4:] = 0.25  # clip 0 (ANG): all to video
    maps[:, 1, 0, :, 1:4] = 1 / 3  # clip 1 (SAD) head 0: all to audio
    maps[:, 1, 1, :, 4:] = 0.25  # clip 1 head 1: all to video
    ids = ["1001_DFA_ANG_XX", "1001_IEO_SAD_HI"]
    shares = cross_modal_shares(maps, token_groups(SPANS, 7), clip_ids=ids)

    by_emotion = shares_by_group(shares, clip_facts(ids), by=["emotion"], per_head=False)
    overall = shares_by_group(shares, per_head=True)

    assert by_emotion.set_index("emotion")["audio_to_video"].to_dict() == {"ANG": 1.0, "SAD": 0.5}
    assert by_emotion["clips"].tolist() == [1, 1]
    assert overall["audio_to_video"].tolist() == [0.5, 1.0]  # head 0, head 1
    assert clip_facts(ids)["level"].tolist() == ["XX", "HI"]


def test_grouping_without_labels_is_refused():
    shares = cross_modal_shares(_random_maps(), token_groups(SPANS, 7))
    with pytest.raises(ValueError, match="labels"):
        shares_by_group(shares, by=["emotion"])


def test_a_models_shares_over_batches(shared_model, inputs):
    audio, video = inputs
    ids = [f"clip{i}" for i in range(5)]

    shares = attention_shares(shared_model, audio, video.numpy(), ids, batch_size=2)

    assert isinstance(shares, pd.DataFrame)
    assert len(shares) == 5 * 2 * 2  # clips x layers x heads
    assert shares["clip_id"].unique().tolist() == ids
    assert (shares[["audio_tokens", "video_tokens"]] == 8).all().all()
    np.testing.assert_allclose(
        shares["audio_to_audio"] + shares["audio_to_video"] + shares["audio_to_cls"], 1.0
    )
    assert not shared_model.training
