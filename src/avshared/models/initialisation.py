"""ViT-style weight initialisation shared by every module of the package.

Linear and attention projections get Xavier-uniform weights and zero biases, patch-embedding
convolutions are initialised as the Linear layer they are (Xavier on the flattened kernel, as in
MAE), LayerNorms start as the identity, and learned tokens/positions get a truncated normal with
std 0.02.
"""

from __future__ import annotations

from torch import nn

TOKEN_INIT_STD = 0.02


def init_vit_weights(module: nn.Module) -> None:
    """Initialise one module in place; meant for ``module.apply(init_vit_weights)``."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.MultiheadAttention):
        # The fused q/k/v projection is a bare Parameter, not a Linear; out_proj is a Linear.
        if module.in_proj_weight is not None:
            nn.init.xavier_uniform_(module.in_proj_weight)
        if module.in_proj_bias is not None:
            nn.init.zeros_(module.in_proj_bias)
    elif isinstance(module, nn.Conv2d | nn.Conv3d):
        nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def init_token_(parameter: nn.Parameter) -> None:
    """Initialise a learned token, position or type embedding: truncated normal, std 0.02."""
    nn.init.trunc_normal_(
        parameter, std=TOKEN_INIT_STD, a=-2 * TOKEN_INIT_STD, b=2 * TOKEN_INIT_STD
    )
