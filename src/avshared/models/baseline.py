"""The baseline the proposal argues against: one encoder PER modality, fused late.

Each modality has its own embedding, its own encoder (same width and depth as the shared one) and
its own head; the prediction is the mean of the per-modality logits over the modalities present in
each sample. Averaging logits rather than concatenating [CLS] vectors keeps single-modality use
exact: a sample with only audio gets the audio branch's logits, not a head fed a zero-filled video
half it never saw in training. Compared with ``SharedEncoderClassifier`` the bimodal baseline has
one more encoder (and one more small head), and its modalities meet only at the output.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from avshared.models.classifier import (
    MODALITY_ORDER,
    EmotionClassifier,
    build_embedding,
    build_encoder,
    mean_over_present,
)
from avshared.models.config import ModelConfig
from avshared.models.head import ClassificationHead


class SeparateEncodersClassifier(EmotionClassifier):
    """audio (B, 1, n_mels, T) and/or video (B, F, 3, H, W) -> logits (B, num_classes).

    Per modality m: logits_m = head_m(encoder_m(embedding_m(x_m))); the output is the mean of
    logits_m over the modalities present in the sample. Presence flags and modality dropout work as
    for the shared model: a missing or dropped modality's logits are left out of the mean.
    """

    def __init__(
        self, modalities: str | Sequence[str] = MODALITY_ORDER, config: ModelConfig | None = None
    ) -> None:
        config = config or ModelConfig()
        super().__init__(modalities, config)
        self.embeddings = nn.ModuleDict({m: build_embedding(m, config) for m in self.modalities})
        self.encoders = nn.ModuleDict({m: build_encoder(config) for m in self.modalities})
        self.heads = nn.ModuleDict(
            {m: ClassificationHead(config.dim, config.num_classes) for m in self.modalities}
        )

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
        """What ``forward`` fuses: per given modality, its branch's logits (B, num_classes), and
        its presence flags (B,) after modality dropout (None: present in every sample).

        Training strategies that weigh the senses against each other (OGM-GE,
        ``avshared.training.strategies``) read the branches' logits of the very forward they train.
        """
        inputs, present = self._gather(audio, video, audio_present, video_present)
        logits = {
            modality: self.heads[modality](self.encoders[modality](self.embeddings[modality](x)))
            for modality, x in inputs.items()
        }
        return logits, present

    def branch_parameters(self, modality: str) -> list[nn.Parameter]:
        """The parameters that read ``modality`` alone: its embedding's and its encoder's (not its
        head's). OGM-GE modulates their gradients."""
        return [*self.embeddings[modality].parameters(), *self.encoders[modality].parameters()]
