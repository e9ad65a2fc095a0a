"""build_model, count_parameters, the preset parameter counts, and an overfitting check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avshared.models import (
    MODEL_KINDS,
    PRESETS,
    ClassificationHead,
    SeparateEncodersClassifier,
    SharedEncoder,
    SharedEncoderClassifier,
    SharedLateFusionClassifier,
    SharedMidFusionClassifier,
    build_model,
    count_parameters,
    restore_model,
)


def test_build_model_picks_the_class_and_modalities(tiny_config):
    shared = build_model("shared", "video", tiny_config)
    separate = build_model("separate", ["video", "audio"], tiny_config)

    assert isinstance(shared, SharedEncoderClassifier)
    assert shared.modalities == ("video",)
    assert isinstance(separate, SeparateEncodersClassifier)
    assert separate.modalities == ("audio", "video")
    assert separate.config == tiny_config
    assert isinstance(
        build_model("shared_late", "bimodal", tiny_config), SharedLateFusionClassifier
    )
    assert isinstance(build_model("shared_mid", "bimodal", tiny_config), SharedMidFusionClassifier)


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_every_kind_is_restored_from_its_config_and_weights(kind, tiny_config, random_inputs):
    torch.manual_seed(0)
    trained = build_model(kind, "bimodal", tiny_config).eval()
    audio, video = random_inputs(tiny_config, 3, seed=1)

    torch.manual_seed(1)  # other initial weights: only the loaded ones may give the same outputs
    restored = restore_model(kind, ["audio", "video"], tiny_config.to_dict(), trained.state_dict())

    assert type(restored) is MODEL_KINDS[kind] and not restored.training
    with torch.no_grad():
        assert torch.equal(restored(audio=audio, video=video), trained(audio=audio, video=video))
    wider = {**tiny_config.to_dict(), "dim": 2 * tiny_config.dim}
    with pytest.raises(ValueError, match=f"do not fit the {kind} model"):
        restore_model(kind, "bimodal", wider, trained.state_dict())


def test_build_model_refuses_unknown_kinds(tiny_config):
    with pytest.raises(ValueError, match="unknown model kind 'joint'"):
        build_model("joint", "bimodal", tiny_config)


def test_count_parameters_counts_shared_tensors_once_and_can_skip_frozen_ones():
    linear = nn.Linear(4, 3)
    twice = nn.Sequential(linear, linear)

    assert count_parameters(twice) == 4 * 3 + 3
    linear.bias.requires_grad_(False)
    assert count_parameters(twice, trainable_only=True) == 4 * 3


def test_shared_bimodal_saves_one_encoder_over_the_baseline(tiny_config):
    shared = build_model("shared", "bimodal", tiny_config)
    separate = build_model("separate", "bimodal", tiny_config)

    one_encoder_and_head = count_parameters(
        SharedEncoder(tiny_config.dim, tiny_config.depth, tiny_config.heads, tiny_config.mlp_ratio)
    ) + count_parameters(ClassificationHead(tiny_config.dim, tiny_config.num_classes))

    assert count_parameters(separate) - count_parameters(shared) == one_encoder_and_head


@pytest.mark.parametrize("preset", ["default", "gpu"])
def test_preset_parameter_counts(preset):
    counts = {
        (kind, modalities): count_parameters(build_model(kind, modalities, PRESETS[preset]))
        for kind in ("shared", "separate")
        for modalities in ("audio", "video", "bimodal")
    }
    print(f"\nparameters, {preset} preset ({PRESETS[preset]}):")
    for (kind, modalities), count in counts.items():
        print(f"  {kind:8s} {modalities:8s} {count:>12,d}")

    for modalities in ("audio", "video"):
        assert counts["shared", modalities] == counts["separate", modalities]
    encoder = count_parameters(
        SharedEncoder(PRESETS[preset].dim, PRESETS[preset].depth, PRESETS[preset].heads)
    )
    saved = counts["separate", "bimodal"] - counts["shared", "bimodal"]
    assert encoder < saved < 1.01 * encoder


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_tiny_model_overfits_twelve_random_samples(kind, tiny_config):
    torch.manual_seed(0)
    audio = torch.randn(12, 1, tiny_config.n_mels, tiny_config.audio_frames)
    video = torch.rand(
        12, tiny_config.video_frames, 3, tiny_config.image_size, tiny_config.image_size
    )
    labels = torch.randint(0, tiny_config.num_classes, (12,))
    model = build_model(kind, "bimodal", tiny_config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)

    steps, accuracy = 0, 0.0
    while accuracy < 1.0 and steps < 300:
        steps += 1
        loss = nn.functional.cross_entropy(model.train()(audio=audio, video=video), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            predictions = model.eval()(audio=audio, video=video).argmax(dim=1)
        accuracy = (predictions == labels).float().mean().item()

    print(f"\n{kind}: train accuracy {accuracy:.2f} after {steps} steps")
    assert accuracy == 1.0
