"""Small models and inputs shared by the analysis tests."""

from __future__ import annotations

import pytest
import torch

from avshared.models import (
    ModelConfig,
    SeparateEncodersClassifier,
    SharedEncoderClassifier,
    SharedMidFusionClassifier,
)

#: 2 x 4 = 8 audio tokens, 2 x 2 x 2 = 8 video tokens, width 16.
CONFIG = ModelConfig.preset(
    "tiny",
    dim=16,
    heads=2,
    depth=2,
    n_mels=16,
    audio_frames=32,
    audio_patch=(8, 8),
    video_frames=4,
    image_size=16,
    video_tubelet=(2, 8, 8),
)


def make_inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, 1, CONFIG.n_mels, CONFIG.audio_frames, generator=generator)
    video = torch.randint(
        0,
        256,
        (batch, CONFIG.video_frames, 3, CONFIG.image_size, CONFIG.image_size),
        generator=generator,
        dtype=torch.uint8,
    )
    return audio, video


@pytest.fixture
def config() -> ModelConfig:
    return CONFIG


@pytest.fixture
def shared_model() -> SharedEncoderClassifier:
    torch.manual_seed(0)
    return SharedEncoderClassifier(("audio", "video"), CONFIG).eval()


@pytest.fixture
def separate_model() -> SeparateEncodersClassifier:
    torch.manual_seed(1)
    return SeparateEncodersClassifier(("audio", "video"), CONFIG).eval()


@pytest.fixture
def mid_model() -> SharedMidFusionClassifier:
    """Mid fusion over three layers: two per sense, then one shared."""
    torch.manual_seed(2)
    config = ModelConfig.preset("tiny", **{**CONFIG.to_dict(), "depth": 3, "separate_layers": 2})
    return SharedMidFusionClassifier(("audio", "video"), config).eval()


@pytest.fixture
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return make_inputs(5)
