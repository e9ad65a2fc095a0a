"""Start the shared encoder and the patch embeddings from a ViT checkpoint file.

A timm / AST-style ``vit_*`` state dict (``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.{i}.norm1|attn.qkv|attn.proj|norm2|mlp.fc1|mlp.fc2``, ``norm``), read from a file a user
downloaded elsewhere, is mapped onto a ``SharedEncoder`` and the audio/video patch embeddings:

- each timm ``Block`` becomes one pre-norm ``nn.TransformerEncoderLayer``: ``attn.qkv`` is the
  fused ``self_attn.in_proj`` (same [q; k; v] row order and head split), ``attn.proj`` is
  ``self_attn.out_proj``, ``mlp.fc1``/``fc2`` are ``linear1``/``linear2``, ``norm1``/``norm2`` the
  same; a LayerScale (``ls1``/``ls2.gamma``) is folded into ``attn.proj``/``mlp.fc2``; BEiT /
  VideoMAE-style separate ``q_bias``/``v_bias`` become the fused bias with a zero key bias;
- ``norm`` is the encoder's final LayerNorm, and ``cls_token`` its [CLS] token (plus the [CLS] row
  of ``pos_embed`` where the checkpoint adds one, since the encoder adds no position to [CLS]);
- the 2-D grid of ``pos_embed`` (its [CLS]/distillation/register rows dropped) is bicubically
  interpolated to each modality's token grid (audio: mel patches x time patches; video: the
  per-frame patch grid, shared by all time indices, whose own ``time_position`` stays at its
  initialisation); an embedding with factorised positions gets the least-squares per-axis fit of
  that grid, and the report says how much of the grid it could not represent;
- ``patch_embed.proj`` is summed over RGB for the one-channel spectrogram (as AST does) and, for
  video tubelets, inflated over time (ViViT/VideoMAE: the 2-D kernel divided by the tubelet depth t
  and repeated t times, "average", or placed on the central frame, "central"), so that a static clip
  gives the 2-D projection of its frame; a patch size that differs from the checkpoint's is handled
  by FlexiViT's pseudo-inverse resize of the kernel.

LayerNorm epsilon: timm's ViTs use 1e-6, ``nn.LayerNorm`` 1e-5; the loader sets the encoder's
LayerNorms to ``norm_eps`` (1e-6) so that the loaded blocks compute what they did in timm; build
the model with ``ModelConfig(norm_eps=1e-6)`` (the ``vit_base`` preset does) to keep it on reload.

Nothing is ever downloaded: the only file read is the one given, with ``torch.load(...,
weights_only=True)`` (no code in a checkpoint runs), or ``safetensors`` for ``*.safetensors`` when
that package is installed. Plain torch: no Kedro, no other files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avshared.models.config import PRESETS
from avshared.models.embeddings import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AudioPatchEmbedding,
    VideoPatchEmbedding,
)
from avshared.models.encoder import SharedEncoder

#: timm's LayerNorm epsilon in its ViTs.
TIMM_NORM_EPS = 1e-6
#: Video kernel inflations over the tubelet depth.
INFLATIONS: tuple[str, ...] = ("average", "central")
#: (width, depth) of the standard ViT sizes -> (name, heads); a checkpoint does not store its heads.
STANDARD_VITS: dict[tuple[int, int], tuple[str, int]] = {
    (192, 12): ("tiny", 3),
    (384, 12): ("small", 6),
    (768, 12): ("base", 12),
    (1024, 24): ("large", 16),
    (1280, 32): ("huge", 16),
}
#: Where the blocks are found; the prefix in front of it is stripped from every key.
_ANCHOR = "blocks.0.norm1.weight"
#: Keys within a block that the mapping understands.
_BLOCK_KEYS = frozenset(
    {
        "norm1.weight",
        "norm1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.q_bias",
        "attn.v_bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
        "ls1.gamma",
        "ls2.gamma",
    }
)
#: Top-level parts that change what the blocks see and that the shared encoder does not have (a
#: CLIP-style LayerNorm before the blocks, a norm after the patch projection): refused, not skipped.
#: Other keys the mapping does not use (classifier heads, fc_norm, distillation or register tokens)
#: are listed in the report's ``unused``.
_UNMAPPABLE_PREFIXES = ("norm_pre.", "patch_embed.norm.")


@dataclass
class VitLoadReport:
    """What a load did, for the caller to log.

    ``loaded``: model parameters that took checkpoint values; ``random_init``: model parameters left
    as initialised (type embeddings, a video ``time_position``, anything the checkpoint lacks);
    ``unused``: checkpoint keys not loaded (classifier heads, distillation token, ...);
    ``adaptations``: one line per change made on the way (RGB sum, inflation, interpolation, eps).
    """

    checkpoint: str
    model: str
    loaded: list[str] = field(default_factory=list)
    random_init: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    adaptations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for a log."""
        lines = [
            f"ViT checkpoint ({self.checkpoint}) -> model ({self.model}): "
            f"{len(self.loaded)} parameter tensors loaded, {len(self.random_init)} left at their "
            f"initialisation, {len(self.unused)} checkpoint tensors unused",
            f"  left at initialisation: {', '.join(self.random_init) or '-'}",
            f"  unused: {', '.join(self.unused) or '-'}",
        ]
        lines += [f"  {line}" for line in self.adaptations]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Reading


