"""Build a classifier by name, restore a trained one, and count its parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from avshared.models.baseline import SeparateEncodersClassifier
from avshared.models.classifier import EmotionClassifier
from avshared.models.config import ModelConfig
from avshared.models.shared import SharedEncoderClassifier
from avshared.models.shared_late import SharedLateFusionClassifier
from avshared.models.shared_mid import SharedMidFusionClassifier

#: Model kinds: the proposed shared encoder (early fusion), the separate-encoders baseline (late
#: fusion), and the cells between them: the shared encoder fused late, and mid fusion (per-modality
#: first layers, shared upper layers).
MODEL_KINDS: dict[str, type[EmotionClassifier]] = {
    "shared": SharedEncoderClassifier,
    "separate": SeparateEncodersClassifier,
    "shared_late": SharedLateFusionClassifier,
    "shared_mid": SharedMidFusionClassifier,
}


def build_model(
    kind: str, modalities: str | Sequence[str], config: ModelConfig | None = None
) -> EmotionClassifier:
    """A classifier: ``kind`` one of ``MODEL_KINDS``; ``modalities`` as in ``parse_modalities``."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind](modalities, config or ModelConfig())


def restore_model(
    kind: str,
    modalities: str | Sequence[str],
    model_config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
) -> EmotionClassifier:
    """A trained classifier in eval mode, from what a reload needs: its kind, modalities, sizes
    (``ModelConfig.to_dict()``) and weights (``state_dict()``); weights of another configuration
    are refused with a ValueError that names the mismatch."""
    model = build_model(kind, modalities, ModelConfig(**model_config))
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    given = {name: tuple(t.shape) for name, t in state_dict.items()}
    if expected != given:
        old_head_norm = sorted(
            n for n in given.keys() - expected.keys() if ".norm." in n and "head" in n
        )
        if old_head_norm:
            raise ValueError(
                f"the weights have a LayerNorm in the classification head ({old_head_norm[:4]}): "
                "they were trained before the head lost its second LayerNorm (the encoder's final "
                "LayerNorm is the model's only one now); train the phase again"
            )
        differ = sorted(n for n in expected.keys() & given.keys() if expected[n] != given[n])
        missing, unexpected = expected.keys() - given.keys(), given.keys() - expected.keys()
        raise ValueError(
            f"the weights do not fit the {kind} model of {dict(model_config)}: missing "
            f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}, other shapes "
            f"{[(n, given[n], expected[n]) for n in differ[:5]]}; load the configuration saved "
            "with these weights (the same version)"
        )
    model.load_state_dict(state_dict)
    return model.eval()


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters, each shared tensor counted once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
