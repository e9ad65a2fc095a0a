"""Masked autoencoding through the shared encoder (MAE; CAV-MAE and AudioMAE for the two senses).

Each modality's tokens come from its patch embedding, as in the classifiers (positions and type
embedding included). A share ``mask_ratio`` of each modality's tokens is hidden, drawn afresh for
every sample (``random_masking``); the encoder sees the visible tokens of every given sense in one
sequence (early fusion, as the bimodal classifier). A light decoder (``MaskedAutoencoderDecoder``:
width, depth and heads of its own, its own learned positions and modality types) puts a learned
mask token at every hidden position and predicts every token's patch (``avshared.models.patches``).
The loss is the mean squared error on the hidden patches only, against targets normalised per patch
(MAE's ``norm_pix_loss``): spectrogram patches of the standardised log-mel, tubelets of the frames
scaled to [0, 1]; the senses' losses are summed (CAV-MAE). With ``contrastive_weight`` > 0 and both
senses given, CAV-MAE's contrastive term is added: the encoder also runs on each sense's visible
tokens alone, the mean of the token states is each sense's embedding of the clip, and a symmetric
InfoNCE (``info_nce``) pulls the audio and video embeddings of one clip together, against the other
clips of the batch.

After pretraining only the encoder and the embeddings are kept: their parameters have the names and
shapes of a ``SharedEncoderClassifier``'s (``encoder.*``, ``embeddings.<modality>.*``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avshared.models.classifier import (
    AUDIO,
    MODALITY_ORDER,
    build_embedding,
    build_encoder,
    parse_modalities,
)
from avshared.models.config import ModelConfig
from avshared.models.initialisation import init_token_, init_vit_weights
from avshared.models.patches import (
    frames_from_patches,
    spectrogram_from_patches,
    spectrogram_patches,
    tubelet_patches,
)

#: Added to a patch's variance before its targets are divided by its standard deviation (MAE's).
PATCH_NORM_EPS = 1e-6


@dataclass(frozen=True)
class DecoderConfig:
    """The decoder's width, depth, heads and MLP ratio (MAE's is much lighter than its encoder)."""

    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if min(self.dim, self.depth, self.heads) < 1 or self.dim % self.heads:
            raise ValueError(
                f"decoder dim {self.dim}, depth {self.depth}, heads {self.heads}: each must be "
                "positive and dim divisible by heads"
            )


@dataclass(frozen=True)
class TokenMask:
    """Which of N tokens one modality hides, per sample.

    ``visible`` (B, K): the kept tokens' indices, in the random order drawn; ``restore`` (B, N):
    where each position's token sits in [visible tokens, hidden tokens] (the inverse shuffle);
    ``hidden`` (B, N) bool: True where a token is hidden.
    """

    visible: Tensor
    restore: Tensor
    hidden: Tensor


@dataclass
class MaskedAutoencoderOutput:
    """What one masked-autoencoding pass gives, per modality where keyed.

    ``loss``: the objective (the summed reconstruction losses plus the weighted contrastive term);
    ``reconstruction``: each sense's loss on its hidden patches; ``contrastive``: the InfoNCE term,
    None when not computed; ``predictions`` (B, N, patch size): every token's predicted patch, in
    normalised units; ``masks``: the ``TokenMask`` of each sense.
    """

    loss: Tensor
    reconstruction: dict[str, Tensor]
    contrastive: Tensor | None
    predictions: dict[str, Tensor]
    masks: dict[str, TokenMask]


def visible_count(tokens: int, mask_ratio: float) -> int:
    """Tokens left visible out of ``tokens`` (MAE's ``int(N * (1 - ratio))``, at least one)."""
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be between 0 and 1 (exclusive); got {mask_ratio}")
    return max(1, int(tokens * (1 - mask_ratio)))


def random_masking(
    batch: int,
    tokens: int,
    mask_ratio: float,
    *,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> TokenMask:
    """A ``TokenMask`` hiding all but ``visible_count(tokens, mask_ratio)`` tokens of each sample,
    drawn by a shuffle of its own (the sort of uniform noise, as MAE)."""
    keep = visible_count(tokens, mask_ratio)
    noise = torch.rand(batch, tokens, device=device, generator=generator)
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    hidden = torch.ones(batch, tokens, dtype=torch.bool, device=device)
    hidden[:, :keep] = False
    return TokenMask(visible=shuffle[:, :keep], restore=restore, hidden=hidden.gather(1, restore))


def gather_tokens(tokens: Tensor, indices: Tensor) -> Tensor:
    """(B, N, D) tokens, (B, K) indices -> (B, K, D): each sample's tokens at its indices."""
    return tokens.gather(1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def normalise_patches(patches: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, N, P) -> the patches standardised over their own P values, and each patch's mean and
    standard deviation (B, N, 1), which undo it."""
    mean = patches.mean(dim=-1, keepdim=True)
    std = (patches.var(dim=-1, keepdim=True) + PATCH_NORM_EPS).sqrt()
    return (patches - mean) / std, mean, std


def masked_reconstruction_loss(predicted: Tensor, target: Tensor, hidden: Tensor) -> Tensor:
    """Mean squared error per patch (B, N, P), averaged over the hidden patches only ((B, N) bool
    True): what the encoder saw is not scored."""
    per_patch = (predicted.float() - target.float()).square().mean(dim=-1)
    weights = hidden.to(per_patch.dtype)
    return (per_patch * weights).sum() / weights.sum()


def info_nce(first: Tensor, second: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE of two (B, D) embeddings of the same B clips: row i of each should be
    most similar (cosine / ``temperature``) to row i of the other among all B rows."""
    first = F.normalize(first.float(), dim=-1)
    second = F.normalize(second.float(), dim=-1)
    logits = first @ second.T / temperature
    labels = torch.arange(len(first), device=first.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def frames_to_unit_range(frames: Tensor) -> Tensor:
    """Face frames as the video embedding takes them (uint8, or float in [0, 1]) -> float [0, 1]."""
    return frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()


class MaskedAutoencoderDecoder(nn.Module):
    """Encoder states of the visible tokens -> every token's predicted patch, per modality.

    ``[CLS]`` state (B, D_enc) and, per modality m, the visible tokens' states (B, K_m, D_enc) with
    its ``TokenMask`` -> (B, N_m, patch_sizes[m]). The states are projected to the decoder's width,
    a learned mask token fills every hidden position, the tokens are put back in their order, and
    the decoder's own learned positions (one vector per token) and modality types are added; the
    sequence [CLS, modality 1, modality 2] goes through the decoder's pre-norm layers and a
    LayerNorm, and a Linear layer per modality predicts the patches.
    """

    def __init__(
        self,
        encoder_dim: int,
        token_counts: Mapping[str, int],
        patch_sizes: Mapping[str, int],
        config: DecoderConfig = DecoderConfig(),
    ) -> None:
        super().__init__()
        self.token_counts = dict(token_counts)
        dim = config.dim
        self.projection = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.positions = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(1, n, dim)) for m, n in self.token_counts.items()}
        )
        self.type_embeddings = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(1, 1, dim)) for m in self.token_counts}
        )
        layer = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=config.heads,
            dim_feedforward=round(dim * config.mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleDict({m: nn.Linear(dim, patch_sizes[m]) for m in self.token_counts})
        self.apply(init_vit_weights)
        learned = [self.mask_token, *self.positions.values(), *self.type_embeddings.values()]
        for parameter in learned:
            init_token_(parameter)

    def forward(
        self,
        cls_state: Tensor,
        visible_states: Mapping[str, Tensor],
        masks: Mapping[str, TokenMask],
    ) -> dict[str, Tensor]:
        """See the class docstring; modalities in the order of ``visible_states``."""
        parts = [self.projection(cls_state).unsqueeze(1)]
        for modality, states in visible_states.items():
            x = self.projection(states)
            batch, visible, dim = x.shape
            hidden = self.token_counts[modality] - visible
            x = torch.cat([x, self.mask_token.to(x.dtype).expand(batch, hidden, dim)], dim=1)
            x = gather_tokens(x, masks[modality].restore)
            parts.append(x + self.positions[modality] + self.type_embeddings[modality])
        x = self.norm(self.layers(torch.cat(parts, dim=1)))
        predictions, start = {}, 1
        for modality in visible_states:
            end = start + self.token_counts[modality]
            predictions[modality] = self.heads[modality](x[:, start:end])
            start = end
        return predictions


class MaskedAutoencoder(nn.Module):
    """audio (B, 1, n_mels, T) standardised and/or video (B, F, 3, H, W) -> MaskedAutoencoderOutput.

    The embeddings and encoder are built from ``config`` exactly as the classifiers build theirs
    (same names and shapes), for the senses in ``modalities``; the decoder from ``decoder``.
    ``mask_ratio``: the share of each sense's tokens hidden. ``contrastive_weight``: the weight of
    the audio-video InfoNCE term (0: reconstruction only; ignored with one sense), at
    ``temperature``.
    """

    def __init__(
        self,
        modalities: str | Sequence[str] = MODALITY_ORDER,
        config: ModelConfig | None = None,
        decoder: DecoderConfig = DecoderConfig(),
        *,
        mask_ratio: float = 0.75,
        contrastive_weight: float = 0.0,
        temperature: float = 0.05,
    ) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.modalities = parse_modalities(modalities)
        visible_count(1, mask_ratio)  # checks the ratio
        if contrastive_weight < 0 or temperature <= 0:
            raise ValueError(
                f"contrastive_weight ({contrastive_weight}) must be >= 0 and temperature "
                f"({temperature}) > 0"
            )
        self.mask_ratio = mask_ratio
        self.contrastive_weight = contrastive_weight
        self.temperature = temperature
        self.embeddings = nn.ModuleDict(
            {m: build_embedding(m, self.config) for m in self.modalities}
        )
        self.encoder = build_encoder(self.config)
        self.decoder = MaskedAutoencoderDecoder(
            self.config.dim,
            {m: self.embeddings[m].num_tokens for m in self.modalities},
            {m: self._patch_size(m) for m in self.modalities},
            decoder,
        )

    def _patch_size(self, modality: str) -> int:
        if modality == AUDIO:
            pf, pt = self.config.audio_patch
            return pf * pt
        t, ph, pw = self.config.video_tubelet
        return 3 * t * ph * pw

    def patches(self, modality: str, x: Tensor) -> Tensor:
        """The patches a sense's input is reconstructed as, (B, N, patch size), unnormalised."""
        if modality == AUDIO:
            return spectrogram_patches(x.float(), self.config.audio_patch)
        return tubelet_patches(frames_to_unit_range(x), self.config.video_tubelet)

    def _inputs(self, audio: Tensor | None, video: Tensor | None) -> dict[str, Tensor]:
        inputs = {m: x for m, x in (("audio", audio), ("video", video)) if x is not None}
        if not inputs or not set(inputs) <= set(self.modalities):
            raise ValueError(
                f"this autoencoder takes {list(self.modalities)}; got {sorted(inputs) or 'none'}"
            )
        return inputs

    def forward(
        self,
        audio: Tensor | None = None,
        video: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> MaskedAutoencoderOutput:
        """One pass with fresh masks (drawn from ``generator`` when given)."""
        inputs = self._inputs(audio, video)
        tokens = {m: self.embeddings[m](x) for m, x in inputs.items()}
        batch = next(iter(tokens.values())).shape[0]
        device = next(iter(tokens.values())).device
        masks = {
            m: random_masking(
                batch, t.shape[1], self.mask_ratio, device=device, generator=generator
            )
            for m, t in tokens.items()
        }
        visible = {m: gather_tokens(t, masks[m].visible) for m, t in tokens.items()}
        states = self.encoder.token_states(torch.cat(list(visible.values()), dim=1))
        visible_states, start = {}, 1
        for modality, x in visible.items():
            visible_states[modality] = states[:, start : start + x.shape[1]]
            start += x.shape[1]
        predictions = self.decoder(states[:, 0], visible_states, masks)
        reconstruction = {
            m: masked_reconstruction_loss(
                predictions[m], normalise_patches(self.patches(m, x))[0], masks[m].hidden
            )
            for m, x in inputs.items()
        }
        loss = torch.stack(list(reconstruction.values())).sum()
        contrastive = None
        if self.contrastive_weight > 0 and len(visible) == len(MODALITY_ORDER):
            pooled = [self.encoder.token_states(x)[:, 1:].mean(dim=1) for x in visible.values()]
            contrastive = info_nce(*pooled, self.temperature)
            loss = loss + self.contrastive_weight * contrastive
        return MaskedAutoencoderOutput(loss, reconstruction, contrastive, predictions, masks)

    @torch.no_grad()
    def reconstruct(
        self,
        audio: Tensor | None = None,
        video: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, dict[str, Tensor]]:
        """For pictures: per sense, ``original``, ``masked`` (hidden patches set to NaN) and
        ``reconstructed`` (the predicted hidden patches, brought back to the input's scale with
        each patch's own mean and spread, beside the visible ones), each shaped like the covered
        part of the input: audio (B, 1, F, T) standardised, video (B, F, 3, H, W) in [0, 1]."""
        inputs = self._inputs(audio, video)
        output = self(**inputs, generator=generator)
        pictures = {}
        for modality, x in inputs.items():
            patches = self.patches(modality, x)
            _, mean, std = normalise_patches(patches)
            hidden = output.masks[modality].hidden.unsqueeze(-1)
            predicted = output.predictions[modality].float() * std + mean
            pictures[modality] = {
                "original": self._from_patches(modality, patches),
                "masked": self._from_patches(modality, patches.masked_fill(hidden, float("nan"))),
                "reconstructed": self._from_patches(
                    modality, torch.where(hidden, predicted, patches)
                ),
            }
        return pictures

    def _from_patches(self, modality: str, patches: Tensor) -> Tensor:
        grid = self.embeddings[modality].grid
        if modality == AUDIO:
            return spectrogram_from_patches(patches, self.config.audio_patch, grid)
        return frames_from_patches(patches, self.config.video_tubelet, grid)
