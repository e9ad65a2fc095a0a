"""Each clip's audio-only, video-only and audio-visual embeddings, pooled and per layer.

A clip's audio-only embedding is the encoder's pooled output (the final LayerNorm of [CLS], what
the head reads) when only its audio tokens go in, the video absent; likewise video-only. For the
shared models (fused early or late) both come out of the one encoder; for the separate-encoders
baseline each comes from its own sense's encoder; for mid fusion the sense's tokens go through its
own first layers, then the shared layers alone. The audio-visual embedding is the pooled output on
both senses where their tokens meet in one sequence (the shared model, mid fusion); the models
fused late have none (the senses meet only at the logits), so they are given the mean of their two
pooled vectors, for drawing only.

Per-layer representations (for CKA) are each layer's output, pooled either as the [CLS] state
(``pooling="cls"``) or as the mean of the present tokens' states (``"mean"``, [CLS] left out). Mid
fusion has as many as its depth: its per-sense layers first, then its shared layers; the per-sense
layers come before the shared stack prepends [CLS], so they are pooled as their tokens' mean
whatever ``pooling``.
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


def _encoder_of(model: nn.Module, modality: str) -> nn.Module:
    """The encoder that reads ``modality``: the one shared encoder, the sense's own, or mid
    fusion's shared layers."""
    if hasattr(model, "encoders"):
        return model.encoders[modality]
    if hasattr(model, "encoder"):
        return model.encoder
    if hasattr(model, "shared_encoder"):
        return model.shared_encoder
    raise TypeError(f"{type(model).__name__} has neither a shared encoder nor per-sense encoders")


def _joins_the_senses(model: nn.Module) -> bool:
    """Whether both senses' tokens go through layers together (the shared model, mid fusion)
    rather than meeting only at the logits."""
    return hasattr(model, "encoder_inputs") or hasattr(model, "modality_layers")


def _one_sense(
    model: nn.Module, modality: str, x: Tensor, pooling: str
) -> tuple[Tensor, Tensor, Tensor]:
    """``modality``'s input alone through ``model``: what its encoder reads (B, N, D), the pooled
    output (B, D) and the per-layer states (layers, B, D)."""
    tokens = model.embeddings[modality](x)
    # Mid fusion's per-sense layers (none for the other kinds), one by one to keep their states.
    own_layers = model.modality_layers[modality].layers if hasattr(model, "modality_layers") else ()
    own = []
    for layer in own_layers:
        tokens = layer(tokens)
        own.append(tokens.mean(dim=1))  # no [CLS] yet: the shared stack prepends it
    trace = encoder_attention(_encoder_of(model, modality), tokens, need_weights=False)
    layers = pool_layers(trace, pooling)
    if own:
        layers = torch.cat([torch.stack(own), layers])
    return tokens, trace.cls, layers


def clip_embeddings(
    model: nn.Module,
    audio: ArrayLike | Tensor,
    video: ArrayLike | Tensor,
    *,
    batch_size: int = 16,
    pooling: str = "cls",
) -> ClipEmbeddings:
    """Embeddings of n clips from any two-sense classifier of ``MODEL_KINDS``.

    Args:
        model: a classifier built for both senses: anything with ``embeddings`` by sense and
            ``encoder`` (shared, fused early or late), ``encoders`` by sense (separate) or
            ``modality_layers`` by sense and ``shared_encoder`` (mid fusion).
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
            read, pooled = [], []
            for modality, x in (("audio", audio), ("video", video)):
                tokens, cls, layers = _one_sense(
                    model, modality, to_device(x, rows, device), pooling
                )
                read.append(tokens)
                pooled.append(cls)
                parts[modality].append(cls.float().cpu().numpy())
                parts[f"{modality}_layers"].append(layers.float().cpu().numpy())
            if _joins_the_senses(model):
                # The joint sequence forward builds (audio, then video; every token present).
                both = _encoder_of(model, "audio")(torch.cat(read, dim=1))
            else:
                both = (pooled[0] + pooled[1]) / 2
            parts["audiovisual"].append(both.float().cpu().numpy())
    return ClipEmbeddings(
        **{
            name: np.concatenate(chunks, axis=1 if name.endswith("_layers") else 0)
            for name, chunks in parts.items()
        }
    )
