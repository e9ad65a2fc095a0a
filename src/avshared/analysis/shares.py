"""Cross-modal attention shares: how much of each sense's attention goes to the other sense.

For a clip, a layer and a head, with attention rows that sum to one over the present keys:

- ``audio_to_video``: the attention weight an audio token puts on all video tokens together,
  averaged over the clip's present audio tokens (likewise ``audio_to_audio``, ``audio_to_cls`` and
  the ``video_to_*`` columns, so ``audio_to_audio + audio_to_video + audio_to_cls = 1``);
- ``cls_to_audio``, ``cls_to_video``, ``cls_to_cls``: the split of the [CLS] token's attention.

The reference is what token counts alone give: under uniform attention over the present keys
([CLS], Na audio and Nv video tokens) a query puts ``uniform_video = Nv / (1 + Na + Nv)`` on video
and ``uniform_audio = Na / (1 + Na + Nv)`` on audio, whichever sense it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from avshared.analysis._batching import (
    as_tensor,
    batch_slices,
    clip_count,
    evaluating,
    to_device,
)
from avshared.analysis.attention import classifier_attention
from avshared.crema_d import parse_clip_id

#: Token groups, in the order of the share columns: the [CLS] token, then each sense.
GROUPS: tuple[str, ...] = ("cls", "audio", "video")
SHARE_COLUMNS: tuple[str, ...] = tuple(f"{q}_to_{k}" for q in GROUPS for k in GROUPS)
REFERENCE_COLUMNS: tuple[str, ...] = ("uniform_audio", "uniform_video")


def token_groups(spans: Mapping[str, slice], num_tokens: int) -> np.ndarray:
    """(N+1,) group index into ``GROUPS`` of each trace position: 0 [CLS], 1 audio, 2 video.

    ``spans`` are the token slices of ``SharedEncoderClassifier.encoder_inputs`` (without [CLS]).
    """
    groups = np.full(num_tokens + 1, -1, dtype=np.int64)
    groups[0] = 0
    for modality, span in spans.items():
        groups[1:][span] = GROUPS.index(modality)
    if (groups < 0).any():
        raise ValueError(f"token positions {np.flatnonzero(groups < 0).tolist()[:5]} have no span")
    return groups


def cross_modal_shares(
    attention: Tensor | np.ndarray,
    groups: ArrayLike,
    padding_mask: Tensor | np.ndarray | None = None,
    clip_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Attention shares per clip, layer and head.

    Args:
        attention: (layers, B, heads, N+1, N+1) maps of ``encoder_attention`` (rows: queries).
        groups: (N+1,) group of each position (``token_groups``).
        padding_mask: (B, N+1) bool, True where a position is missing: missing queries are left
            out of the averages (a missing sense's ``<sense>_to_*`` shares are NaN).
        clip_ids: B names for the ``clip_id`` column (default: the row numbers as text).

    Returns:
        One row per (clip, layer, head): ``clip_id``, ``layer`` (0-based), ``head``, the
        ``SHARE_COLUMNS``, ``audio_tokens`` and ``video_tokens`` (present counts) and the
        token-count reference ``REFERENCE_COLUMNS``.
    """
    maps = torch.as_tensor(attention).double()
    layers, batch, heads, positions, _ = maps.shape
    groups = torch.as_tensor(np.asarray(groups), dtype=torch.long)
    if groups.shape != (positions,):
        raise ValueError(f"groups need one entry per position ({positions}), got {groups.shape}")
    present = (
        torch.ones(batch, positions, dtype=torch.bool)
        if padding_mask is None
        else ~torch.as_tensor(padding_mask).bool().cpu()
    )
    one_hot = torch.nn.functional.one_hot(groups, len(GROUPS)).double()  # (N+1, G)
    to_group = maps @ one_hot  # (L, B, H, Q, G): weight each query puts on each key group
    query_weights = one_hot.T[None] * present[:, None].double()  # (B, G, Q)
    counts = query_weights.sum(-1)  # (B, G) present queries per group
    summed = torch.einsum("bgq,lbhqk->lbhgk", query_weights, to_group)
    # 0 / 0 = NaN for a sense without present queries.
    shares = (summed / counts[None, :, None, :, None]).numpy()  # (L, B, H, G, G)
    names = [str(i) for i in range(batch)] if clip_ids is None else list(clip_ids)
    if len(names) != batch:
        raise ValueError(f"{len(names)} clip ids for {batch} clips")
    table = pd.DataFrame(
        {
            "clip_id": np.repeat(np.asarray(names), layers * heads),
            "layer": np.tile(np.repeat(np.arange(layers), heads), batch),
            "head": np.tile(np.arange(heads), batch * layers),
        }
    )
    by_clip = shares.transpose(1, 0, 2, 3, 4).reshape(batch * layers * heads, -1)
    table[list(SHARE_COLUMNS)] = by_clip
    na, nv = counts[:, 1].numpy(), counts[:, 2].numpy()
    table["audio_tokens"] = np.repeat(na, layers * heads).astype(np.int64)
    table["video_tokens"] = np.repeat(nv, layers * heads).astype(np.int64)
    keys = 1 + table["audio_tokens"] + table["video_tokens"]
    table["uniform_audio"] = table["audio_tokens"] / keys
    table["uniform_video"] = table["video_tokens"] / keys
    return table


