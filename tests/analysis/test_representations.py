"""Each clip's audio-only, video-only and audio-visual embeddings, from the shared model, the
separate encoders and mid fusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avshared.analysis.attention import encoder_attention
from avshared.analysis.representations import clip_embeddings, pool_layers
from avshared.models import SharedEncoder, SharedEncoderClassifier


def test_shared_model_embeddings_are_what_its_head_reads(shared_model, inputs):
    audio, video = inputs

    embeddings = clip_embeddings(shared_model, audio, video, batch_size=2)

    with torch.no_grad():
        head = shared_model.head
        for sense, kwargs in (
            ("audio", {"audio": audio}),
            ("video", {"video": video}),
            ("audiovisual", {"audio": audio, "video": video}),
        ):
            logits = head(torch.from_numpy(getattr(embeddings, sense)))
            torch.testing.assert_close(logits, shared_model(**kwargs), rtol=1e-4, atol=1e-5)
    assert embeddings.audio.shape == (5, 16)
    assert embeddings.audio_layers.shape == (2, 5, 16)
    assert embeddings.video_layers.shape == (2, 5, 16)


def test_the_audio_only_pass_equals_the_bimodal_pass_with_video_absent(shared_model, inputs):
    audio, video = inputs
    absent = torch.zeros(5, dtype=torch.bool)

    embeddings = clip_embeddings(shared_model, audio, video)
    with torch.no_grad():
        tokens, mask, _ = shared_model.encoder_inputs(audio, video, video_present=absent)
        masked = shared_model.encoder(tokens, padding_mask=mask)

    np.testing.assert_allclose(embeddings.audio, masked.numpy(), rtol=1e-4, atol=1e-5)


def test_separate_model_embeddings_come_from_each_senses_encoder(separate_model, inputs):
    audio, video = inputs

    embeddings = clip_embeddings(separate_model, audio, video.numpy(), batch_size=3)

    with torch.no_grad():
        audio_logits = separate_model.heads["audio"](torch.from_numpy(embeddings.audio))
        video_logits = separate_model.heads["video"](torch.from_numpy(embeddings.video))
        torch.testing.assert_close(audio_logits, separate_model(audio=audio), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(video_logits, separate_model(video=video), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        embeddings.audiovisual, (embeddings.audio + embeddings.video) / 2, rtol=1e-6
    )


def test_mid_fusion_embeddings_are_what_its_head_reads(mid_model, inputs):
    audio, video = inputs
    absent = torch.zeros(5, dtype=torch.bool)

    embeddings = clip_embeddings(mid_model, audio, video, batch_size=2)

    with torch.no_grad():
        head = mid_model.head
        for sense, kwargs in (
            ("audio", {"audio": audio}),
            ("audio", {"audio": audio, "video": video, "video_present": absent}),
            ("video", {"video": video}),
            ("audiovisual", {"audio": audio, "video": video}),
        ):
            logits = head(torch.from_numpy(getattr(embeddings, sense)))
            torch.testing.assert_close(logits, mid_model(**kwargs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_mid_fusions_layers_are_its_per_sense_layers_then_its_shared_layers(
    mid_model, inputs, pooling
):
    audio, video = inputs

    embeddings = clip_embeddings(mid_model, audio, video, pooling=pooling)

    assert embeddings.audio_layers.shape == embeddings.video_layers.shape == (3, 5, 16)
    with torch.no_grad():
        tokens = mid_model.embeddings["video"](video)
        first = mid_model.modality_layers["video"].layers[0](tokens)
        own = mid_model.modality_layers["video"](tokens)  # both per-sense layers
        trace = encoder_attention(mid_model.shared_encoder, own, need_weights=False)
    # The per-sense layers have no [CLS]: their tokens' mean, whatever the pooling.
    for layer, states in enumerate((first, own)):
        np.testing.assert_allclose(
            embeddings.video_layers[layer], states.mean(1).numpy(), rtol=1e-4, atol=1e-5
        )
    np.testing.assert_allclose(
        embeddings.video_layers[2], pool_layers(trace, pooling)[0].numpy(), rtol=1e-4, atol=1e-5
    )


def test_the_last_layers_cls_state_normalised_is_the_pooled_output(shared_model, inputs):
    audio, video = inputs

    embeddings = clip_embeddings(shared_model, audio, video)

    with torch.no_grad():
        normed = shared_model.encoder.norm(torch.from_numpy(embeddings.video_layers[-1]))
    np.testing.assert_allclose(normed.numpy(), embeddings.video, rtol=1e-4, atol=1e-5)


def test_mean_pooling_skips_missing_tokens():
    torch.manual_seed(0)
    encoder = SharedEncoder(dim=8, depth=1, heads=2, dropout=0.0).eval()
    tokens = torch.randn(2, 4, 8)
    mask = torch.tensor([[False, False, True, True], [False] * 4])
    with torch.no_grad():
        trace = encoder_attention(encoder, tokens, mask, need_weights=False)
        pooled = pool_layers(trace, "mean")

    assert trace.attention is None
    torch.testing.assert_close(pooled[0, 0], trace.hidden[0, 0, 1:3].mean(0))
    torch.testing.assert_close(pooled[0, 1], trace.hidden[0, 1, 1:].mean(0))
    with pytest.raises(ValueError, match="pooling"):
        pool_layers(trace, "max")


def test_the_models_training_mode_is_restored(shared_model, inputs):
    shared_model.train()

    clip_embeddings(shared_model, *inputs)

    assert shared_model.training


def test_a_one_sense_model_is_refused(tiny_config, inputs):
    with pytest.raises(ValueError, match="audio and video"):
        clip_embeddings(SharedEncoderClassifier("audio", tiny_config), *inputs)


def test_a_selection_keeps_the_rows_of_every_embedding_in_the_order_asked(shared_model, inputs):
    embeddings = clip_embeddings(shared_model, *inputs)

    chosen = embeddings.select([3, 0])

    for sense in ("audio", "video", "audiovisual"):
        np.testing.assert_array_equal(getattr(chosen, sense), getattr(embeddings, sense)[[3, 0]])
    for layers in ("audio_layers", "video_layers"):
        np.testing.assert_array_equal(
            getattr(chosen, layers), getattr(embeddings, layers)[:, [3, 0]]
        )