def read_vit_state_dict(source: str | Path | Mapping[str, Any]) -> dict[str, Tensor]:
    """The checkpoint's tensors, keys as in the file: from a path (``torch.load`` with
    ``weights_only=True``; ``*.safetensors`` with the ``safetensors`` package) or an in-memory
    state dict. A wrapping ``state_dict`` / ``model`` / ``module`` entry is unwrapped."""
    if isinstance(source, Mapping):
        obj: Any = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no ViT checkpoint file at {path}")
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError as error:
                raise ImportError(
                    f"{path} is a safetensors file; install the safetensors package to read it "
                    "(pip install safetensors), or save the state dict with torch.save"
                ) from error
            obj = load_file(str(path), device="cpu")
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:
                raise ValueError(
                    f"{path} could not be read as a state dict with torch.load(weights_only=True) "
                    f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); only tensors "
                    "and plain containers are read (no code from a file runs): save the model's "
                    "state_dict() with torch.save, or as .safetensors"
                ) from error
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        inner = next(
            (obj[k] for k in ("state_dict", "model", "module") if isinstance(obj.get(k), Mapping)),
            None,
        )
        if inner is None or any(k.endswith(_ANCHOR) for k in obj):
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise ValueError(f"a ViT checkpoint must hold a state dict; got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, Tensor)}


@dataclass
class _Patches:
    """What the embeddings take from the checkpoint: the 2-D (or tubelet) patch kernel, its bias
    (zeros where the checkpoint has none: ``bias_source`` is then empty) and the position grid."""

    kernel: Tensor | None
    bias: Tensor | None
    bias_source: tuple[str, ...]
    grid: Tensor | None


@dataclass
class _Checkpoint:
    """The ViT's tensors (prefix stripped) and the shape they imply."""

    state: dict[str, Tensor]
    dim: int
    depth: int
    mlp: int
    heads: int | None
    name: str | None
    patch: tuple[int, ...]
    other_keys: list[str]

    def describe(self, heads: int | None = None) -> str:
        heads = heads or self.heads
        text = f"dim {self.dim}, depth {self.depth}, heads {heads or '?'}, mlp {self.mlp}"
        patch = "x".join(map(str, self.patch))
        return f"{text}, patch {patch}" + (f" ({self.name})" if self.name else "")


def _parse(raw: Mapping[str, Tensor]) -> _Checkpoint:
    anchors = sorted((k for k in raw if k.endswith(_ANCHOR)), key=len)
    if not anchors:
        raise ValueError(
            f"no ViT blocks ('{_ANCHOR}') among the checkpoint's {len(raw)} tensors (first keys: "
            f"{list(raw)[:6]}); expected a timm / AST-style vit_* state dict"
        )
    prefix = anchors[0][: -len(_ANCHOR)]
    # Half-precision files are adapted (interpolated, summed, inflated) in float32.
    state = {
        k[len(prefix) :]: v.float() if v.is_floating_point() else v
        for k, v in raw.items()
        if k.startswith(prefix)
    }
    other = sorted(k for k in raw if not k.startswith(prefix))
    unmappable = sorted(k for k in state if k.startswith(_UNMAPPABLE_PREFIXES))
    if unmappable:
        raise ValueError(
            f"the checkpoint has parts the shared encoder lacks: {unmappable}; only plain timm / "
            "AST ViTs (no norm before the blocks or after the patch projection) are mapped"
        )
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    for key in ("attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight"):
        missing = [i for i in range(depth) if f"blocks.{i}.{key}" not in state]
        if missing:
            raise ValueError(f"the checkpoint's blocks {missing} lack {key}")
    dim = state["blocks.0.attn.qkv.weight"].shape[1]
    mlp = state["blocks.0.mlp.fc1.weight"].shape[0]
    projection = state.get("patch_embed.proj.weight")
    patch = tuple(projection.shape[2:]) if projection is not None else ()
    name, heads = None, None
    if (dim, depth) in STANDARD_VITS:
        size, heads = STANDARD_VITS[dim, depth]
        name = f"vit_{size}" + (f"_patch{patch[-1]}" if len(set(patch)) == 1 else "")
    return _Checkpoint(state, dim, depth, mlp, heads, name, patch, other)


# --------------------------------------------------------------------------------------------------
# Adaptations (public: tested on their own, reusable)


def interpolate_position_grid(grid: Tensor, size: tuple[int, int]) -> Tensor:
    """(h, w, D) position grid -> (size[0], size[1], D), bicubic (antialiased when shrinking, as
    timm resamples position embeddings); returned unchanged when the size is already right."""
    if tuple(grid.shape[:2]) == tuple(size):
        return grid
    x = grid.permute(2, 0, 1).unsqueeze(0).float()
    x = F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).to(grid.dtype)


