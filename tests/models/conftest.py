"""Fixtures shared by the classifier tests: a tiny model configuration and random inputs for it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from avshared.models import ModelConfig

#: random_inputs(config, batch, seed=0, video_dtype=torch.float32) -> (audio, video)
RandomInputs = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture
def tiny_config() -> ModelConfig:
    """The tiny preset, 16 wide, on 16 mel bands x 32 frames and 4 frames of 16 x 16 pixels."""
    return ModelConfig.preset(
        "tiny",
        dim=16,
        n_mels=16,
        audio_frames=32,
        audio_patch=(8, 8),
        video_frames=4,
        image_size=16,
        video_tubelet=(2, 8, 8),
    )


@pytest.fixture
def random_inputs() -> RandomInputs:
    """A factory of seeded random inputs for ``batch`` clips: audio (B, 1, n_mels, frames),
    standard normal; video (B, T, 3, H, W), uniform in [0, 1) or, as uint8, in 0..255."""

    def make(
        config: ModelConfig,
        batch: int,
        seed: int = 0,
        video_dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        audio = torch.randn(batch, 1, config.n_mels, config.audio_frames, generator=generator)
        shape = (batch, config.video_frames, 3, config.image_size, config.image_size)
        if video_dtype == torch.uint8:
            video = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        else:
            video = torch.rand(shape, generator=generator, dtype=video_dtype)
        return audio, video

    return make
