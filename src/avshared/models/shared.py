"""The proposed model: per-modality embeddings, ONE shared Transformer encoder, one head.

With both modalities the tokens are fused early: audio and video tokens are concatenated into one
sequence before the encoder, so every layer's attention mixes the two senses. Missing modalities
(None inputs, per-sample presence flags, modality dropout) are removed through the encoder's
key-padding mask, which makes a sample's output exactly what it would be without those tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from avshared.models.classifier import OneEncoderClassifier, token_mask


class SharedEncoderClassifier(OneEncoderClassifier):
    """audio (B, 1, n_mels, T) and/or video (B, F, 3, H, W) -> logits (B, num_classes).

    One embedding per modality in ``modalities``, and one ``SharedEncoder`` and one
    ``ClassificationHead`` whatever the input. A model built for both modalities can be called with
    only one of them.
    """

    def forward(
        self,
        audio: Tensor | None = None,
        video: Tensor | None = None,
        *,
        audio_present: Tensor | None = None,
        video_present: Tensor | None = None,
    ) -> Tensor:
        """Inputs as in the class docstring; ``*_present`` (B,) bool flags, False = missing."""
        tokens, mask, _ = self.encoder_inputs(
            audio, video, audio_present=audio_present, video_present=video_present
        )
        return self.head(self.encoder(tokens, padding_mask=mask))

    def encoder_inputs(
        self,
        audio: Tensor | None = None,
        video: Tensor | None = None,
        *,
        audio_present: Tensor | None = None,
        video_present: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None, dict[str, slice]]:
        """What ``forward`` feeds the encoder: tokens (B, N, D), the key-padding mask (B, N) (True
        = missing; None when every token is present) and, per given modality, the slice of token
        positions it occupies (audio first, then video; [CLS] is not counted).

        The analysis hook (``avshared.analysis``): attention maps and per-layer representations are
        computed from exactly the tokens and mask a prediction sees.
        """
        inputs, present = self._gather(audio, video, audio_present, video_present)
        tokens = [self.embeddings[m](x) for m, x in inputs.items()]
        spans, start = {}, 0
        for modality, t in zip(inputs, tokens, strict=True):
            spans[modality] = slice(start, start + t.shape[1])
            start += t.shape[1]
        mask = None
        if any(flag is not None for flag in present.values()):
            mask = torch.cat(
                [
                    token_mask(present[m], t.shape[0], t.shape[1], t.device)
                    for m, t in zip(inputs, tokens, strict=True)
                ],
                dim=1,
            )
        return torch.cat(tokens, dim=1), mask, spans
