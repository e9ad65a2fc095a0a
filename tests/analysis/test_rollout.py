"""Attention rollout and its heat maps on the spectrogram and the frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avshared.analysis.rollout import (
    attention_rollout,
    audio_heatmap,
    classifier_rollout,
    cls_rollout,
    video_heatmap,
)
from avshared.models import AudioPatchEmbedding, VideoPatchEmbedding


def test_rollout_of_uniform_attention_is_uniform_over_the_tokens():
    maps = torch.full((3, 2, 4, 6, 6), 1 / 6)

    weights = cls_rollout(maps)

    np.testing.assert_allclose(weights, weights[:, :1] * np.ones((2, 5)))
    np.testing.assert_allclose(attention_rollout(maps).sum(-1), 1.0)


def test_rollout_multiplies_the_layers_with_the_residual():
    first = torch.zeros(1, 1, 1, 3, 3)
    first[..., 0, 2] = first[..., 1, 1] = first[..., 2, 2] = 1.0  # [CLS] reads token 2
    second = torch.zeros(1, 1, 1, 3, 3)
    second[..., :, 0] = 1.0  # everyone reads [CLS]

    rollout = attention_rollout(torch.cat([first, second]))

    # Layer 1: [CLS] row (I + A)/2 = [0.5, 0, 0.5]; layer 2: [CLS] row [1, 0, 0] @ that.
    np.testing.assert_allclose(rollout[0, 0], [0.5, 0.0, 0.5])


def test_masked_tokens_get_no_rollout_weight():
    maps = torch.rand(2, 1, 2, 5, 5)
    maps[..., 3:] = 0.0
    maps = maps / maps.sum(-1, keepdim=True)

    assert (cls_rollout(maps)[:, 2:] == 0).all()


def test_heat_maps_have_the_inputs_shape_and_light_exactly_the_patch():
    audio = AudioPatchEmbedding(n_mels=16, n_frames=35, dim=8, patch_size=(8, 8))  # grid 2 x 4
    video = VideoPatchEmbedding(num_frames=4, image_size=16, dim=8, tubelet_size=(2, 8, 8))
    audio_weights = np.zeros((1, 8))
    audio_weights[0, 5] = 1.0  # frequency band 1, time patch 1
    video_weights = np.zeros((1, 8))
    video_weights[0, 6] = 1.0  # time patch 1, row 1, column 0

    spectrogram = audio_heatmap(audio_weights, audio)
    frames = video_heatmap(video_weights, video)

    assert spectrogram.shape == (1, 16, 35)
    assert frames.shape == (1, 4, 16, 16)
    expected_audio = np.zeros((16, 35))
    expected_audio[8:16, 8:16] = 1.0
    np.testing.assert_array_equal(spectrogram[0], expected_audio)
    expected_video = np.zeros((4, 16, 16))
    expected_video[2:4, 8:16, 0:8] = 1.0
    np.testing.assert_array_equal(frames[0], expected_video)


def test_token_weights_must_fit_the_grid():
    audio = AudioPatchEmbedding(n_mels=16, n_frames=32, dim=8, patch_size=(8, 8))
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        audio_heatmap(np.zeros((1, 7)), audio)


def test_a_classifiers_rollout(shared_model, inputs):
    audio, video = inputs

    maps = classifier_rollout(shared_model, audio[:2], video[:2])

    assert maps.audio.shape == (2, 16, 32)
    assert maps.video.shape == (2, 4, 16, 16)
    # Each pixel carries its token's weight: per clip, audio and video tokens sum below one.
    token_sum = maps.audio.sum((1, 2)) / 64 + maps.video.sum((1, 2, 3)) / 128
    assert ((token_sum > 0.5) & (token_sum < 1)).all()
    with torch.no_grad():
        expected = shared_model(audio[:2], video[:2]).argmax(-1).numpy()
    np.testing.assert_array_equal(maps.prediction, expected)