def factorise_position_grid(grid: Tensor) -> tuple[Tensor, Tensor, float]:
    """Least-squares per-axis fit of a (h, w, D) grid: rows (h, 1, D) + cols (1, w, D) ~ grid.

    Also returns the share of the grid's variation (about its mean) that the sum cannot represent,
    0 for a grid that already is a sum of per-axis vectors."""
    mean = grid.mean(dim=(0, 1), keepdim=True)
    rows = grid.mean(dim=1, keepdim=True) - mean / 2
    cols = grid.mean(dim=0, keepdim=True) - mean / 2
    spread = (grid - mean).pow(2).sum()
    lost = float((grid - rows - cols).pow(2).sum() / spread) if spread > 0 else 0.0
    return rows, cols, lost


def resize_patch_kernel(weight: Tensor, size: tuple[int, int]) -> Tensor:
    """Patch-projection kernel (D, C, h, w) -> (D, C, *size), FlexiViT's pseudo-inverse resize:
    the new kernel on a patch resized (bicubic) to ``size`` gives what the old one gave on the
    patch, exactly when enlarging and in the least-squares sense when shrinking."""
    old, new = tuple(weight.shape[2:]), tuple(size)
    if old == new:
        return weight
    basis = torch.eye(old[0] * old[1], dtype=torch.float64).reshape(-1, 1, *old)
    resize = F.interpolate(basis, size=new, mode="bicubic", align_corners=False)
    resize = resize.reshape(old[0] * old[1], new[0] * new[1])  # rows: resized basis patches
    inverse = torch.linalg.pinv(resize)  # (new, old): the least-squares inverse of resize's map
    flat = weight.reshape(-1, old[0] * old[1]).double()
    return (flat @ inverse.T).reshape(*weight.shape[:2], *new).to(weight.dtype)


