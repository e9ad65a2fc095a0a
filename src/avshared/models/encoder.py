"""The Transformer encoder shared by every modality: tokens in, one [CLS] vector out; and the stack
of Transformer layers it is built from."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from avshared.models.initialisation import init_token_, init_vit_weights


def transformer_layers(
    dim: int,
    depth: int,
    heads: int,
    mlp_ratio: float = 4.0,
    dropout: float = 0.1,
    *,
    norm_eps: float = 1e-5,
) -> nn.TransformerEncoder:
    """``depth`` pre-norm Transformer layers (GELU MLP of width ``mlp_ratio * D``), ViT-initialised:
    tokens (B, N, D) [+ ``src_key_padding_mask`` (B, N), True = missing] -> (B, N, D), with no
    final LayerNorm. The blocks of ``SharedEncoder`` and of the mid-fusion model's per-modality
    layers (``avshared.models.shared_mid``), so that every stack of the package computes alike."""
    if dim % heads:
        raise ValueError(f"dim={dim} must be divisible by heads={heads}")
    layer = nn.TransformerEncoderLayer(
        d_model=dim,
        nhead=heads,
        dim_feedforward=round(dim * mlp_ratio),
        dropout=dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
        layer_norm_eps=norm_eps,
    )
    # Nested tensors are unavailable with norm_first; disabling them avoids a warning per build.
    layers = nn.TransformerEncoder(layer, num_layers=depth, enable_nested_tensor=False)
    # TransformerEncoder deep-copies the layer: re-initialise so that the layers differ.
    layers.apply(init_vit_weights)
    return layers


class SharedEncoder(nn.Module):
    """Tokens (B, N, D) [+ key-padding mask (B, N)] -> [CLS] vector (B, D).

    A learned [CLS] token is prepended, the sequence goes through ``depth`` pre-norm Transformer
    layers (``transformer_layers``) and a final LayerNorm, and the [CLS] output is returned. The
    encoder knows nothing of modalities: the same weights process whatever tokens come in, which is
    what makes it "shared". ``padding_mask`` is True where a token is missing; missing tokens are
    never attended to, so they cannot influence the output. The [CLS] token is always present, so a
    sample with every token missing still gets a finite vector. ``norm_eps`` is the epsilon of every
    LayerNorm (torch's default 1e-5; timm's ViTs use 1e-6, so an encoder that takes a ViT's weights,
    see ``avshared.models.vit_checkpoint``, is built with 1e-6 to match them). ``input_dropout``
    False leaves out the dropout of the incoming sequence, for an encoder fed the output of other
    layers whose input was dropped out already (the shared layers of the mid-fusion model).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        *,
        norm_eps: float = 1e-5,
        input_dropout: bool = True,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dropout = nn.Dropout(dropout if input_dropout else 0.0)
        self.layers = transformer_layers(dim, depth, heads, mlp_ratio, dropout, norm_eps=norm_eps)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)  # starts as the identity, as ViTs' do
        init_token_(self.cls_token)

    def forward(self, tokens: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """(B, N, D) tokens, optional (B, N) bool mask (True = missing) -> (B, D)."""
        return self.norm(self._contextualise(tokens, padding_mask)[:, 0])

    def token_states(self, tokens: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """(B, N, D) tokens [+ (B, N) mask] -> (B, 1 + N, D): the final LayerNorm of every
        position's output, [CLS] first. What a masked autoencoder's decoder reads
        (``avshared.models.masked_autoencoder``); ``forward`` is its [CLS] row."""
        return self.norm(self._contextualise(tokens, padding_mask))

    def _contextualise(self, tokens: Tensor, padding_mask: Tensor | None) -> Tensor:
        """[CLS] prepended and the layers applied: (B, 1 + N, D), before the final LayerNorm."""
        if tokens.ndim != 3 or tokens.shape[2] != self.dim:
            raise ValueError(
                f"encoder input must be tokens (B, N, D) with D={self.dim}; "
                f"got shape {tuple(tokens.shape)}"
            )
        batch = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)
        mask = None
        if padding_mask is not None:
            if padding_mask.shape != tokens.shape[:2] or padding_mask.dtype != torch.bool:
                raise ValueError(
                    "padding_mask must be a bool tensor of shape (B, N) = "
                    f"{tuple(tokens.shape[:2])}; got {padding_mask.dtype} "
                    f"{tuple(padding_mask.shape)}"
                )
            cls_present = torch.zeros(batch, 1, dtype=torch.bool, device=padding_mask.device)
            mask = torch.cat([cls_present, padding_mask], dim=1)
        return self.layers(self.dropout(x), src_key_padding_mask=mask)
