"""Patches of spectrograms and frame stacks: the embeddings' token order, and the way back."""

from __future__ import annotations

import torch

from avshared.models import AudioPatchEmbedding, VideoPatchEmbedding
from avshared.models.patches import (
    frames_from_patches,
    spectrogram_from_patches,
    spectrogram_patches,
    tubelet_patches,
)


def test_spectrogram_patches_round_trip_on_the_covered_part():
    spectrogram = torch.randn(2, 1, 20, 37)  # 20 mels / 8 = 2 bands, 37 frames / 8 = 4 (+ 5)
    patches = spectrogram_patches(spectrogram, (8, 8))

    assert patches.shape == (2, 2 * 4, 64)
    back = spectrogram_from_patches(patches, (8, 8), (2, 4))
    torch.testing.assert_close(back, spectrogram[:, :, :16, :32], rtol=0, atol=0)


def test_tubelet_patches_round_trip_on_the_covered_part():
    frames = torch.rand(2, 5, 3, 33, 32)  # 5 frames / 2 = 2 (+ 1), 33 rows / 16 = 2 (+ 1)
    patches = tubelet_patches(frames, (2, 16, 16))

    assert patches.shape == (2, 2 * 2 * 2, 3 * 2 * 16 * 16)
    back = frames_from_patches(patches, (2, 16, 16), (2, 2, 2))
    torch.testing.assert_close(back, frames[:, :4, :, :32, :32], rtol=0, atol=0)


def test_spectrogram_patches_are_what_the_audio_embedding_projects():
    torch.manual_seed(0)
    embedding = AudioPatchEmbedding(n_mels=16, n_frames=40, dim=8, patch_size=(8, 16))
    spectrogram = torch.randn(3, 1, 16, 40)
    projected = embedding.projection(spectrogram).flatten(2).transpose(1, 2)
    weight = embedding.projection.weight.flatten(1)
    by_patches = spectrogram_patches(spectrogram, (8, 16)) @ weight.T + embedding.projection.bias

    torch.testing.assert_close(by_patches, projected, rtol=1e-5, atol=1e-5)


def test_tubelet_patches_are_what_the_video_embedding_projects():
    torch.manual_seed(0)
    embedding = VideoPatchEmbedding(num_frames=4, image_size=32, dim=8, tubelet_size=(2, 16, 16))
    frames = torch.rand(2, 4, 3, 32, 32)
    normalised = (frames.transpose(1, 2) - embedding.mean) / embedding.std  # (B, 3, F, H, W)
    projected = embedding.projection(normalised).flatten(2).transpose(1, 2)
    weight = embedding.projection.weight.flatten(1)
    channels_second = normalised.transpose(1, 2)  # back to (B, F, 3, H, W)
    by_patches = tubelet_patches(channels_second, (2, 16, 16)) @ weight.T
    by_patches = by_patches + embedding.projection.bias

    torch.testing.assert_close(by_patches, projected, rtol=1e-5, atol=1e-5)
