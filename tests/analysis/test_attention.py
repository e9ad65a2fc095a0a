"""encoder_attention: the fused training path's output, with the attention maps kept."""

from __future__ import annotations

import pytest
import torch

from avshared.analysis.attention import (
    classifier_attention,
    encoder_attention,
    has_joint_encoder,
)
from avshared.models import SharedEncoder


def _encoder(norm_first: bool = True) -> SharedEncoder:
    torch.manual_seed(0)
    encoder = SharedEncoder(dim=16, depth=3, heads=4, mlp_ratio=2.0, dropout=0.1).eval()
    for layer in encoder.layers.layers:
        layer.norm_first = norm_first
    return encoder


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_cls_output_equals_the_encoders(grad):
    encoder = _encoder()
    tokens = torch.randn(3, 10, 16)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[1, 6:] = True

    with torch.set_grad_enabled(grad):
        trace = encoder_attention(encoder, tokens, mask)
        expected = encoder(tokens, padding_mask=mask)

    torch.testing.assert_close(trace.cls, expected, rtol=1e-5, atol=1e-5)


def test_post_norm_layers_are_replicated_too():
    encoder = _encoder(norm_first=False)
    tokens = torch.randn(2, 7, 16)

    with torch.no_grad():
        torch.testing.assert_close(
            encoder_attention(encoder, tokens).cls, encoder(tokens), rtol=1e-5, atol=1e-5
        )


def test_maps_are_per_layer_and_head_rows_sum_to_one_and_skip_masked_tokens():
    encoder = _encoder()
    tokens = torch.randn(2, 10, 16)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 4:] = True

    with torch.no_grad():
        trace = encoder_attention(encoder, tokens, mask)

    assert trace.attention.shape == (3, 2, 4, 11, 11)
    assert trace.hidden.shape == (3, 2, 11, 16)
    torch.testing.assert_close(trace.attention.sum(-1), torch.ones(3, 2, 4, 11))
    assert torch.all(trace.attention[:, 0, :, :, 5:] == 0)  # positions 5.. = tokens 4..
    assert torch.all(trace.attention[:, 1] > 0)
    assert not trace.padding_mask[:, 0].any()


def test_a_classifiers_trace_matches_its_prediction(shared_model, inputs):
    audio, video = inputs
    present = torch.tensor([True, False, True, True, False])

    with torch.no_grad():
        trace, spans = classifier_attention(shared_model, audio, video, video_present=present)
        logits = shared_model(audio, video, video_present=present)

    torch.testing.assert_close(shared_model.head(trace.cls), logits, rtol=1e-5, atol=1e-5)
    assert spans == {"audio": slice(0, 8), "video": slice(8, 16)}
    assert torch.all(trace.attention[:, 1, :, :, 9:] == 0)  # clip 1 has no video


def test_wrong_token_width_is_refused():
    with pytest.raises(ValueError, match="D=16"):
        encoder_attention(_encoder(), torch.randn(2, 5, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_trace_matches_the_fused_path_on_cuda():
    encoder = _encoder().cuda()
    tokens = torch.randn(4, 40, 16, device="cuda")
    mask = torch.zeros(4, 40, dtype=torch.bool, device="cuda")
    mask[2, 20:] = True

    with torch.no_grad():
        trace = encoder_attention(encoder, tokens, mask)
        expected = encoder(tokens, padding_mask=mask)

    torch.testing.assert_close(trace.cls, expected, rtol=1e-4, atol=1e-4)
    assert torch.all(trace.attention[:, 2, :, :, 21:] == 0)


def test_only_the_kind_that_fuses_the_senses_in_one_encoder_has_a_joint_encoder():
    assert has_joint_encoder("shared")
    assert not has_joint_encoder("separate")
    assert not has_joint_encoder("shared_late")
    assert not has_joint_encoder("shared_mid")  # its shared layers only: see the docstring
    with pytest.raises(ValueError, match="unknown model kind 'ensemble'"):
        has_joint_encoder("ensemble")
