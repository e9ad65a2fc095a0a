"""SharedEncoderClassifier: one encoder for both senses, early fusion, masking, modality dropout."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from avshared.models import ModelConfig, SharedEncoder, SharedEncoderClassifier

BATCH = 6


@pytest.fixture
def inputs(tiny_config, random_inputs):
    """inputs(seed=0) -> (audio, uint8 video) of BATCH clips."""
    return partial(random_inputs, tiny_config, BATCH, video_dtype=torch.uint8)


def _model(config: ModelConfig) -> SharedEncoderClassifier:
    torch.manual_seed(0)
    return SharedEncoderClassifier(("audio", "video"), config).eval()


@pytest.mark.parametrize("modalities", ["audio", "video", "bimodal"])
def test_logits_shape_for_each_modality_set(modalities, tiny_config, inputs):
    audio, video = inputs()
    model = SharedEncoderClassifier(modalities, tiny_config)
    given = {"audio": audio, "video": video}

    logits = model(**{m: given[m] for m in model.modalities})

    assert logits.shape == (BATCH, 6)


def test_bimodal_model_answers_with_one_modality(tiny_config, inputs):
    audio, video = inputs()
    model = _model(tiny_config)

    assert model(audio=audio).shape == (BATCH, 6)
    assert model(video=video).shape == (BATCH, 6)


def test_predict_proba_gives_distributions(tiny_config, inputs):
    audio, video = inputs()

    probabilities = _model(tiny_config).predict_proba(audio, video)

    assert probabilities.shape == (BATCH, 6)
    assert (probabilities >= 0).all()
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(BATCH))


def test_there_is_exactly_one_encoder(tiny_config):
    model = _model(tiny_config)

    encoders = [m for m in model.modules() if isinstance(m, SharedEncoder)]

    assert len(encoders) == 1
    assert encoders[0] is model.encoder


def test_audio_only_and_video_only_train_the_same_encoder_parameters(tiny_config, inputs):
    audio, video = inputs()
    model = _model(tiny_config).train()
    encoder_parameters = dict(model.encoder.named_parameters())
    gradients = {}
    for name, kwargs in (("audio", {"audio": audio}), ("video", {"video": video})):
        model.zero_grad()
        # Squared: with a linear head the gradient of a plain sum reaching the final norm.bias
        # would not depend on the input.
        (model(**kwargs) ** 2).sum().backward()
        gradients[name] = {n: p.grad.clone() for n, p in encoder_parameters.items()}
        other = model.embeddings["video" if name == "audio" else "audio"]
        assert all(p.grad is None or not p.grad.any() for p in other.parameters())

    for parameter_name in encoder_parameters:
        audio_grad = gradients["audio"][parameter_name]
        video_grad = gradients["video"][parameter_name]
        assert audio_grad.abs().sum() > 0, parameter_name
        assert video_grad.abs().sum() > 0, parameter_name
        assert not torch.equal(audio_grad, video_grad), parameter_name


def test_early_fusion_feeds_both_token_sets_to_one_encoder_call(tiny_config, inputs):
    audio, video = inputs()
    model = _model(tiny_config)
    seen = []
    model.encoder.register_forward_hook(lambda _module, args, _output: seen.append(args[0].shape))

    model(audio=audio, video=video)

    assert seen == [(BATCH, tiny_config.audio_tokens + tiny_config.video_tokens, tiny_config.dim)]


def test_encoder_inputs_are_what_forward_feeds_the_encoder(tiny_config, inputs):
    audio, video = inputs()
    model = _model(tiny_config)
    present = torch.tensor([True, False, True, True, False, True])
    seen = []
    model.encoder.register_forward_hook(
        lambda _m, args, kwargs, _o: seen.append((args, kwargs)), with_kwargs=True
    )

    with torch.no_grad():
        tokens, mask, spans = model.encoder_inputs(audio, video, video_present=present)
        model(audio, video, video_present=present)
        video_tokens, no_mask, video_spans = model.encoder_inputs(video=video)

    torch.testing.assert_close(tokens, seen[0][0][0])
    torch.testing.assert_close(mask, seen[0][1]["padding_mask"])
    assert spans == {
        "audio": slice(0, tiny_config.audio_tokens),
        "video": slice(
            tiny_config.audio_tokens, tiny_config.audio_tokens + tiny_config.video_tokens
        ),
    }
    assert mask[:, spans["video"]].all(dim=1).tolist() == (~present).tolist()
    assert not mask[:, spans["audio"]].any()
    assert no_mask is None and video_spans == {"video": slice(0, tiny_config.video_tokens)}
    assert video_tokens.shape == (BATCH, tiny_config.video_tokens, tiny_config.dim)


def test_changing_video_changes_the_prediction_for_fixed_audio(tiny_config, inputs):
    audio, video = inputs()
    _, other_video = inputs(seed=1)
    model = _model(tiny_config)

    with torch.no_grad():
        first = model(audio=audio, video=video)
        second = model(audio=audio, video=other_video)

    assert (first - second).abs().amax(dim=1).min() > 1e-4  # every sample moved


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


def test_modality_dropout_is_off_in_eval_and_at_zero_probability(tiny_config, inputs):
    audio, video = inputs()
    dropping = _model(
        ModelConfig.preset("tiny", **{**tiny_config.to_dict(), "modality_dropout": 1.0})
    )
    keeping = _model(tiny_config).train()
    with torch.no_grad():
        reference = _model(tiny_config)(audio=audio, video=video)
        torch.testing.assert_close(dropping.eval()(audio=audio, video=video), reference)
        torch.testing.assert_close(keeping(audio=audio, video=video), reference)


def test_modality_dropout_never_drops_a_sample_s_only_modality(tiny_config, inputs):
    audio, video = inputs()
    model = _model(ModelConfig.preset("tiny", **{**tiny_config.to_dict(), "modality_dropout": 1.0}))
    video_present = torch.tensor([False, False, False, True, True, True])
    with torch.no_grad():
        audio_only = model(audio=audio)
        torch.manual_seed(0)
        dropped = model.train()(audio=audio, video=video, video_present=video_present)

    torch.testing.assert_close(dropped[~video_present], audio_only[~video_present])


def test_call_errors_tell_what_to_do(tiny_config, inputs):
    audio, video = inputs()
    audio_model = SharedEncoderClassifier("audio", tiny_config)

    with pytest.raises(ValueError, match=r"built for \['audio'\] and cannot take \['video'\]"):
        audio_model(audio=audio, video=video)
    with pytest.raises(ValueError, match="at least one input"):
        audio_model()
    with pytest.raises(ValueError, match="same batch size"):
        _model(tiny_config)(audio=audio, video=video[:2])
    with pytest.raises(ValueError, match=r"samples \[0\] have no modality present"):
        none_for_first = torch.tensor([False] + [True] * (BATCH - 1))
        _model(tiny_config)(
            audio, video, audio_present=none_for_first, video_present=none_for_first
        )
    with pytest.raises(ValueError, match="video_present was given without video input"):
        _model(tiny_config)(audio=audio, video_present=torch.ones(BATCH, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown modalities 'speech'"):
        SharedEncoderClassifier("speech", tiny_config)
