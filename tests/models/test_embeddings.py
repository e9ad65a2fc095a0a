"""Patch embeddings: token shapes and order, input conversion, and size checks."""

from __future__ import annotations

import pytest
import torch

from avshared.models import AudioPatchEmbedding, VideoPatchEmbedding


def test_audio_tokens_shape_ignores_the_remainder_frames():
    embedding = AudioPatchEmbedding(n_mels=64, n_frames=300, dim=24, patch_size=(16, 16))

    tokens = embedding(torch.randn(3, 1, 64, 300))

    assert embedding.grid == (4, 18)
    assert embedding.num_tokens == 72
    assert tokens.shape == (3, 72, 24)


def test_audio_tokens_are_frequency_major():
    torch.manual_seed(0)
    embedding = AudioPatchEmbedding(n_mels=32, n_frames=48, dim=8, patch_size=(16, 16)).eval()
    spectrogram = torch.randn(1, 1, 32, 48)
    changed = spectrogram.clone()
    changed[0, 0, 16 + 3, 32 + 5] += 10.0  # inside frequency patch 1, time patch 2

    difference = (embedding(changed) - embedding(spectrogram)).abs().sum(dim=2)[0]

    time_patches = 3
    assert difference.nonzero().flatten().tolist() == [1 * time_patches + 2]


def test_audio_positions_distinguish_identical_patches():
    embedding = AudioPatchEmbedding(n_mels=32, n_frames=32, dim=8, patch_size=(16, 16))

    tokens = embedding(torch.zeros(1, 1, 32, 32))[0]

    assert torch.cdist(tokens, tokens).fill_diagonal_(1.0).min() > 0


def test_audio_accepts_half_precision_input():
    embedding = AudioPatchEmbedding(n_mels=16, n_frames=16, dim=8, patch_size=(8, 8))
    spectrogram = torch.randn(2, 1, 16, 16)

    tokens = embedding(spectrogram.half())

    assert tokens.dtype == torch.float32
    torch.testing.assert_close(tokens, embedding(spectrogram.half().float()))


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2, 64, 300), "Add a missing channel axis"),
        ((2, 2, 64, 300), "audio channels"),
        ((2, 1, 128, 300), r"audio n_mels \(dim 2 .*\) is 128, expected 64"),
        ((2, 1, 64, 301), r"audio frames \(dim 3 .*\) is 301, expected 300"),
    ],
)
def test_audio_wrong_sizes_name_the_dimension(shape, message):
    embedding = AudioPatchEmbedding(n_mels=64, n_frames=300, dim=8)

    with pytest.raises(ValueError, match=message):
        embedding(torch.randn(*shape))


def test_audio_rejects_integer_input():
    embedding = AudioPatchEmbedding(n_mels=16, n_frames=16, dim=8, patch_size=(8, 8))

    with pytest.raises(ValueError, match="floating point"):
        embedding(torch.zeros(1, 1, 16, 16, dtype=torch.int16))


def test_patch_larger_than_input_is_refused_at_construction():
    with pytest.raises(ValueError, match="audio n_mels: patch size 32 does not fit"):
        AudioPatchEmbedding(n_mels=16, n_frames=64, dim=8, patch_size=(32, 16))


def test_video_tokens_shape():
    embedding = VideoPatchEmbedding(num_frames=8, image_size=112, dim=24, tubelet_size=(2, 16, 16))

    frames = torch.randint(0, 256, (2, 8, 3, 112, 112), dtype=torch.uint8)
    tokens = embedding(frames)

    assert embedding.grid == (4, 7, 7)
    assert tokens.shape == (2, 196, 24)


def test_video_tokens_are_time_major_then_row_major():
    torch.manual_seed(0)
    embedding = VideoPatchEmbedding(num_frames=4, image_size=32, dim=8, tubelet_size=(2, 8, 8))
    frames = torch.rand(1, 4, 3, 32, 32)
    changed = frames.clone()
    changed[0, 2, 1, 8 * 2 + 1, 8 * 3 + 4] = 1.0 - changed[0, 2, 1, 8 * 2 + 1, 8 * 3 + 4]
    # frame 2 -> time patch 1, row 17 -> row patch 2, column 28 -> column patch 3

    difference = (embedding(changed) - embedding(frames)).abs().sum(dim=2)[0]

    rows, cols = 4, 4
    assert difference.nonzero().flatten().tolist() == [(1 * rows + 2) * cols + 3]


