"""What the emotion classifiers have in common: modalities, input checks, modality dropout, and
the two ways they leave a missing modality out (a key-padding mask, a mean over present modalities).

Every classifier of ``MODEL_KINDS`` is called the same way,
``model(audio=..., video=...) -> logits (B, num_classes)``, where either input may be None, and each
accepts per-sample presence flags ``audio_present``/``video_present`` (B,) bool for batches in which
some samples lack a modality.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from avshared.models.config import ModelConfig
from avshared.models.embeddings import AudioPatchEmbedding, VideoPatchEmbedding
from avshared.models.encoder import SharedEncoder
from avshared.models.head import ClassificationHead

AUDIO, VIDEO = "audio", "video"
#: The modalities, in the order their tokens are concatenated.
MODALITY_ORDER: tuple[str, ...] = (AUDIO, VIDEO)
#: Names accepted wherever modalities are chosen by a string.
MODALITY_SETS: dict[str, tuple[str, ...]] = {
    AUDIO: (AUDIO,),
    VIDEO: (VIDEO,),
    "bimodal": MODALITY_ORDER,
}


def parse_modalities(modalities: str | Sequence[str]) -> tuple[str, ...]:
    """Modalities from "audio", "video", "bimodal" or a sequence of "audio"/"video", in order."""
    if isinstance(modalities, str):
        if modalities not in MODALITY_SETS:
            raise ValueError(
                f"unknown modalities {modalities!r}; use one of {sorted(MODALITY_SETS)} "
                f"or a sequence of {list(MODALITY_ORDER)}"
            )
        return MODALITY_SETS[modalities]
    chosen = set(modalities)
    unknown = sorted(chosen - set(MODALITY_ORDER))
    if unknown or not chosen:
        raise ValueError(
            f"modalities must be a non-empty selection of {list(MODALITY_ORDER)}; "
            f"got {modalities!r}"
        )
    return tuple(m for m in MODALITY_ORDER if m in chosen)


def build_embedding(
    modality: str, config: ModelConfig
) -> AudioPatchEmbedding | VideoPatchEmbedding:
    """The patch embedding of one modality, sized by ``config``."""
    if modality == AUDIO:
        return AudioPatchEmbedding(
            config.n_mels, config.audio_frames, config.dim, config.audio_patch, config.positions
        )
    return VideoPatchEmbedding(
        config.video_frames, config.image_size, config.dim, config.video_tubelet, config.positions
    )


def build_encoder(config: ModelConfig) -> SharedEncoder:
    """A Transformer encoder sized by ``config``."""
    return SharedEncoder(
        config.dim,
        config.depth,
        config.heads,
        config.mlp_ratio,
        config.dropout,
        norm_eps=config.norm_eps,
    )


def token_mask(present: Tensor | None, batch: int, tokens: int, device: torch.device) -> Tensor:
    """(B,) presence -> (B, tokens) key-padding mask, True where the modality is missing."""
    if present is None:
        return torch.zeros(batch, tokens, dtype=torch.bool, device=device)
    return (~present).unsqueeze(1).expand(batch, tokens)


def mean_over_present(logits: dict[str, Tensor], present: dict[str, Tensor | None]) -> Tensor:
    """Late fusion: per sample, the mean of the modalities' logits (B, num_classes) over the
    modalities present in it (``present`` as ``EmotionClassifier._gather`` returns it).

    A sample with one modality present gets exactly that modality's logits.
    """
    logit_sum: Tensor | None = None
    weight_sum: Tensor | float = 0.0
    for modality, modality_logits in logits.items():
        flag = present[modality]
        weight = 1.0 if flag is None else flag.to(modality_logits.dtype).unsqueeze(1)
        weighted = modality_logits * weight
        logit_sum = weighted if logit_sum is None else logit_sum + weighted
        weight_sum = weight_sum + weight
    assert logit_sum is not None, "no modality's logits to fuse"
    return logit_sum / weight_sum


class EmotionClassifier(nn.Module):
    """Base class: holds the config and modalities, checks inputs and applies modality dropout."""

    def __init__(self, modalities: str | Sequence[str], config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.modalities = parse_modalities(modalities)

    def predict_proba(
        self,
        audio: Tensor | None = None,
        video: Tensor | None = None,
        *,
        audio_present: Tensor | None = None,
        video_present: Tensor | None = None,
    ) -> Tensor:
        """Class probabilities (B, num_classes): the softmax of ``forward``'s logits."""
        logits = self(audio, video, audio_present=audio_present, video_present=video_present)
        return logits.softmax(dim=-1)

    def _gather(
        self,
        audio: Tensor | None,
        video: Tensor | None,
        audio_present: Tensor | None,
        video_present: Tensor | None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor | None]]:
        """Check the call and return the given inputs and their presence flags, by modality.

        A presence flag of None means "present in every sample". In training, modality dropout may
        turn some flags off (for samples that have both modalities, one of the two, never both).
        """
        given = {AUDIO: audio, VIDEO: video}
        flags = {AUDIO: audio_present, VIDEO: video_present}
        inputs = {m: x for m, x in given.items() if x is not None}
        if not inputs:
            raise ValueError(f"give at least one input among {list(self.modalities)}")
        extra = sorted(set(inputs) - set(self.modalities))
        if extra:
            raise ValueError(
                f"this model was built for {list(self.modalities)} and cannot take {extra}; "
                f"build it with modalities including {extra} to use them"
            )
        batch = next(iter(inputs.values())).shape[0]
        if any(x.shape[0] != batch for x in inputs.values()):
            sizes = {m: x.shape[0] for m, x in inputs.items()}
            raise ValueError(f"audio and video must have the same batch size; got {sizes}")
        for modality, flag in flags.items():
            if flag is None:
                continue
            if modality not in inputs:
                raise ValueError(f"{modality}_present was given without {modality} input")
            if flag.shape != (batch,) or flag.dtype != torch.bool:
                raise ValueError(
                    f"{modality}_present must be a bool tensor of shape ({batch},); "
                    f"got {flag.dtype} {tuple(flag.shape)}"
                )
        present = {m: flags[m] for m in inputs}
        # Reading the check's result back would stall a GPU at every training step; in training the
        # flags come from the data pipeline, and modality dropout never hides both.
        if not self.training and all(flag is not None for flag in present.values()):
            none_present = ~torch.stack(list(present.values())).any(dim=0)
            if bool(none_present.any()):
                raise ValueError(
                    f"samples {none_present.nonzero().flatten().tolist()} have no modality "
                    "present; every sample needs at least one"
                )
        if (
            self.training
            and self.config.modality_dropout > 0
            and len(inputs) == len(MODALITY_ORDER)
        ):
            present = self._drop_one_modality(present, batch, next(iter(inputs.values())).device)
        return inputs, present

    def _drop_one_modality(
        self, present: dict[str, Tensor | None], batch: int, device: torch.device
    ) -> dict[str, Tensor]:
        """Modality dropout: per sample having both, with probability p, drop audio or video."""
        full = torch.ones(batch, dtype=torch.bool, device=device)
        audio_present = present[AUDIO] if present[AUDIO] is not None else full
        video_present = present[VIDEO] if present[VIDEO] is not None else full
        drop = (torch.rand(batch, device=device) < self.config.modality_dropout) & (
            audio_present & video_present
        )
        drop_audio = torch.rand(batch, device=device) < 0.5
        return {
            AUDIO: audio_present & ~(drop & drop_audio),
            VIDEO: video_present & ~(drop & ~drop_audio),
        }


class OneEncoderClassifier(EmotionClassifier):
    """Base of the models with ONE encoder and ONE head whatever the input (the shared model,
    fused early or late): one embedding per modality in ``modalities``, then ``encoder`` and
    ``head``. Built in this order, so one seed gives each such model the same initial weights and
    parameter names; the subclasses differ only in where the senses meet (``forward``)."""

    def __init__(
        self, modalities: str | Sequence[str] = MODALITY_ORDER, config: ModelConfig | None = None
    ) -> None:
        config = config or ModelConfig()
        super().__init__(modalities, config)
        self.embeddings = nn.ModuleDict({m: build_embedding(m, config) for m in self.modalities})
        self.encoder = build_encoder(config)
        self.head = ClassificationHead(config.dim, config.num_classes)
