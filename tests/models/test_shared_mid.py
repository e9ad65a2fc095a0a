"""SharedMidFusionClassifier: per-modality first layers, shared upper layers over the joint
sequence, masking of missing modalities."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest
import torch
from torch import nn

from avshared.models import ModelConfig, SharedMidFusionClassifier, build_model, count_parameters

BATCH = 6


@pytest.fixture
def tiny_config(tiny_config):
    """The shared tiny configuration four layers deep, so that the first k can be per-modality."""
    return replace(tiny_config, depth=4)


@pytest.fixture
def inputs(tiny_config, random_inputs):
    """inputs(seed=0) -> (audio, video) of BATCH clips."""
    return partial(random_inputs, tiny_config, BATCH)


def _model(config: ModelConfig) -> SharedMidFusionClassifier:
    torch.manual_seed(0)
    return SharedMidFusionClassifier("bimodal", config).eval()


def _depths(model: SharedMidFusionClassifier) -> dict[str, int]:
    stacks = {f"{m}_layers": stack for m, stack in model.modality_layers.items()}
    stacks["shared_layers"] = model.shared_encoder.layers
    return {name: len(stack.layers) for name, stack in stacks.items()}


@pytest.mark.parametrize("modalities", ["audio", "video", "bimodal"])
def test_logits_shape_for_each_modality_set(modalities, tiny_config, inputs):
    audio, video = inputs()
    model = SharedMidFusionClassifier(modalities, tiny_config)
    given = {"audio": audio, "video": video}

    logits = model(**{m: given[m] for m in model.modalities})

    assert logits.shape == (BATCH, 6)


@pytest.mark.parametrize(("separate_layers", "expected"), [(None, 2), (1, 1), (3, 3)])
def test_the_first_k_layers_are_per_modality_and_the_rest_shared(
    separate_layers, expected, tiny_config
):
    model = _model(
        ModelConfig.preset("tiny", **{**tiny_config.to_dict(), "separate_layers": separate_layers})
    )

    assert model.separate_layers == expected
    assert _depths(model) == {
        "audio_layers": expected,
        "video_layers": expected,
        "shared_layers": tiny_config.depth - expected,
    }
    audio_ids = {id(p) for p in model.modality_layers["audio"].parameters()}
    assert audio_ids.isdisjoint(id(p) for p in model.modality_layers["video"].parameters())


def test_parameters_lie_between_the_shared_and_the_separate_model(tiny_config):
    one_layer = count_parameters(_model(tiny_config).modality_layers["audio"].layers[0])
    counts = {
        kind: count_parameters(build_model(kind, "bimodal", tiny_config))
        for kind in ("shared", "shared_mid", "separate")
    }

    assert counts["shared"] < counts["shared_mid"] < counts["separate"]
    # The second modality's copy of the k = depth // 2 separate layers is all mid fusion adds.
    assert counts["shared_mid"] - counts["shared"] == (tiny_config.depth // 2) * one_layer


def test_the_per_modality_layers_see_their_own_modality_only_and_the_shared_ones_both(
    tiny_config, inputs
):
    audio, video = inputs()
    _, other_video = inputs(seed=1)
    model = _model(tiny_config)
    audio_states = []
    model.modality_layers["audio"].register_forward_hook(
        lambda _m, _a, out: audio_states.append(out)
    )

    with torch.no_grad():
        first = model(audio=audio, video=video)
        second = model(audio=audio, video=other_video)

    assert torch.equal(audio_states[0], audio_states[1])
    assert (first - second).abs().amax(dim=1).min() > 1e-4  # every sample's prediction moved


def test_absent_modality_flags_reduce_to_single_modality_outputs(tiny_config, inputs):
    audio, video = inputs()
    _, other_video = inputs(seed=1)
    model = _model(tiny_config)
    audio_present = torch.tensor([True, True, False, True, False, True])
    video_present = torch.tensor([False, True, True, False, True, True])

    with torch.no_grad():
        mixed = model(audio, video, audio_present=audio_present, video_present=video_present)
        audio_only = model(audio=audio)
        video_only = model(video=video)
        both = model(audio=audio, video=video)
        all_video_absent = model(audio, other_video, video_present=torch.zeros(BATCH, dtype=bool))

    torch.testing.assert_close(mixed[~video_present], audio_only[~video_present])
    torch.testing.assert_close(mixed[~audio_present], video_only[~audio_present])
    both_present = audio_present & video_present
    torch.testing.assert_close(mixed[both_present], both[both_present])
    torch.testing.assert_close(all_video_absent, audio_only)


def test_a_missing_modality_leaves_the_gradients_finite(tiny_config, inputs):
    audio, video = inputs()
    model = _model(ModelConfig.preset("tiny", **{**tiny_config.to_dict(), "dropout": 0.1})).train()
    video_present = torch.tensor([True, False, True, False, True, False])

    logits = model(audio=audio, video=video, video_present=video_present)
    nn.functional.cross_entropy(logits, torch.arange(BATCH) % 6).backward()

    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_modality_dropout_leaves_exactly_one_modality_per_dropped_sample(tiny_config, inputs):
    audio, video = inputs()
    model = _model(ModelConfig.preset("tiny", **{**tiny_config.to_dict(), "modality_dropout": 1.0}))
    with torch.no_grad():
        audio_only = model(audio=audio)
        video_only = model(video=video)
        torch.manual_seed(3)
        dropped = model.train()(audio=audio, video=video)  # dropout=0: only modalities drop

    matches_audio = torch.isclose(dropped, audio_only, atol=1e-5).all(dim=1)
    matches_video = torch.isclose(dropped, video_only, atol=1e-5).all(dim=1)
    assert (matches_audio ^ matches_video).all()
    assert matches_audio.any() and matches_video.any()


def test_a_model_too_shallow_to_split_is_refused_with_what_to_do(tiny_config):
    with pytest.raises(ValueError, match=r"depth >= 2.*raise model\.depth"):
        SharedMidFusionClassifier(
            "bimodal", ModelConfig.preset("tiny", **{**tiny_config.to_dict(), "depth": 1})
        )