def attention_shares(
    model: nn.Module,
    audio: ArrayLike | Tensor,
    video: ArrayLike | Tensor,
    clip_ids: Sequence[str],
    *,
    batch_size: int = 16,
) -> pd.DataFrame:
    """``cross_modal_shares`` of a shared-encoder classifier on clips with both senses.

    ``audio`` (n, 1, n_mels, T) standardised spectrograms and ``video`` (n, F, 3, H, W) frames as
    the model takes them, ``clip_ids`` their n names. Batched, eval mode, no gradients; only the
    shares are kept, never the maps.
    """
    audio, video, clip_ids = as_tensor(audio), as_tensor(video), list(clip_ids)
    n = clip_count(audio, video)
    if len(clip_ids) != n:
        raise ValueError(f"{len(clip_ids)} clip ids for {n} clips")
    tables = []
    with evaluating(model) as device:
        for rows in batch_slices(n, batch_size):
            trace, spans = classifier_attention(
                model, to_device(audio, rows, device), to_device(video, rows, device)
            )
            groups = token_groups(spans, trace.attention.shape[-1] - 1)
            tables.append(
                cross_modal_shares(
                    trace.attention.cpu(), groups, trace.padding_mask.cpu(), clip_ids[rows]
                )
            )
    return pd.concat(tables, ignore_index=True)


def clip_facts(clip_ids: Sequence[str]) -> pd.DataFrame:
    """``clip_id``, ``actor``, acted ``emotion`` and ``level`` of CREMA-D clips, by name."""
    parsed = [parse_clip_id(c) for c in clip_ids]
    return pd.DataFrame(
        {
            "clip_id": list(clip_ids),
            "actor": [p.actor for p in parsed],
            "emotion": [p.emotion for p in parsed],
            "level": [p.level for p in parsed],
        }
    )


def shares_by_group(
    shares: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    by: Sequence[str] = (),
    *,
    per_head: bool = True,
) -> pd.DataFrame:
    """Mean shares per group of clips, layer (and head): each clip counts once.

    Args:
        shares: ``cross_modal_shares`` rows.
        labels: one row per clip with ``clip_id`` and the ``by`` columns (e.g. ``clip_facts``'s
            ``emotion`` and ``level``); needed only when ``by`` is not empty.
        by: label columns to group by; () for all clips together.
        per_head: keep heads apart (True) or average them too (False).

    Returns:
        ``by`` columns, ``layer`` [, ``head``], ``clips`` (count), mean ``SHARE_COLUMNS`` (NaN
        shares of clips lacking a sense are skipped) and mean ``REFERENCE_COLUMNS``.
    """
    by = list(by)
    table = shares
    if by:
        if labels is None:
            raise ValueError(f"grouping by {by} needs a labels table with clip_id and {by}")
        missing = [c for c in ["clip_id", *by] if c not in labels.columns]
        if missing:
            raise ValueError(f"labels lack the columns {missing}")
        table = shares.merge(labels.loc[:, ["clip_id", *by]], on="clip_id", how="inner")
    keys = [*by, "layer", *(["head"] if per_head else [])]
    values = [*SHARE_COLUMNS, *REFERENCE_COLUMNS]
    # Heads first, per clip, so that every clip weighs the same in each group.
    per_clip = table.groupby([*keys, "clip_id"], sort=True, observed=True)[values].mean()
    grouped = per_clip.groupby(level=keys, sort=True, observed=True)
    summary = grouped.mean()
    summary.insert(0, "clips", grouped.size())
    return summary.reset_index()
