"""Small models and inputs shared by the analysis tests, on the suite's tiny_config: 2 x 4 = 8
audio tokens, 2 x 2 x 2 = 8 video tokens, width 16, two layers of two heads."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from avshared.models import (
    ModelConfig,
    SeparateEncodersClassifier,
    SharedEncoderClassifier,
    SharedMidFusionClassifier,
)


@pytest.fixture
def shared_model(tiny_config: ModelConfig) -> SharedEncoderClassifier:
    torch.manual_seed(0)
    return SharedEncoderClassifier(("audio", "video"), tiny_config).eval()


@pytest.fixture
def separate_model(tiny_config: ModelConfig) -> SeparateEncodersClassifier:
    torch.manual_seed(1)
    return SeparateEncodersClassifier(("audio", "video"), tiny_config).eval()


@pytest.fixture
def mid_model(tiny_config: ModelConfig) -> SharedMidFusionClassifier:
    """Mid fusion over three layers: two per sense, then one shared."""
    torch.manual_seed(2)
    config = replace(tiny_config, depth=3, separate_layers=2)
    return SharedMidFusionClassifier(("audio", "video"), config).eval()


@pytest.fixture
def inputs(tiny_config: ModelConfig, random_inputs) -> tuple[torch.Tensor, torch.Tensor]:
    return random_inputs(tiny_config, 5, video_dtype=torch.uint8)
