"""Cut inputs into the patches the embeddings make tokens of, and put patches back together.

``spectrogram_patches`` and ``tubelet_patches`` give one row per token, in the order of
``AudioPatchEmbedding`` (frequency-major) and ``VideoPatchEmbedding`` (time-major, then row-major),
and each row in the layout of the embedding's convolution kernel (channel, then the patch's own
axes), so that ``embedding.projection`` applied to the input equals
``patches @ projection.weight.flatten(1).T + projection.bias``. A trailing remainder that no patch
covers is dropped, as the embeddings drop it. The masked autoencoder reconstructs these rows
(``avshared.models.masked_autoencoder``); ``*_from_patches`` undo the cut for pictures of it.
"""

from __future__ import annotations

from torch import Tensor


def spectrogram_patches(spectrogram: Tensor, patch: tuple[int, int]) -> Tensor:
    """(B, C, n_mels, T) -> (B, Fp * Tp, C * pf * pt) for patches ``(pf, pt)``."""
    batch, channels, mels, frames = spectrogram.shape
    pf, pt = patch
    fp, tp = mels // pf, frames // pt
    x = spectrogram[:, :, : fp * pf, : tp * pt].reshape(batch, channels, fp, pf, tp, pt)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(batch, fp * tp, channels * pf * pt)


def spectrogram_from_patches(
    patches: Tensor, patch: tuple[int, int], grid: tuple[int, int], channels: int = 1
) -> Tensor:
    """(B, Fp * Tp, C * pf * pt) -> (B, C, Fp * pf, Tp * pt): ``spectrogram_patches`` undone on
    the grid ``(Fp, Tp)`` (the covered part of the spectrogram)."""
    batch = patches.shape[0]
    pf, pt = patch
    fp, tp = grid
    x = patches.reshape(batch, fp, tp, channels, pf, pt).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(batch, channels, fp * pf, tp * pt)


def tubelet_patches(frames: Tensor, tubelet: tuple[int, int, int]) -> Tensor:
    """(B, F, C, H, W) -> (B, Tp * Hp * Wp, C * t * ph * pw) for tubelets ``(t, ph, pw)``."""
    batch, num_frames, channels, height, width = frames.shape
    t, ph, pw = tubelet
    tp, hp, wp = num_frames // t, height // ph, width // pw
    x = frames[:, : tp * t, :, : hp * ph, : wp * pw]
    x = x.reshape(batch, tp, t, channels, hp, ph, wp, pw).permute(0, 1, 4, 6, 3, 2, 5, 7)
    return x.reshape(batch, tp * hp * wp, channels * t * ph * pw)


def frames_from_patches(
    patches: Tensor, tubelet: tuple[int, int, int], grid: tuple[int, int, int], channels: int = 3
) -> Tensor:
    """(B, Tp * Hp * Wp, C * t * ph * pw) -> (B, Tp * t, C, Hp * ph, Wp * pw):
    ``tubelet_patches`` undone on the grid ``(Tp, Hp, Wp)``."""
    batch = patches.shape[0]
    t, ph, pw = tubelet
    tp, hp, wp = grid
    x = patches.reshape(batch, tp, hp, wp, channels, t, ph, pw).permute(0, 1, 5, 4, 2, 6, 3, 7)
    return x.reshape(batch, tp * t, channels, hp * ph, wp * pw)
