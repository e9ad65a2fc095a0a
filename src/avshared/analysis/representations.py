"""Each clip's audio-only, video-only and audio-visual embeddings, pooled and per layer.

A clip's audio-only embedding is the encoder's pooled output (the final LayerNorm of [CLS], what
the head reads) when only its audio tokens go in, the video absent; likewise video-only. For the
shared model both come out of the one encoder; for the separate-encoders baseline each comes from
its own sense's encoder. The audio-visual embedding is the shared encoder's output on both senses;
the baseline has none (its senses meet only at the logits), so it is given the mean of its two
pooled vectors, for drawing only.

Per-layer representations (for CKA) are each layer's output, pooled either as the [CLS] state
(``pooling="cls"``) or as the mean of the present tokens' states (``"mean"``, [CLS] left out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from avshared.analysis._batching import as_tensor, batch_slices, clip_count, evaluating, to_device
from avshared.analysis.attention import EncoderTrace, encoder_attention

POOLINGS: tuple[str, ...] = ("cls", "mean")


@dataclass(frozen=True)
class ClipEmbeddings:
    """Embeddings of n clips, in the input order (float32 arrays).

    audio, video, audiovisual: (n, D) pooled outputs (see the module docstring).
    audio_layers, video_layers: (layers, n, D) per-layer pooled states of the one-sense passes.
    """

    audio: np.ndarray
    video: np.ndarray
    audiovisual: np.ndarray
    audio_layers: np.ndarray
    video_layers: np.ndarray

    def select(self, rows: ArrayLike) -> ClipEmbeddings:
        """The embeddings of the clips at ``rows`` (positions in the input order), in that order:
        two models' embeddings restricted to the clips both were given."""
        rows = np.asarray(rows, dtype=np.int64)
        return ClipEmbeddings(
            audio=self.audio[rows],
            video=self.video[rows],
            audiovisual=self.audiovisual[rows],
            audio_layers=self.audio_layers[:, rows],
            video_layers=self.video_layers[:, rows],
        )


def pool_layers(trace: EncoderTrace, pooling: str = "cls") -> Tensor:
    """(layers, B, D): each layer's [CLS] state, or the mean of its present tokens' states."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "cls":
        return trace.hidden[:, :, 0]
    present = (~trace.padding_mask[:, 1:]).to(trace.hidden.dtype)  # (B, N)
    summed = torch.einsum("lbnd,bn->lbd", trace.hidden[:, :, 1:], present)
    return summed / present.sum(-1).clamp(min=1)[None, :, None]


def has_sense_embeddings(model_kind: str) -> bool:
    """Whether ``clip_embeddings`` reads a classifier of ``model_kind``: one encoder shared by
    both senses (``encoder``) or one per sense (``encoders``). Mid fusion (``shared_mid``: lower
    layers per sense, upper layers shared) has neither whole encoder; its embeddings are not
    measured yet."""
    return model_kind != "shared_mid"


def _encoder_of(model: nn.Module, modality: str) -> nn.Module:
    """The encoder that reads ``modality``: the one shared encoder, or the sense's own."""
    if hasattr(model, "encoders"):
        return model.encoders[modality]
    if hasattr(model, "encoder"):
        return model.encoder
    raise TypeError(f"{type(model).__name__} has neither a shared encoder nor per-sense encoders")


def clip_embeddings(
    model: nn.Module,
    audio: ArrayLike | Tensor,
    video: ArrayLike | Tensor,
    *,
    batch_size: int = 16,
    pooling: str = "cls",
) -> ClipEmbeddings:
    """Embeddings of n clips from a shared-encoder classifier or the separate-encoders baseline.

    Args:
        model: a ``SharedEncoderClassifier`` or ``SeparateEncodersClassifier`` built for both
            senses (anything with ``embeddings`` and ``encoder`` or ``encoders`` by sense).
        audio: (n, 1, n_mels, T) standardised spectrograms, as the model takes them.
        video: (n, F, 3, H, W) face frames, uint8 or float in [0, 1].
        batch_size: clips per forward pass.
        pooling: per-layer pooling, "cls" or "mean".

    Batched, eval mode (restored after), no gradients, on the model's device.
    """
    senses = set(getattr(model, "embeddings", {}))
    if not {"audio", "video"} <= senses:
        raise ValueError(
            f"the alignment of the senses needs a model built for audio and video; "
            f"{type(model).__name__} embeds {sorted(senses)}"
        )
    audio, video = as_tensor(audio), as_tensor(video)
    n = clip_count(audio, video)
    parts: dict[str, list[np.ndarray]] = {f: [] for f in ClipEmbeddings.__dataclass_fields__}
    with evaluating(model) as device:
        for rows in batch_slices(n, batch_size):
            pooled = {}
            for modality, x in (("audio", audio), ("video", video)):
                tokens = model.embeddings[modality](to_device(x, rows, device))
                trace = encoder_attention(_encoder_of(model, modality), tokens, need_weights=False)
                pooled[modality] = trace.cls
                parts[modality].append(trace.cls.float().cpu().numpy())
                layers = pool_layers(trace, pooling)
                parts[f"{modality}_layers"].append(layers.float().cpu().numpy())
            if hasattr(model, "encoder_inputs"):
                tokens, mask, _ = model.encoder_inputs(
                    to_device(audio, rows, device), to_device(video, rows, device)
                )
                both = model.encoder(tokens, padding_mask=mask)
            else:
                both = (pooled["audio"] + pooled["video"]) / 2
            parts["audiovisual"].append(both.float().cpu().numpy())
    return ClipEmbeddings(
        **{
            name: np.concatenate(chunks, axis=1 if name.endswith("_layers") else 0)
            for name, chunks in parts.items()
        }
    )