def test_video_uint8_and_unit_float_frames_give_the_same_tokens():
    embedding = VideoPatchEmbedding(num_frames=4, image_size=32, dim=8, tubelet_size=(2, 16, 16))
    frames = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)

    from_uint8 = embedding(frames)
    from_float = embedding(frames.float() / 255.0)

    torch.testing.assert_close(from_uint8, from_float)


def test_video_normalises_with_imagenet_statistics():
    embedding = VideoPatchEmbedding(num_frames=2, image_size=16, dim=8, tubelet_size=(2, 16, 16))
    # An image equal to the ImageNet mean normalises to zeros: only bias and embeddings remain.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1).expand(1, 2, 3, 16, 16)

    tokens = embedding(mean)

    expected = (
        embedding.projection.bias
        + embedding.time_position[0, 0, 0]
        + embedding.row_position[0, 0, 0]
        + embedding.col_position[0, 0, 0]
        + embedding.type_embedding[0, 0]
    )
    torch.testing.assert_close(tokens[0, 0], expected)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2, 3, 112, 112), "video input must be a frame batch"),
        ((2, 8, 112, 112, 3), r"\.permute\(0, 1, 4, 2, 3\)"),
        ((2, 8, 1, 112, 112), "video channels"),
        ((2, 6, 3, 112, 112), r"video frames \(dim 1 .*\) is 6, expected 8"),
        ((2, 8, 3, 96, 112), r"video height \(dim 3 .*\) is 96, expected 112"),
        ((2, 8, 3, 112, 128), r"video width \(dim 4 .*\) is 128, expected 112"),
    ],
)
def test_video_wrong_sizes_name_the_dimension(shape, message):
    embedding = VideoPatchEmbedding(num_frames=8, image_size=112, dim=8)

    with pytest.raises(ValueError, match=message):
        embedding(torch.zeros(*shape, dtype=torch.uint8))


def test_video_rejects_integer_frames_other_than_uint8():
    embedding = VideoPatchEmbedding(num_frames=2, image_size=16, dim=8, tubelet_size=(2, 16, 16))

    with pytest.raises(ValueError, match="uint8"):
        embedding(torch.zeros(1, 2, 3, 16, 16, dtype=torch.int32))


def test_grid_positions_give_one_vector_per_grid_position():
    torch.manual_seed(0)
    audio = AudioPatchEmbedding(32, 48, 8, (16, 16), positions="grid")
    video = VideoPatchEmbedding(4, 32, 8, (2, 16, 16), positions="grid")

    audio_tokens = audio(torch.zeros(1, 1, 32, 48))[0]
    video_tokens = video(torch.full((1, 4, 3, 32, 32), 0.5))[0]

    assert audio.position.shape == (2, 3, 8) and not hasattr(audio, "freq_position")
    assert video.frame_position.shape == (1, 2, 2, 8) and not hasattr(video, "row_position")
    assert audio_tokens.shape == (6, 8) and video_tokens.shape == (8, 8)
    bias = audio.projection.bias + audio.type_embedding[0, 0]
    torch.testing.assert_close(audio_tokens, audio.position.reshape(6, 8) + bias)
    assert torch.cdist(video_tokens, video_tokens).fill_diagonal_(1.0).min() > 0


def test_factorised_positions_are_the_default_and_keep_their_parameter_names():
    names = {n for n, _ in AudioPatchEmbedding(32, 48, 8).named_parameters()}
    video = {n for n, _ in VideoPatchEmbedding(4, 32, 8, (2, 16, 16)).named_parameters()}

    assert {"freq_position", "time_position"} <= names and "position" not in names
    assert {"time_position", "row_position", "col_position"} <= video
    with pytest.raises(ValueError, match="positions must be one of"):
        AudioPatchEmbedding(32, 48, 8, positions="learned")
