"""The classification head: an encoder vector to emotion logits."""

from __future__ import annotations

from torch import Tensor, nn

from avshared.models.initialisation import init_vit_weights


class ClassificationHead(nn.Module):
    """Features (B, D) -> logits (B, num_classes): one Linear layer.

    The features come normalised: the encoder ends with a LayerNorm (``SharedEncoder.norm``), the
    model's one final normalisation, so the head adds none. Returns logits, not probabilities:
    losses take logits, and callers apply a softmax (or use the classifiers' ``predict_proba``)
    when they need probabilities.
    """

    def __init__(self, dim: int, num_classes: int = 6) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)
        self.apply(init_vit_weights)

    def forward(self, features: Tensor) -> Tensor:
        """(B, D) -> (B, num_classes)."""
        return self.linear(features)
