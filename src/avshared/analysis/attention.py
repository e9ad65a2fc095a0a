"""Attention maps of a ``SharedEncoder``, for analysis only: training keeps the fused path.

``nn.TransformerEncoderLayer`` computes attention with ``scaled_dot_product_attention`` and never
returns the weights. ``encoder_attention`` re-runs the encoder layer by layer, replicating each
layer's computation (pre-norm: x + SA(LN1(x)), then x + MLP(LN2(x)); post-norm layers are handled
too) but calling the layer's own ``self_attn`` with ``need_weights=True,
average_attn_weights=False``. The same weights give the same [CLS] output as ``encoder(...)`` in
eval mode (tested to 1e-5); dropout is not applied, so use it on a model in eval mode.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from avshared.models.builder import MODEL_KINDS
from avshared.models.encoder import SharedEncoder


class EncoderTrace(NamedTuple):
    """What one pass through the encoder shows.

    attention: (layers, B, heads, N+1, N+1) attention weights, row = query, column = key; position 0
        is [CLS], positions 1..N the tokens in input order. Rows sum to one; masked keys get 0.
        None when the trace was taken with ``need_weights=False``.
    cls: (B, D) the encoder's output, the final LayerNorm of the last layer's [CLS] state.
    hidden: (layers, B, N+1, D) each layer's output sequence (before the final LayerNorm).
    padding_mask: (B, N+1) bool, True where a position is missing ([CLS] never is).
    """

    attention: Tensor | None
    cls: Tensor
    hidden: Tensor
    padding_mask: Tensor


def encoder_attention(
    encoder: SharedEncoder,
    tokens: Tensor,
    padding_mask: Tensor | None = None,
    *,
    need_weights: bool = True,
) -> EncoderTrace:
    """Run ``encoder`` on tokens (B, N, D) [+ mask (B, N), True = missing] and keep its attention.

    Returns an ``EncoderTrace``: attention (layers, B, heads, N+1, N+1), cls (B, D), hidden
    (layers, B, N+1, D), padding_mask (B, N+1). ``need_weights=False`` keeps only the states (the
    attention is then None). Gradients flow unless called under ``torch.no_grad()`` (gradient x
    input analyses may use them).
    """
    if tokens.ndim != 3 or tokens.shape[2] != encoder.dim:
        raise ValueError(
            f"tokens must be (B, N, D) with D={encoder.dim}; got shape {tuple(tokens.shape)}"
        )
    batch = tokens.shape[0]
    x = torch.cat([encoder.cls_token.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)
    if padding_mask is None:
        padding_mask = torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    if padding_mask.shape != tokens.shape[:2] or padding_mask.dtype != torch.bool:
        raise ValueError(
            f"padding_mask must be bool (B, N) = {tuple(tokens.shape[:2])}; got "
            f"{padding_mask.dtype} {tuple(padding_mask.shape)}"
        )
    cls_present = torch.zeros(batch, 1, dtype=torch.bool, device=padding_mask.device)
    mask = torch.cat([cls_present, padding_mask], dim=1)
    maps, states = [], []
    for layer in encoder.layers.layers:
        x, weights = _layer_with_weights(layer, x, mask, need_weights)
        maps.append(weights)
        states.append(x)
    if encoder.layers.norm is not None:  # SharedEncoder has none; a TransformerEncoder may
        x = encoder.layers.norm(x)
    return EncoderTrace(
        attention=torch.stack(maps) if need_weights else None,
        cls=encoder.norm(x[:, 0]),
        hidden=torch.stack(states),
        padding_mask=mask,
    )


def _layer_with_weights(
    layer: nn.TransformerEncoderLayer, x: Tensor, mask: Tensor, need_weights: bool = True
) -> tuple[Tensor, Tensor | None]:
    """One ``nn.TransformerEncoderLayer`` step without dropout: (output, weights (B, H, N, N))."""

    def attend(h: Tensor) -> tuple[Tensor, Tensor | None]:
        out, weights = layer.self_attn(
            h, h, h, key_padding_mask=mask, need_weights=need_weights, average_attn_weights=False
        )
        return out, weights

    def feed_forward(h: Tensor) -> Tensor:
        return layer.linear2(layer.activation(layer.linear1(h)))

    if layer.norm_first:
        attended, weights = attend(layer.norm1(x))
        x = x + attended
        x = x + feed_forward(layer.norm2(x))
    else:
        attended, weights = attend(x)
        x = layer.norm1(x + attended)
        x = layer.norm2(x + feed_forward(x))
    return x, weights


def has_joint_encoder(model_kind: str) -> bool:
    """Whether a classifier of ``model_kind`` (``avshared.models.MODEL_KINDS``) puts both senses'
    tokens through one encoder together (``encoder_inputs``): the only kind whose attention can
    go from one sense to the other in every layer, and so the only kind with cross-modal shares
    and rollout.

    Mid fusion (``shared_mid``) is not counted, although its shared layers see both senses: its
    shares would cover those layers only (the model's layers from ``separate_layers`` on), and
    its rollout would have to carry [CLS]'s attention back through each sense's own first layers,
    which run before [CLS] is prepended, to reach the patches; ``classifier_attention`` traces one
    encoder from the embedded tokens. Its aligned representations are measured
    (``representations.clip_embeddings``)."""
    if model_kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {model_kind!r}; known: {sorted(MODEL_KINDS)}")
    return hasattr(MODEL_KINDS[model_kind], "encoder_inputs")


def classifier_attention(
    model: nn.Module,
    audio: Tensor | None = None,
    video: Tensor | None = None,
    *,
    audio_present: Tensor | None = None,
    video_present: Tensor | None = None,
) -> tuple[EncoderTrace, dict[str, slice]]:
    """``encoder_attention`` on a shared-encoder classifier's own encoder inputs.

    ``model`` is a ``SharedEncoderClassifier`` (anything with ``encoder_inputs`` and ``encoder``);
    inputs as its ``forward`` takes them. Returns the trace and, per modality given, the slice of
    token positions it occupies (add 1 for positions in the trace, where 0 is [CLS]).
    """
    tokens, mask, spans = model.encoder_inputs(
        audio, video, audio_present=audio_present, video_present=video_present
    )
    return encoder_attention(model.encoder, tokens, mask), spans
