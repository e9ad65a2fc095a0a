"""Where the model looks: attention rollout from [CLS], drawn on the spectrogram and the frames.

Attention rollout (Abnar & Zuidema, 2020): per layer, average the heads, add the identity (the
residual connection) and renormalise the rows, ``A_l = (mean_h W_l + I) / 2``; multiply through
the layers, ``R = A_L ... A_1``. Row 0 of R, without its [CLS] column, says how much the final
[CLS] draws on each input token. Missing tokens get zero.

The token weights are put back where each token came from: audio tokens on the spectrogram's
(frequency, time) patch grid (frequency-major), video tokens on the frames' (time, row, column)
tubelet grid (time-major), each patch's weight spread over its pixels, so the heat map has the
input's shape (a remainder no patch covers gets 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from avshared.analysis._batching import as_tensor, evaluating
from avshared.analysis.attention import classifier_attention
from avshared.models.embeddings import AudioPatchEmbedding, VideoPatchEmbedding


def attention_rollout(attention: Tensor | np.ndarray) -> np.ndarray:
    """(layers, B, heads, N+1, N+1) maps -> (B, N+1, N+1) rollout R (rows sum to one)."""
    maps = torch.as_tensor(attention).double()
    if maps.ndim != 5 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"need (layers, B, heads, N+1, N+1) maps, got {tuple(maps.shape)}")
    identity = torch.eye(maps.shape[-1], dtype=maps.dtype)
    rollout = identity.expand(maps.shape[1], -1, -1)
    for layer in maps:
        step = layer.mean(dim=1) + identity
        step = step / step.sum(dim=-1, keepdim=True)
        rollout = step @ rollout
    return rollout.numpy()


def cls_rollout(attention: Tensor | np.ndarray) -> np.ndarray:
    """(B, N) rollout weight of each input token in the final [CLS] (row 0 of R, [CLS] left out)."""
    return attention_rollout(attention)[:, 0, 1:]


def audio_heatmap(weights: ArrayLike, embedding: AudioPatchEmbedding) -> np.ndarray:
    """(B, Na) audio token weights -> (B, n_mels, T) on the spectrogram, by the patch grid."""
    freq, time = embedding.grid
    patch_f, patch_t = embedding.patch_size
    grid = _on_grid(weights, (freq, time))
    return _upsample(grid, (patch_f, patch_t), (embedding.n_mels, embedding.n_frames))


def video_heatmap(weights: ArrayLike, embedding: VideoPatchEmbedding) -> np.ndarray:
    """(B, Nv) video token weights -> (B, F, H, W) on the frames, by the tubelet grid."""
    size = embedding.image_size
    grid = _on_grid(weights, embedding.grid)
    return _upsample(grid, embedding.tubelet_size, (embedding.num_frames, size, size))


def _on_grid(weights: ArrayLike, grid: tuple[int, ...]) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != int(np.prod(grid)):
        raise ValueError(f"need (B, {int(np.prod(grid))}) token weights, got {weights.shape}")
    return weights.reshape(weights.shape[0], *grid)


def _upsample(grid: np.ndarray, patch: tuple[int, ...], size: tuple[int, ...]) -> np.ndarray:
    """Repeat each cell over its patch; pad the uncovered remainder with 0."""
    out = grid
    for axis, step in enumerate(patch, start=1):
        out = np.repeat(out, step, axis=axis)
    pad = [(0, 0)] + [(0, s - covered) for s, covered in zip(size, out.shape[1:], strict=True)]
    return np.pad(out, pad)


@dataclass(frozen=True)
class RolloutMaps:
    """Heat maps of n clips, with what the model predicted (class indices).

    audio: (n, n_mels, T), video: (n, F, H, W), each the rollout weights of that sense's tokens
    (audio and video together sum to at most one per clip); prediction: (n,); probabilities: (n, C).
    """

    audio: np.ndarray
    video: np.ndarray
    prediction: np.ndarray
    probabilities: np.ndarray


def classifier_rollout(
    model: nn.Module, audio: ArrayLike | Tensor, video: ArrayLike | Tensor
) -> RolloutMaps:
    """Rollout heat maps of a shared-encoder classifier on a few clips with both senses.

    ``audio`` (n, 1, n_mels, T) standardised and ``video`` (n, F, 3, H, W) as the model takes them;
    one batch (meant for the handful of clips ``selection.drawn_clips`` picks), eval mode, no
    gradients. The prediction comes from the classifier's own ``forward``.
    """
    audio, video = as_tensor(audio), as_tensor(video)
    with evaluating(model) as device:
        audio, video = audio.to(device), video.to(device)
        trace, spans = classifier_attention(model, audio, video)
        probabilities = model(audio, video).softmax(dim=-1).float().cpu().numpy()
    weights = cls_rollout(trace.attention.cpu())
    return RolloutMaps(
        audio=audio_heatmap(weights[:, spans["audio"]], model.embeddings["audio"]),
        video=video_heatmap(weights[:, spans["video"]], model.embeddings["video"]),
        prediction=probabilities.argmax(axis=1),
        probabilities=probabilities,
    )
