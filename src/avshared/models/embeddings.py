"""Modality embeddings: turn a log-mel spectrogram or a stack of face frames into tokens of width D.

Both embeddings cut their input into non-overlapping patches with a strided convolution (Conv2d
for audio as in the Audio Spectrogram Transformer, Conv3d tubelets for video as in ViViT), add a
learned positional embedding and a learned modality-type embedding, so that the shared encoder
downstream can tell where a token comes from and which sense produced it.

Positional embeddings are factorised by default (``positions="factorised"``): one learned vector per
index of each axis (frequency and time for audio; time, height and width for video), summed over the
axes. This keeps the grid structure explicit and needs far fewer parameters than a full learned
grid, which matters on few clips. ``positions="grid"`` learns one vector per position of the 2-D
grid instead (frequency x time for audio; row x column for video, plus one vector per time index),
as a ViT does: the layout that takes a pretrained ViT's position embeddings without approximation
(``avshared.models.vit_checkpoint``).

When an input size is not a multiple of its patch size, the trailing remainder is not covered by any
patch and is ignored (e.g. 300 spectrogram frames with 16-frame patches give 18 time patches
covering the first 288 frames); ``grid`` and ``num_tokens`` say what is covered.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from avshared.models.initialisation import init_token_, init_vit_weights

#: ImageNet channel statistics, applied to RGB frames in [0, 1] before the tubelet projection.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Position layouts: per-axis vectors summed, or one vector per 2-D grid position.
POSITION_LAYOUTS: tuple[str, ...] = ("factorised", "grid")


def _check_layout(positions: str) -> str:
    if positions not in POSITION_LAYOUTS:
        raise ValueError(f"positions must be one of {list(POSITION_LAYOUTS)}; got {positions!r}")
    return positions


def _patch_grid(
    sizes: tuple[int, ...], patch: tuple[int, ...], names: tuple[str, ...]
) -> list[int]:
    """Patches along each axis; raises when an axis is smaller than its patch."""
    grid = []
    for size, step, name in zip(sizes, patch, names, strict=True):
        if step < 1 or size < step:
            raise ValueError(
                f"{name}: patch size {step} does not fit an input of size {size}; "
                f"choose a patch size between 1 and {size}"
            )
        grid.append(size // step)
    return grid


def _check_dim(
    shape: torch.Size, dim: int, expected: int, *, what: str, layout: str, hint: str
) -> None:
    """Raise a ValueError naming the dimension when ``shape[dim] != expected``."""
    if shape[dim] != expected:
        raise ValueError(
            f"{what} (dim {dim} of {layout}) is {shape[dim]}, expected {expected}; got input shape "
            f"{tuple(shape)}. {hint}"
        )


class AudioPatchEmbedding(nn.Module):
    """Log-mel spectrogram (B, 1, n_mels, T) -> audio tokens (B, Na, D).

    Na = (n_mels // patch_f) * (T // patch_t), tokens ordered frequency-major (all time patches of
    the lowest band first). The spectrogram should already be standardised (e.g. with the training
    set's mean/std); any floating dtype is accepted and cast to the weights' dtype.
    """

    def __init__(
        self,
        n_mels: int,
        n_frames: int,
        dim: int,
        patch_size: tuple[int, int] = (16, 16),
        positions: str = "factorised",
    ) -> None:
        super().__init__()
        self.n_mels, self.n_frames, self.dim = n_mels, n_frames, dim
        self.positions = _check_layout(positions)
        self.patch_size = tuple(patch_size)
        self.grid = tuple(
            _patch_grid((n_mels, n_frames), self.patch_size, ("audio n_mels", "audio frames"))
        )
        freq_patches, time_patches = self.grid
        self.num_tokens = freq_patches * time_patches
        self.projection = nn.Conv2d(1, dim, kernel_size=self.patch_size, stride=self.patch_size)
        if positions == "grid":
            self.position = nn.Parameter(torch.zeros(freq_patches, time_patches, dim))
        else:
            self.freq_position = nn.Parameter(torch.zeros(freq_patches, 1, dim))
            self.time_position = nn.Parameter(torch.zeros(1, time_patches, dim))
        self.type_embedding = nn.Parameter(torch.zeros(1, 1, dim))
        self.apply(init_vit_weights)
        for name, parameter in self.named_parameters():
            if not name.startswith("projection."):
                init_token_(parameter)

    def position_grid(self) -> Tensor:
        """The positional embedding of every token, (freq patches, time patches, D)."""
        if self.positions == "grid":
            return self.position
        return self.freq_position + self.time_position

    def forward(self, spectrogram: Tensor) -> Tensor:
        """(B, 1, n_mels, T) float -> (B, Na, D)."""
        self._check(spectrogram)
        x = self.projection(spectrogram.to(self.projection.weight.dtype))  # (B, D, Fp, Tp)
        tokens = x.flatten(2).transpose(1, 2)  # (B, Fp*Tp, D)
        positions = self.position_grid().reshape(1, self.num_tokens, self.dim)
        return tokens + positions + self.type_embedding

    def _check(self, spectrogram: Tensor) -> None:
        layout = "(B, 1, n_mels, T)"
        if spectrogram.ndim != 4:
            raise ValueError(
                f"audio input must be a log-mel batch {layout} = (B, 1, {self.n_mels}, "
                f"{self.n_frames}); got shape {tuple(spectrogram.shape)}. "
                "Add a missing channel axis with .unsqueeze(1)."
            )
        if not spectrogram.is_floating_point():
            raise ValueError(f"audio input must be floating point, got {spectrogram.dtype}")
        shape = spectrogram.shape
        _check_dim(
            shape, 1, 1, what="audio channels", layout=layout, hint="Log-mels have one channel."
        )
        _check_dim(
            shape,
            2,
            self.n_mels,
            what="audio n_mels",
            layout=layout,
            hint="Compute the features with this many mel bands, or build the model to match.",
        )
        _check_dim(
            shape,
            3,
            self.n_frames,
            what="audio frames",
            layout=layout,
            hint="Pad/crop the spectrograms to this many frames, or build the model to match.",
        )


class VideoPatchEmbedding(nn.Module):
    """Face frames (B, F, 3, H, W) -> video tokens (B, Nv, D).

    Nv = (F // t) * (H // p_h) * (W // p_w) for tubelets (t, p_h, p_w), tokens ordered time-major,
    then row-major. Frames are RGB, either uint8 in [0, 255] (converted here, so callers can keep
    uint8 until the model) or floating point already scaled to [0, 1]; both are then normalised
    with ImageNet's channel mean/std.
    """

    def __init__(
        self,
        num_frames: int,
        image_size: int,
        dim: int,
        tubelet_size: tuple[int, int, int] = (4, 16, 16),
        positions: str = "factorised",
    ) -> None:
        super().__init__()
        self.num_frames, self.image_size, self.dim = num_frames, image_size, dim
        self.positions = _check_layout(positions)
        self.tubelet_size = tuple(tubelet_size)
        self.grid = tuple(
            _patch_grid(
                (num_frames, image_size, image_size),
                self.tubelet_size,
                ("video frames", "video height", "video width"),
            )
        )
        time_patches, row_patches, col_patches = self.grid
        self.num_tokens = time_patches * row_patches * col_patches
        self.projection = nn.Conv3d(3, dim, kernel_size=self.tubelet_size, stride=self.tubelet_size)
        self.time_position = nn.Parameter(torch.zeros(time_patches, 1, 1, dim))
        if positions == "grid":
            self.frame_position = nn.Parameter(torch.zeros(1, row_patches, col_patches, dim))
        else:
            self.row_position = nn.Parameter(torch.zeros(1, row_patches, 1, dim))
            self.col_position = nn.Parameter(torch.zeros(1, 1, col_patches, dim))
        self.type_embedding = nn.Parameter(torch.zeros(1, 1, dim))
        # Non-persistent: fixed constants, not learned and not worth storing in checkpoints.
        self.register_buffer(
            "mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1), persistent=False
        )
        self.apply(init_vit_weights)
        for name, parameter in self.named_parameters():
            if not name.startswith("projection."):
                init_token_(parameter)

    def frame_position_grid(self) -> Tensor:
        """The spatial positional embedding shared by every frame, (1, row patches, col patches, D);
        each token's position is this plus ``time_position`` of its time index."""
        if self.positions == "grid":
            return self.frame_position
        return self.row_position + self.col_position

    def forward(self, frames: Tensor) -> Tensor:
        """(B, F, 3, H, W) uint8 or float in [0, 1] -> (B, Nv, D)."""
        self._check(frames)
        dtype = self.projection.weight.dtype
        x = frames.to(dtype)
        if frames.dtype == torch.uint8:
            x = x / 255.0
        x = x.transpose(1, 2)  # (B, 3, F, H, W): Conv3d wants channels before time
        x = (x - self.mean.to(dtype)) / self.std.to(dtype)
        x = self.projection(x)  # (B, D, Tp, Hp, Wp)
        tokens = x.flatten(2).transpose(1, 2)  # (B, Tp*Hp*Wp, D)
        positions = (self.time_position + self.frame_position_grid()).reshape(
            1, self.num_tokens, self.dim
        )
        return tokens + positions + self.type_embedding

    def _check(self, frames: Tensor) -> None:
        layout = "(B, F, 3, H, W)"
        size = self.image_size
        if frames.ndim != 5:
            raise ValueError(
                f"video input must be a frame batch {layout} = (B, {self.num_frames}, 3, {size}, "
                f"{size}); got {frames.ndim} dimensions, shape {tuple(frames.shape)}"
            )
        if frames.dtype != torch.uint8 and not frames.is_floating_point():
            raise ValueError(
                f"video frames must be uint8 in [0, 255] or floating point in [0, 1], "
                f"got {frames.dtype}"
            )
        shape = frames.shape
        channels_last = shape[4] == 3 and shape[2] != 3
        channel_hint = (
            "Permute channels-last frames (B, F, H, W, 3) with .permute(0, 1, 4, 2, 3)."
            if channels_last
            else "Frames must be RGB."
        )
        _check_dim(shape, 2, 3, what="video channels", layout=layout, hint=channel_hint)
        _check_dim(
            shape,
            1,
            self.num_frames,
            what="video frames",
            layout=layout,
            hint="Sample this many frames per clip, or build the model to match.",
        )
        for dim, axis in ((3, "height"), (4, "width")):
            _check_dim(
                shape,
                dim,
                size,
                what=f"video {axis}",
                layout=layout,
                hint="Resize the face crops to this size, or build the model to match.",
            )
