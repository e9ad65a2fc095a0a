"""The shared encoder fused late: ONE encoder and ONE head applied to each modality on its own.

The row between the proposed model and the baseline: it shares the encoder (as
``SharedEncoderClassifier``) but fuses as the baseline does (``SeparateEncodersClassifier``), so the
comparison with either changes one thing only. Each modality's tokens go through the shared encoder
and head separately, never in one sequence, and the prediction is the mean of the per-modality
logits over the modalities present in each sample. Its parameters are exactly the shared model's
(same names, same initial weights from the same seed); only where the senses meet differs.
"""

from __future__ import annotations

from torch import Tensor

from avshared.models.classifier import OneEncoderClassifier, mean_over_present


class SharedLateFusionClassifier(OneEncoderClassifier):
    """audio (B, 1, n_mels, T) and/or video (B, F, 3, H, W) -> logits (B, num_classes).

    Per modality m: logits_m = head(encoder(embedding_m(x_m))), with the one ``SharedEncoder`` and
    the one ``ClassificationHead``; the output is the mean of logits_m over the modalities present
    in the sample. Presence flags and modality dropout work as for the other models: a missing or
    dropped modality's logits are left out of the mean, so a sample with only audio gets exactly
    the audio logits.
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
        return mean_over_present(
            *self.modality_logits(
                audio, video, audio_present=audio_present, video_present=video_present
            )
        )

    def modality_logits(
        self,
        audio: Tensor | None = None,
        video: Tensor | None = None,
        *,
        audio_present: Tensor | None = None,
        video_present: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor | None]]:
        """What ``forward`` fuses: per given modality, the shared encoder and head's logits
        (B, num_classes) on that modality alone, and its presence flags (B,) after modality
        dropout (None: present in every sample)."""
        inputs, present = self._gather(audio, video, audio_present, video_present)
        logits = {
            modality: self.head(self.encoder(self.embeddings[modality](x)))
            for modality, x in inputs.items()
        }
        return logits, present