def inflate_patch_kernel(weight: Tensor, depth: int, mode: str = "average") -> Tensor:
    """2-D kernel (D, C, h, w) -> tubelet kernel (D, C, depth, h, w) that gives the 2-D output on a
    static clip: ``average`` divides by depth and repeats (I3D/ViViT), ``central`` puts the kernel
    on the central frame and zeros elsewhere (ViViT's central-frame initialisation)."""
    if mode not in INFLATIONS:
        raise ValueError(f"video_inflation must be one of {list(INFLATIONS)}; got {mode!r}")
    if mode == "average":
        return weight.unsqueeze(2).repeat(1, 1, depth, 1, 1) / depth
    inflated = weight.new_zeros(weight.shape[0], weight.shape[1], depth, *weight.shape[2:])
    inflated[:, :, depth // 2] = weight
    return inflated


# --------------------------------------------------------------------------------------------------
# Loading


class _Writer:
    """Stages values for parameters (checked, copied only by ``commit``, so that a load that fails
    half-way changes nothing), recording their names, the checkpoint keys used and notes."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        self.names = {
            id(p): f"{prefix}{name}"
            for prefix, module in modules.items()
            for name, p in module.named_parameters()
        }
        self.loaded: set[str] = set()
        self.used: set[str] = set()
        self.notes: set[str] = set()
        self.staged: list[tuple[Tensor, Tensor]] = []
        self.norm_eps: tuple[nn.Module, float] | None = None

    def __call__(self, parameter: Tensor, value: Tensor, *source: str) -> None:
        name = self.names[id(parameter)]
        if tuple(parameter.shape) != tuple(value.shape):
            raise ValueError(
                f"checkpoint {' + '.join(source) or 'value'} has shape {tuple(value.shape)}, "
                f"model parameter {name} {tuple(parameter.shape)}"
            )
        self.staged.append((parameter, value))
        self.loaded.add(name)
        self.used.update(source)

    def commit(self) -> None:
        with torch.no_grad():
            for parameter, value in self.staged:
                parameter.copy_(value.to(parameter.dtype))
        if self.norm_eps is not None:
            module, eps = self.norm_eps
            for norm in module.modules():
                if isinstance(norm, nn.LayerNorm):
                    norm.eps = eps


def _encoder_shape(encoder: SharedEncoder) -> tuple[int, int, int, int]:
    layers = encoder.layers.layers
    return encoder.dim, len(layers), layers[0].self_attn.num_heads, layers[0].linear1.out_features


def _check_fit(ckpt: _Checkpoint, encoder: SharedEncoder, heads: int | None, label: str) -> None:
    dim, depth, model_heads, mlp = _encoder_shape(encoder)
    ckpt_heads = heads or ckpt.heads
    differ = [
        what
        for what, a, b in (
            ("dim", ckpt.dim, dim),
            ("depth", ckpt.depth, depth),
            ("heads", ckpt_heads or model_heads, model_heads),
            ("mlp", ckpt.mlp, mlp),
        )
        if a != b
    ]
    if differ:
        model = f"dim {dim}, depth {depth}, heads {model_heads}, mlp {mlp}"
        raise ValueError(
            f"the ViT checkpoint does not fit the model ({', '.join(differ)} differ): checkpoint: "
            f"{ckpt.describe(heads)}; model: {model} ({label}). Build the model with the "
            "checkpoint's dim, depth, heads and mlp_ratio (a ViT-B/16: the vit_base preset)"
        )


def _load_blocks(ckpt: _Checkpoint, encoder: SharedEncoder, write: _Writer) -> None:
    s = ckpt.state
    for i, layer in enumerate(encoder.layers.layers):
        b = f"blocks.{i}."
        unknown = sorted(
            k[len(b) :] for k in s if k.startswith(b) and k[len(b) :] not in _BLOCK_KEYS
        )
        if unknown:
            raise ValueError(
                f"block {i} of the checkpoint has parts a TransformerEncoderLayer does not "
                f"(e.g. q/k norms, a sub-LN): {unknown}; only plain timm ViT blocks are mapped"
            )
        attn = layer.self_attn
        write(attn.in_proj_weight, s[b + "attn.qkv.weight"], b + "attn.qkv.weight")
        if b + "attn.qkv.bias" in s:
            write(attn.in_proj_bias, s[b + "attn.qkv.bias"], b + "attn.qkv.bias")
        elif b + "attn.q_bias" in s:
            q = s[b + "attn.q_bias"]
            v = s.get(b + "attn.v_bias", torch.zeros_like(q))
            write(attn.in_proj_bias, torch.cat([q, torch.zeros_like(q), v]), b + "attn.q_bias")
            write.used.add(b + "attn.v_bias")
            write.notes.add("attention: separate q_bias/v_bias fused with a zero key bias")
        else:
            write(attn.in_proj_bias, torch.zeros_like(attn.in_proj_bias))
            write.notes.add("attention: the checkpoint has no q/k/v bias; set to zero")
        for src, linear, scale in (
            ("attn.proj", attn.out_proj, "ls1.gamma"),
            ("mlp.fc2", layer.linear2, "ls2.gamma"),
        ):
            weight, bias = s[f"{b}{src}.weight"], s.get(f"{b}{src}.bias")
            bias = torch.zeros(weight.shape[0], dtype=weight.dtype) if bias is None else bias
            if b + scale in s:
                gamma = s[b + scale]
                weight, bias = weight * gamma[:, None], bias * gamma
                write.used.add(b + scale)
                write.notes.add("LayerScale (ls1/ls2.gamma) folded into attn.proj and mlp.fc2")
            write(linear.weight, weight, f"{b}{src}.weight")
            write(linear.bias, bias, *[f"{b}{src}.bias"] * (f"{b}{src}.bias" in s))
        write(layer.linear1.weight, s[b + "mlp.fc1.weight"], b + "mlp.fc1.weight")
        write(layer.linear1.bias, s[b + "mlp.fc1.bias"], b + "mlp.fc1.bias")
        for norm in ("norm1", "norm2"):
            for part in ("weight", "bias"):
                key = f"{b}{norm}.{part}"
                write(getattr(getattr(layer, norm), part), s[key], key)


def _position_grid(ckpt: _Checkpoint, grid: tuple[int, int] | None) -> tuple[Tensor, int] | None:
    """The checkpoint's patch-position grid (h, w, D) and how many prefix rows precede it."""
    pos = ckpt.state.get("pos_embed")
    if pos is None:
        return None
    pos = pos.reshape(-1, pos.shape[-1])
    s = ckpt.state
    prefix = ("cls_token" in s) + ("dist_token" in s)
    prefix += s["reg_token"].shape[1] if "reg_token" in s else 0
    rows = pos.shape[0]
    if grid is not None:
        if rows - grid[0] * grid[1] not in (0, prefix):
            raise ValueError(
                f"checkpoint_grid {tuple(grid)} does not fit pos_embed's {rows} rows "
                f"({prefix} prefix tokens)"
            )
        shape = tuple(grid)
    else:
        for skip in (prefix, 0):
            side = math.isqrt(rows - skip)
            if side * side == rows - skip:
                shape = (side, side)
                break
        else:
            raise ValueError(
                f"pos_embed has {rows} rows: not a square grid after its {prefix} prefix token(s); "
                "pass checkpoint_grid=(rows, cols), e.g. (12, 101) for AST's AudioSet model"
            )
    skip = rows - shape[0] * shape[1]
    return pos[skip:].reshape(*shape, -1), skip


def _load_audio(emb: AudioPatchEmbedding, patches: _Patches, write: _Writer) -> None:
    kernel, grid = patches.kernel, patches.grid
    if kernel is not None:
        if kernel.ndim != 4:
            raise ValueError(
                f"the checkpoint's patch projection {tuple(kernel.shape)} is not a 2-D kernel "
                "(D, C, h, w); the audio embedding takes 2-D ones"
            )
        if kernel.shape[1] == 3:
            kernel = kernel.sum(dim=1, keepdim=True)
            write.notes.add(
                "audio patch projection: summed over RGB for the one-channel log-mel (AST)"
            )
        elif kernel.shape[1] != 1:
            raise ValueError(f"a patch projection of {kernel.shape[1]} channels; expected 3 or 1")
        if tuple(kernel.shape[2:]) != emb.patch_size:
            write.notes.add(
                f"audio patch projection: kernel {tuple(kernel.shape[2:])} resized to "
                f"{emb.patch_size} (FlexiViT pseudo-inverse)"
            )
            kernel = resize_patch_kernel(kernel, emb.patch_size)
        write(emb.projection.weight, kernel, "patch_embed.proj.weight")
        write(emb.projection.bias, patches.bias, *patches.bias_source)
    if grid is not None:
        positions = interpolate_position_grid(grid, emb.grid)
        write.notes.add(
            f"audio positions: the {tuple(grid.shape[:2])} grid -> {emb.grid} "
            "(mel patches x time patches), bicubic"
            if tuple(grid.shape[:2]) != emb.grid
            else f"audio positions: the {emb.grid} grid as it is"
        )
        if emb.positions == "grid":
            write(emb.position, positions, "pos_embed")
        else:
            rows, cols, share = factorise_position_grid(positions)
            write(emb.freq_position, rows, "pos_embed")
            write(emb.time_position, cols, "pos_embed")
            _note_factorisation(write, "audio", share)


def _load_video(
    emb: VideoPatchEmbedding,
    patches: _Patches,
    write: _Writer,
    *,
    inflation: str,
    image_mean: Any,
    image_std: Any,
) -> None:
    t, h, w = emb.tubelet_size
    kernel, bias, grid = patches.kernel, patches.bias, patches.grid
    if kernel is not None:
        if kernel.ndim == 5:
            if tuple(kernel.shape[2:]) != emb.tubelet_size:
                raise ValueError(
                    f"the checkpoint's tubelet kernel {tuple(kernel.shape[2:])} differs from the "
                    f"model's video_tubelet {emb.tubelet_size}; build the model with the "
                    "checkpoint's tubelet"
                )
            inflated = kernel
        else:
            if kernel.shape[1] != 3:
                raise ValueError(
                    f"the video embedding takes an RGB patch projection; the checkpoint's has "
                    f"{kernel.shape[1]} channel(s)"
                )
            mean, std = image_mean, image_std
            if mean is not None or std is not None:
                kernel, bias = _fold_normalisation(kernel, bias, mean, std)
                write.notes.add(
                    f"video patch projection: the checkpoint's input normalisation (mean {mean}, "
                    f"std {std}) folded in (the embedding normalises with ImageNet's)"
                )
            if tuple(kernel.shape[2:]) != (h, w):
                write.notes.add(
                    f"video patch projection: kernel {tuple(kernel.shape[2:])} resized to "
                    f"{(h, w)} (FlexiViT pseudo-inverse)"
                )
                kernel = resize_patch_kernel(kernel, (h, w))
            inflated = inflate_patch_kernel(kernel, t, inflation)
            write.notes.add(
                f"video patch projection: inflated over the tubelet depth {t} "
                f"({inflation}: a static clip gives the 2-D projection)"
            )
        write(emb.projection.weight, inflated, "patch_embed.proj.weight")
        write(emb.projection.bias, bias, *patches.bias_source)
    if grid is not None:
        frame = interpolate_position_grid(grid, emb.grid[1:])
        write.notes.add(
            f"video positions: the {tuple(grid.shape[:2])} grid -> {emb.grid[1:]} per frame "
            "(bicubic), the same for every time index; time_position left at initialisation"
        )
        if emb.positions == "grid":
            write(emb.frame_position, frame.unsqueeze(0), "pos_embed")
        else:
            rows, cols, share = factorise_position_grid(frame)
            write(emb.row_position, rows.unsqueeze(0), "pos_embed")
            write(emb.col_position, cols.unsqueeze(0), "pos_embed")
            _note_factorisation(write, "video", share)


def _note_factorisation(write: _Writer, modality: str, share: float) -> None:
    write.notes.add(
        f"{modality} positions: factorised per axis (least squares); {100 * share:.1f}% of the "
        "grid's variation is not a per-axis sum and is lost (positions='grid' keeps it)"
    )


def _fold_normalisation(kernel: Tensor, bias: Tensor, mean: Any, std: Any) -> tuple[Tensor, Tensor]:
    """The kernel and bias that give, on ImageNet-normalised input, what the checkpoint's give on
    input normalised with its own (mean, std)."""
    own_mean = torch.tensor(mean if mean is not None else IMAGENET_MEAN, dtype=torch.float64)
    own_std = torch.tensor(std if std is not None else IMAGENET_STD, dtype=torch.float64)
    imagenet_mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    imagenet_std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    k = kernel.double()
    # x_ckpt = (x - m) / s = (S * x_ours + M - m) / s
    scaled = k * (imagenet_std / own_std).view(1, 3, 1, 1)
    shift = (k * ((imagenet_mean - own_mean) / own_std).view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    return scaled.to(kernel.dtype), (bias.double() + shift).to(bias.dtype)


def _plan(
    source: str | Path | Mapping[str, Any],
    encoder: SharedEncoder,
    embeddings: Mapping[str, nn.Module] | None = None,
    *,
    heads: int | None = None,
    checkpoint_grid: tuple[int, int] | None = None,
    video_inflation: str = "average",
    image_mean: tuple[float, float, float] | None = None,
    image_std: tuple[float, float, float] | None = None,
    norm_eps: float = TIMM_NORM_EPS,
    model_label: str = "model",
    names: Mapping[str, str] | None = None,
) -> tuple[_Writer, VitLoadReport]:
    """What ``load_vit_weights`` loads, staged in a ``_Writer``, and its report."""
    ckpt = _parse(read_vit_state_dict(source))
    _check_fit(ckpt, encoder, heads, model_label)
    if video_inflation not in INFLATIONS:
        raise ValueError(
            f"video_inflation must be one of {list(INFLATIONS)}; got {video_inflation!r}"
        )
    embeddings = dict(embeddings or {})
    unknown = sorted(set(embeddings) - {"audio", "video"})
    if unknown:
        raise ValueError(f"embeddings must be keyed by 'audio' / 'video'; got {unknown}")
    names = dict(names or {})
    modules = {names.get("encoder", "encoder."): encoder}
    modules |= {names.get(m, f"embeddings.{m}."): e for m, e in embeddings.items()}
    write = _Writer(modules)
    s = ckpt.state

    _load_blocks(ckpt, encoder, write)
    if "norm.weight" in s:
        write(encoder.norm.weight, s["norm.weight"], "norm.weight")
        write(encoder.norm.bias, s["norm.bias"], "norm.bias")
    positions = _position_grid(ckpt, checkpoint_grid)
    grid, skip = positions if positions is not None else (None, 0)
    if "cls_token" in s:
        cls = s["cls_token"].reshape(encoder.cls_token.shape)
        used = ["cls_token"]
        if skip:
            cls = cls + s["pos_embed"].reshape(-1, ckpt.dim)[0].reshape(cls.shape)
            used.append("pos_embed")
            write.notes.add(
                "[CLS]: cls_token plus its pos_embed row (the encoder adds no position)"
            )
        write(encoder.cls_token, cls, *used)

    kernel = s.get("patch_embed.proj.weight")
    bias = s.get("patch_embed.proj.bias")
    bias_source = ("patch_embed.proj.bias",) if bias is not None else ()
    if kernel is not None:
        if bias is None:
            bias = torch.zeros(kernel.shape[0], dtype=kernel.dtype)
            write.notes.add("patch projection: no bias in the checkpoint; set to zero")
        if tuple(kernel.shape[:1]) != (ckpt.dim,):
            raise ValueError(f"patch_embed.proj.weight {tuple(kernel.shape)} is not of width dim")
    patches = _Patches(kernel, bias, bias_source, grid)
    for modality, embedding in embeddings.items():
        if modality == "audio":
            if not isinstance(embedding, AudioPatchEmbedding):
                raise TypeError(f"embeddings['audio'] is a {type(embedding).__name__}")
            _load_audio(embedding, patches, write)
        else:
            if not isinstance(embedding, VideoPatchEmbedding):
                raise TypeError(f"embeddings['video'] is a {type(embedding).__name__}")
            _load_video(
                embedding,
                patches,
                write,
                inflation=video_inflation,
                image_mean=image_mean,
                image_std=image_std,
            )
    if positions is None:
        write.notes.add("positions: the checkpoint has no pos_embed; left at initialisation")

    eps_before = {m.eps for m in encoder.modules() if isinstance(m, nn.LayerNorm)}
    write.norm_eps = (encoder, norm_eps)
    if eps_before != {norm_eps}:
        write.notes.add(
            f"LayerNorm eps: the encoder's {sorted(eps_before)} set to {norm_eps} (timm's); build "
            f"the model with norm_eps={norm_eps} (as the vit_base preset) to keep it on reload"
        )

    every = list(write.names.values())
    return write, VitLoadReport(
        checkpoint=ckpt.describe(heads),
        model=model_label,
        loaded=[n for n in every if n in write.loaded],
        random_init=[n for n in every if n not in write.loaded],
        unused=sorted({*(k for k in s if k not in write.used), *ckpt.other_keys}),
        adaptations=sorted(write.notes),
    )


def load_vit_weights(
    source: str | Path | Mapping[str, Any],
    encoder: SharedEncoder,
    embeddings: Mapping[str, nn.Module] | None = None,
    *,
    heads: int | None = None,
    checkpoint_grid: tuple[int, int] | None = None,
    video_inflation: str = "average",
    image_mean: tuple[float, float, float] | None = None,
    image_std: tuple[float, float, float] | None = None,
    norm_eps: float = TIMM_NORM_EPS,
    model_label: str = "model",
    names: Mapping[str, str] | None = None,
) -> VitLoadReport:
    """Load a ViT checkpoint into ``encoder`` and the ``embeddings`` (by modality: "audio" ->
    ``AudioPatchEmbedding``, "video" -> ``VideoPatchEmbedding``), in place.

    ``source``: a file path or an in-memory state dict. ``heads``: the checkpoint's head count when
    it is not a standard ViT size (a state dict does not store it). ``checkpoint_grid``: its
    position grid (rows, cols) when not square (AST: (12, 101)). ``video_inflation``: "average" or
    "central". ``image_mean``/``image_std``: the input normalisation the checkpoint was trained
    with, when not ImageNet's (e.g. 0.5/0.5 for timm's augreg ViTs), folded into the projection.
    ``norm_eps``: the LayerNorm epsilon set on the encoder (timm's 1e-6). ``model_label`` names the
    model in errors and the report; ``names`` the prefix of each module's parameters in the report
    (default "encoder." and "embeddings.<modality>.").

    A model whose width, depth, heads or MLP width differ from the checkpoint's is refused with a
    ValueError naming both. Every check runs before the first parameter changes: a load that fails
    leaves the modules as they were. Returns a ``VitLoadReport``.
    """
    write, report = _plan(
        source,
        encoder,
        embeddings,
        heads=heads,
        checkpoint_grid=checkpoint_grid,
        video_inflation=video_inflation,
        image_mean=image_mean,
        image_std=image_std,
        norm_eps=norm_eps,
        model_label=model_label,
        names=names,
    )
    write.commit()
    return report


def load_vit_into_classifier(
    model: nn.Module, source: str | Path | Mapping[str, Any], **options: Any
) -> VitLoadReport:
    """``load_vit_weights`` into a ``SharedEncoderClassifier`` (its encoder and embeddings) or a
    ``SeparateEncodersClassifier`` (every modality's encoder gets the same blocks, each embedding
    its adaptation); the head stays as initialised. Options as for ``load_vit_weights``."""
    config = getattr(model, "config", None)
    label = options.pop("model_label", None)
    if label is None and config is not None:
        shape = (config.dim, config.depth, config.heads, config.mlp_ratio)
        presets = [n for n, p in PRESETS.items() if (p.dim, p.depth, p.heads, p.mlp_ratio) == shape]
        label = f"preset {' / '.join(presets)}" if presets else "a custom ModelConfig"
    label = label or type(model).__name__
    source = read_vit_state_dict(source) if not isinstance(source, Mapping) else source
    if hasattr(model, "encoder"):
        plans = [_plan(source, model.encoder, model.embeddings, model_label=label, **options)]
    elif hasattr(model, "encoders"):
        plans = [
            _plan(
                source,
                model.encoders[m],
                {m: model.embeddings[m]},
                model_label=label,
                names={"encoder": f"encoders.{m}.", m: f"embeddings.{m}."},
                **options,
            )
            for m in model.encoders
        ]
    else:
        raise TypeError(f"{type(model).__name__} has neither an encoder nor per-modality encoders")
    for write, _ in plans:  # every branch was planned without error: now change the model
        write.commit()
    reports = [report for _, report in plans]
    head = [n for n, _ in model.named_parameters() if n.startswith(("head.", "heads."))]
    first = reports[0]
    return VitLoadReport(
        checkpoint=first.checkpoint,
        model=label,
        loaded=[n for r in reports for n in r.loaded],
        random_init=[n for r in reports for n in r.random_init] + head,
        unused=sorted(set.intersection(*(set(r.unused) for r in reports))),
        adaptations=sorted({a for r in reports for a in r.adaptations}),
    )
