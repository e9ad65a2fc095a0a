"""Mid fusion: each modality's own first layers, then layers shared over the joint sequence.

VAVL's design (Goncalves et al., 2023): the first ``k`` Transformer layers are per modality
(separate weights, each modality's tokens alone), the remaining ``depth - k`` layers are one stack
shared over the concatenated sequence ([CLS], audio, video), followed by one head. It sits between
the shared early-fusion model (k = 0: every layer shared) and separate encoders (nothing shared):
it has the parameters of k layers more than the shared model, and fewer than separate encoders
(which have a whole second encoder and head). Both stacks are built from the same blocks
(``avshared.models.encoder.transformer_layers``).

Missing modalities are removed as in the shared model, through the shared layers' key-padding
mask. The per-modality layers need none: a sample's tokens of one modality are all present or all
missing, and a missing modality's states never reach the shared layers' attention.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from avshared.models.classifier import (
    MODALITY_ORDER,
    EmotionClassifier,
    build_embedding,
    token_mask,
)
from avshared.models.config import ModelConfig
from avshared.models.encoder import SharedEncoder, transformer_layers
from avshared.models.head import ClassificationHead


class SharedMidFusionClassifier(EmotionClassifier):
    """audio (B, 1, n_mels, T) and/or video (B, F, 3, H, W) -> logits (B, num_classes).

    Per modality m: states_m = layers_m(dropout(embedding_m(x_m))), (B, N_m, D), with k =
    ``config.separate_layers`` layers (None: depth // 2); then the shared stack, a ``SharedEncoder``
    of depth - k layers, reads [CLS] + states_audio + states_video (key-padding mask (B, N) where a
    modality is missing) and returns the [CLS] vector (B, D), which the head turns into logits. A
    model built for both modalities can be called with only one of them.
    """

    def __init__(
        self, modalities: str | Sequence[str] = MODALITY_ORDER, config: ModelConfig | None = None
    ) -> None:
        config = config or ModelConfig()
        super().__init__(modalities, config)
        separate = config.depth // 2 if config.separate_layers is None else config.separate_layers
        if separate < 1:
            raise ValueError(
                f"a mid-fusion model needs depth >= 2 (some layers per modality, some shared); "
                f"got depth {config.depth}: raise model.depth or choose another model.kind"
            )
        self.separate_layers = separate
        self.embeddings = nn.ModuleDict({m: build_embedding(m, config) for m in self.modalities})
        self.dropout = nn.Dropout(config.dropout)
        self.modality_layers = nn.ModuleDict(
            {
                m: transformer_layers(
                    config.dim,
                    separate,
                    config.heads,
                    config.mlp_ratio,
                    config.dropout,
                    norm_eps=config.norm_eps,
                )
                for m in self.modalities
            }
        )
        # Its input is the per-modality layers' output, whose input was dropped out already.
        self.shared_encoder = SharedEncoder(
            config.dim,
            config.depth - separate,
            config.heads,
            config.mlp_ratio,
            config.dropout,
            norm_eps=config.norm_eps,
            input_dropout=False,
        )
        self.head = ClassificationHead(config.dim, config.num_classes)

    def forward(
        self,
        audio: Tensor | None = None,
        video: Tensor | None = None,
        *,
        audio_present: Tensor | None = None,
        video_present: Tensor | None = None,
    ) -> Tensor:
        """Inputs as in the class docstring; ``*_present`` (B,) bool flags, False = missing."""
        inputs, present = self._gather(audio, video, audio_present, video_present)
        states = [
            self.modality_layers[m](self.dropout(self.embeddings[m](x))) for m, x in inputs.items()
        ]
        mask = None
        if any(flag is not None for flag in present.values()):
            mask = torch.cat(
                [
                    token_mask(present[m], s.shape[0], s.shape[1], s.device)
                    for m, s in zip(inputs, states, strict=True)
                ],
                dim=1,
            )
        return self.head(self.shared_encoder(torch.cat(states, dim=1), padding_mask=mask))
