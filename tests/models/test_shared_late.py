"""SharedLateFusionClassifier: the shared encoder and head on each modality alone, fused late."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from avshared.models import (
    ModelConfig,
    SharedEncoder,
    SharedEncoderClassifier,
    SharedLateFusionClassifier,
)

BATCH = 5


@pytest.fixture
def inputs(tiny_config, random_inputs):
    """inputs(seed=0) -> (audio, video) of BATCH clips."""
    return partial(random_inputs, tiny_config, BATCH)


def _model(config: ModelConfig) -> SharedLateFusionClassifier:
    torch.manual_seed(0)
    return SharedLateFusionClassifier("bimodal", config).eval()


@pytest.mark.parametrize("modalities", ["audio", "video", "bimodal"])
def test_logits_shape_for_each_modality_set(modalities, tiny_config, inputs):
    audio, video = inputs()
    model = SharedLateFusionClassifier(modalities, tiny_config)
    given = {"audio": audio, "video": video}

    logits = model(**{m: given[m] for m in model.modalities})

    assert logits.shape == (BATCH, 6)


def test_one_encoder_and_head_with_the_shared_models_parameters_and_initial_weights(tiny_config):
    late = _model(tiny_config)
    torch.manual_seed(0)
    early = SharedEncoderClassifier("bimodal", tiny_config)

    assert len([m for m in late.modules() if isinstance(m, SharedEncoder)]) == 1
    late_state, early_state = late.state_dict(), early.state_dict()
    assert late_state.keys() == early_state.keys()
    for name, weights in early_state.items():
        assert torch.equal(late_state[name], weights), name


def test_a_single_modality_gets_exactly_the_encoder_and_head_on_its_own_tokens(tiny_config, inputs):
    audio, video = inputs()
    model = _model(tiny_config)

    with torch.no_grad():
        audio_only = model(audio=audio)
        by_hand = model.head(model.encoder(model.embeddings["audio"](audio)))
        both = model(audio=audio, video=video)
        video_only = model(video=video)

    assert torch.equal(audio_only, by_hand)
    torch.testing.assert_close(both, (audio_only + video_only) / 2)


def test_presence_flags_average_over_present_modalities_only(tiny_config, inputs):
    audio, video = inputs()
    model = _model(tiny_config)
    video_present = torch.tensor([True, False, True, False, True])

    with torch.no_grad():
        mixed = model(audio=audio, video=video, video_present=video_present)
        audio_only = model(audio=audio)
        both = model(audio=audio, video=video)

    assert torch.equal(mixed[~video_present], audio_only[~video_present])
    torch.testing.assert_close(mixed[video_present], both[video_present])


def test_the_senses_meet_only_at_the_output(tiny_config, inputs):
    audio, video = inputs()
    _, other_video = inputs(seed=1)
    model = _model(tiny_config)

    with torch.no_grad():
        first, _ = model.modality_logits(audio=audio, video=video)
        second, _ = model.modality_logits(audio=audio, video=other_video)

    assert torch.equal(first["audio"], second["audio"])
    assert not torch.allclose(first["video"], second["video"])


def test_modality_dropout_leaves_exactly_one_modality_per_dropped_sample(tiny_config, inputs):
    audio, video = inputs()
    model = _model(ModelConfig.preset("tiny", **{**tiny_config.to_dict(), "modality_dropout": 1.0}))
    model.train()  # dropout=0: only modalities drop; the same kernels for every call
    with torch.no_grad():
        audio_only = model(audio=audio)
        video_only = model(video=video)
        torch.manual_seed(3)
        dropped = model(audio=audio, video=video)

    matches_audio = (dropped == audio_only).all(dim=1)
    matches_video = (dropped == video_only).all(dim=1)
    assert (matches_audio ^ matches_video).all()
    assert matches_audio.any() and matches_video.any()
