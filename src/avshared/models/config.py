"""The sizes of a model, in one frozen dataclass, and the named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Every size the models need; the defaults are the ``default`` preset.

    Input sizes (``n_mels``, ``audio_frames``, ``video_frames``, ``image_size``) must match the
    features the model is fed; a mismatch raises a ValueError at the first forward. Patch sizes are
    (frequency, time) for audio and (time, height, width) for video; the token count per axis is
    input size // patch size, any remainder being ignored (300 frames / 16 -> 18 patches).
    ``modality_dropout`` is the per-sample probability, in training only and only when both
    modalities are given, of dropping one of them (audio or video with equal odds, never both).
    ``norm_eps`` is the epsilon of the encoder's LayerNorms (1e-6 to match a timm ViT's weights);
    ``positions`` the embeddings' position layout, "factorised" (per-axis vectors, summed) or
    "grid" (one vector per 2-D grid position, as a ViT; see ``embeddings``). ``separate_layers``
    is read by the mid-fusion model only (``shared_mid``): how many of its ``depth`` layers each
    modality has to itself before the rest are shared over the joint sequence, 0 < k < depth; None
    means ``depth // 2``.
    """

    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    audio_patch: tuple[int, int] = (16, 16)
    video_tubelet: tuple[int, int, int] = (4, 16, 16)
    n_mels: int = 64
    audio_frames: int = 300
    video_frames: int = 8
    image_size: int = 112
    num_classes: int = 6  # CREMA-D's six emotions
    modality_dropout: float = 0.0
    norm_eps: float = 1e-5
    positions: str = "factorised"
    separate_layers: int | None = None

    def __post_init__(self) -> None:
        # YAML parameters arrive as lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "audio_patch", tuple(self.audio_patch))
        object.__setattr__(self, "video_tubelet", tuple(self.video_tubelet))
        problems = []
        positive = ("dim", "depth", "heads", "n_mels", "audio_frames", "video_frames", "image_size")
        problems += [
            f"{name} must be a positive integer" for name in positive if getattr(self, name) < 1
        ]
        if self.dim % max(self.heads, 1):
            problems.append(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.mlp_ratio <= 0:
            problems.append("mlp_ratio must be positive")
        if not 0 <= self.dropout < 1:
            problems.append("dropout must be in [0, 1)")
        if not 0 <= self.modality_dropout <= 1:
            problems.append("modality_dropout must be in [0, 1]")
        if not 0 < self.norm_eps < 1:
            problems.append("norm_eps must be in (0, 1)")
        if self.positions not in ("factorised", "grid"):
            problems.append(f"positions must be 'factorised' or 'grid', not {self.positions!r}")
        if self.separate_layers is not None and not 0 < self.separate_layers < self.depth:
            problems.append(
                f"separate_layers ({self.separate_layers}) must be between 1 and depth - 1 = "
                f"{self.depth - 1}, so that some layers are per modality and some shared; or None "
                "for depth // 2"
            )
        if self.num_classes < 2:
            problems.append("num_classes must be at least 2")
        if len(self.audio_patch) != 2:
            problems.append("audio_patch must be (frequency, time)")
        elif not 1 <= self.audio_patch[0] <= self.n_mels or not 1 <= self.audio_patch[1] <= (
            self.audio_frames
        ):
            problems.append(
                f"audio_patch {self.audio_patch} must fit the spectrogram "
                f"({self.n_mels} mels x {self.audio_frames} frames)"
            )
        video_size = (self.video_frames, self.image_size, self.image_size)
        if len(self.video_tubelet) != 3:
            problems.append("video_tubelet must be (time, height, width)")
        elif not all(1 <= t <= s for t, s in zip(self.video_tubelet, video_size, strict=True)):
            problems.append(
                f"video_tubelet {self.video_tubelet} must fit the frames "
                f"({self.video_frames} x {self.image_size} x {self.image_size})"
            )
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    @property
    def audio_tokens(self) -> int:
        """Tokens one spectrogram becomes."""
        return (self.n_mels // self.audio_patch[0]) * (self.audio_frames // self.audio_patch[1])

    @property
    def video_tokens(self) -> int:
        """Tokens one frame stack becomes."""
        t, h, w = self.video_tubelet
        return (self.video_frames // t) * (self.image_size // h) * (self.image_size // w)

    @classmethod
    def preset(cls, name: str = "default", **overrides: Any) -> ModelConfig:
        """A named preset (see ``PRESETS``) with some fields overridden, e.g. from parameters."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig field(s) {unknown}; valid fields: {sorted(known)}"
            )
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for logging as run parameters."""
        return asdict(self)


PRESETS: dict[str, ModelConfig] = {
    # Trains on 2 CPU cores in minutes on ~600 clips: 72 audio tokens, 98 video tokens.
    "default": ModelConfig(),
    # ViT-Small width on the same features, with finer time tubelets (72 + 196 tokens).
    "gpu": ModelConfig(dim=384, depth=8, heads=6, video_tubelet=(2, 16, 16)),
    # ViT-B/16's shape (D 768, 12 layers, 12 heads, MLP 3072, 16 x 16 patches), timm's LayerNorm
    # epsilon and a ViT's 2-D position grid, no dropout (as the checkpoints were trained): the
    # preset a ViT-B/16 checkpoint file maps onto (avshared.models.vit_checkpoint). 86 M encoder
    # parameters: a GPU's, not 2 cores'.
    "vit_base": ModelConfig(
        dim=768,
        depth=12,
        heads=12,
        mlp_ratio=4.0,
        dropout=0.0,
        audio_patch=(16, 16),
        video_tubelet=(2, 16, 16),
        norm_eps=1e-6,
        positions="grid",
    ),
    # Smoke tests of the code around the model: the default inputs at a fraction of the work.
    "tiny": ModelConfig(dim=32, depth=2, heads=2, mlp_ratio=2.0, dropout=0.0),
}
