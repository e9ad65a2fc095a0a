"""The shared encoder and the classification head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avshared.models import (
    ClassificationHead,
    ModelConfig,
    SharedEncoder,
    build_model,
    restore_model,
)

TINY_CONFIG = ModelConfig.preset("tiny")


def _encoder() -> SharedEncoder:
    torch.manual_seed(0)
    return SharedEncoder(dim=16, depth=2, heads=2, mlp_ratio=2.0, dropout=0.0).eval()


def test_encoder_returns_one_vector_per_sample():
    cls = _encoder()(torch.randn(3, 10, 16))

    assert cls.shape == (3, 16)


def test_token_states_give_every_position_with_the_cls_output_first():
    encoder = _encoder()
    tokens = torch.randn(2, 10, 16)
    states = encoder.token_states(tokens)

    assert states.shape == (2, 11, 16)
    torch.testing.assert_close(states[:, 0], encoder(tokens), rtol=0, atol=0)
    # Each token's state depends on the others (attention), unlike a per-token map.
    # (A new token, not a shifted one: the pre-norm layers remove a constant added to a token.)
    changed = tokens.clone()
    changed[:, 0] = torch.randn(2, 16)
    assert not torch.allclose(encoder.token_states(changed)[:, 5], states[:, 5])


def test_encoder_output_depends_on_tokens():
    encoder = _encoder()
    tokens = torch.randn(2, 10, 16)
    changed = tokens.clone()
    changed[:, 4] = torch.randn(2, 16)

    assert not torch.allclose(encoder(tokens), encoder(changed))


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_masked_tokens_do_not_affect_the_output(grad):
    encoder = _encoder()
    tokens = torch.randn(2, 10, 16)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[:, 6:] = True
    changed = tokens.clone()
    changed[:, 6:] = torch.randn(2, 4, 16) * 5

    with torch.set_grad_enabled(grad):
        masked = encoder(tokens, padding_mask=mask)
        masked_changed = encoder(changed, padding_mask=mask)
        truncated = encoder(tokens[:, :6])

    torch.testing.assert_close(masked, masked_changed)
    torch.testing.assert_close(masked, truncated, rtol=1e-5, atol=1e-5)


def test_fully_masked_sample_still_gets_a_finite_vector():
    mask = torch.ones(2, 5, dtype=torch.bool)

    cls = _encoder()(torch.randn(2, 5, 16), padding_mask=mask)

    assert torch.isfinite(cls).all()


def test_layers_do_not_start_identical():
    layers = _encoder().layers.layers

    assert not torch.equal(layers[0].linear1.weight, layers[1].linear1.weight)
    assert not torch.equal(layers[0].self_attn.in_proj_weight, layers[1].self_attn.in_proj_weight)


def test_encoder_rejects_wrong_width_and_bad_masks():
    encoder = _encoder()

    with pytest.raises(ValueError, match="D=16"):
        encoder(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="padding_mask must be a bool tensor"):
        encoder(torch.randn(2, 5, 16), padding_mask=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="padding_mask must be a bool tensor"):
        encoder(torch.randn(2, 5, 16), padding_mask=torch.zeros(2, 4, dtype=torch.bool))


def test_dim_must_divide_into_heads():
    with pytest.raises(ValueError, match="divisible by heads"):
        SharedEncoder(dim=10, depth=1, heads=3)


def test_head_maps_features_to_logits():
    head = ClassificationHead(dim=16, num_classes=6)
    features = torch.randn(4, 16)

    logits = head(features)

    assert logits.shape == (4, 6)
    assert not torch.allclose(logits[0], logits[1])


def test_layer_norm_epsilon_is_an_option_with_torchs_default():
    default = SharedEncoder(dim=16, depth=2, heads=2)
    timm_like = SharedEncoder(dim=16, depth=2, heads=2, norm_eps=1e-6)

    def eps(encoder):
        return {m.eps for m in encoder.modules() if isinstance(m, torch.nn.LayerNorm)}

    assert eps(default) == {1e-5}
    assert eps(timm_like) == {1e-6}


def test_the_encoders_layernorm_is_the_models_only_final_normalisation():
    model = build_model("shared", "bimodal", TINY_CONFIG)
    assert isinstance(model.encoder.norm, nn.LayerNorm)
    assert not any(isinstance(module, nn.LayerNorm) for module in model.head.modules())
    assert [type(m) for m in model.head.children()] == [nn.Linear]


def test_weights_with_the_old_head_layernorm_are_refused_clearly():
    model = build_model("shared", "audio", TINY_CONFIG)
    weights = {
        **model.state_dict(),
        "head.norm.weight": torch.ones(TINY_CONFIG.dim),
        "head.norm.bias": torch.zeros(TINY_CONFIG.dim),
    }
    with pytest.raises(ValueError, match=r"LayerNorm in the classification head.*train the phase"):
        restore_model("shared", "audio", TINY_CONFIG.to_dict(), weights)
