"""SeparateEncodersClassifier: one encoder per modality, late fusion by averaging logits."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from avshared.models import ModelConfig, SeparateEncodersClassifier, SharedEncoder

BATCH = 5


@pytest.fixture
def inputs(tiny_config, random_inputs):
    """inputs(seed=0) -> (audio, video) of BATCH clips."""
    return partial(random_inputs, tiny_config, BATCH)


def _model(config: ModelConfig) -> SeparateEncodersClassifier:
    torch.manual_seed(0)
    return SeparateEncodersClassifier("bimodal", config).eval()


@pytest.mark.parametrize("modalities", ["audio", "video", "bimodal"])
def test_logits_shape_for_each_modality_set(modalities, tiny_config, inputs):
    audio, video = inputs()
    model = SeparateEncodersClassifier(modalities, tiny_config)
    given = {"audio": audio, "video": video}

    logits = model(**{m: given[m] for m in model.modalities})

    assert logits.shape == (BATCH, 6)


def test_each_modality_has_its_own_encoder_of_the_same_size(tiny_config):
    model = _model(tiny_config)

    encoders = [m for m in model.modules() if isinstance(m, SharedEncoder)]

    assert len(encoders) == 2
    audio_ids = {id(p) for p in model.encoders["audio"].parameters()}
    assert audio_ids.isdisjoint(id(p) for p in model.encoders["video"].parameters())
    shapes = [[p.shape for p in encoder.parameters()] for encoder in encoders]
    assert shapes[0] == shapes[1]


def test_bimodal_logits_are_the_mean_of_the_single_modality_logits(tiny_config, inputs):
    audio, video = inputs()
    model = _model(tiny_config)

    with torch.no_grad():
        both = model(audio=audio, video=video)
        audio_only = model(audio=audio)
        video_only = model(video=video)

    torch.testing.assert_close(both, (audio_only + video_only) / 2)


def test_presence_flags_average_over_present_modalities_only(tiny_config, inputs):
    audio, video = inputs()
    model = _model(tiny_config)
    video_present = torch.tensor([True, False, True, False, True])

    with torch.no_grad():
        mixed = model(audio=audio, video=video, video_present=video_present)
        audio_only = model(audio=audio)
        both = model(audio=audio, video=video)

    torch.testing.assert_close(mixed[~video_present], audio_only[~video_present])
    torch.testing.assert_close(mixed[video_present], both[video_present])


def test_video_does_not_reach_the_audio_branch(tiny_config, inputs):
    audio, video = inputs()
    _, other_video = inputs(seed=1)
    model = _model(tiny_config)
    audio_cls = []
    model.encoders["audio"].register_forward_hook(lambda _m, _a, out: audio_cls.append(out))

    with torch.no_grad():
        model(audio=audio, video=video)
        model(audio=audio, video=other_video)

    torch.testing.assert_close(audio_cls[0], audio_cls[1])
