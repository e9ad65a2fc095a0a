"""The alignment table of a model, and the paired verdict of two models on the same clips.

What a node writes beside the comparison table: for one model's ``ClipEmbeddings`` of the test
clips, cross-modal retrieval (audio queries, video gallery), same-emotion retrieval and linear CKA
between the audio-only and video-only representations per layer, each with its interval and chance
level; for two models (shared vs separate), each metric's difference on the same clips with the
same resamples, its interval and p-value, Holm-adjusted over the table's rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from avshared.analysis._bootstrap import bootstrap, two_sided_p_value
from avshared.analysis.cka import cka_by_layer, linear_cka, paired_cka_difference
from avshared.analysis.representations import ClipEmbeddings
from avshared.analysis.retrieval import (
    recall_at,
    retrieval_ranks,
    retrieval_scores,
    same_emotion_score,
    same_emotion_shares,
)
from avshared.evaluation.scoring import percentile_interval
from avshared.evaluation.statistics import holm_adjust, paired_difference

ALIGNMENT_COLUMNS: tuple[str, ...] = (
    "metric",
    "layer",
    "value",
    "low",
    "high",
    "chance",
    "clips",
)
COMPARISON_COLUMNS: tuple[str, ...] = (
    "metric",
    "layer",
    "value_a",
    "value_b",
    "difference",
    "low",
    "high",
    "p_value",
    "p_holm",
    "test",
    "clips",
)


def alignment_table(
    embeddings: ClipEmbeddings,
    emotions: Sequence[str],
    *,
    k: int = 5,
    n_boot: int = 1000,
    cka_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One model's alignment of the senses on n clips, one row per metric (and layer).

    Rows: ``recall@1``, ``recall@5``, ``median_rank`` (audio query, own video among all n),
    ``same_emotion@k`` (share of the k nearest other videos of the query's emotion), and
    ``cka`` per layer (0-based ``layer``, the rest have none) of the audio-only and video-only
    per-layer representations, then ``cka_pooled`` of the pooled outputs. Columns
    ``ALIGNMENT_COLUMNS``; ``chance`` is NaN for CKA (no chance level: see ``cka``).
    """
    n = len(emotions)
    ranks = retrieval_ranks(embeddings.audio, embeddings.video)
    rows = []
    scores = retrieval_scores(ranks, n_boot=n_boot, seed=seed, confidence=confidence)
    scores[f"same_emotion@{k}"] = same_emotion_score(
        same_emotion_shares(embeddings.audio, embeddings.video, emotions, k),
        emotions,
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
    )
    for metric, estimate in scores.items():
        rows.append(
            {"metric": metric, "layer": pd.NA, "value": estimate.value, "low": estimate.low}
            | {"high": estimate.high, "chance": estimate.chance, "clips": n}
        )
    by_layer = cka_by_layer(
        embeddings.audio_layers,
        embeddings.video_layers,
        n_boot=cka_boot,
        seed=seed,
        confidence=confidence,
    )
    pooled = cka_by_layer(
        embeddings.audio[None],
        embeddings.video[None],
        n_boot=cka_boot,
        seed=seed,
        confidence=confidence,
    ).assign(layer=pd.NA, metric="cka_pooled")
    for table in (by_layer.assign(metric="cka"), pooled):
        for row in table.itertuples(index=False):
            rows.append(
                {"metric": row.metric, "layer": row.layer, "value": row.cka, "low": row.low}
                | {"high": row.high, "chance": np.nan, "clips": n}
            )
    table = pd.DataFrame(rows, columns=list(ALIGNMENT_COLUMNS))
    table["layer"] = table["layer"].astype("Int64")
    return table


def alignment_comparison(
    a: ClipEmbeddings,
    b: ClipEmbeddings,
    emotions: Sequence[str],
    *,
    k: int = 5,
    n_boot: int = 1000,
    cka_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Model A minus model B (e.g. shared minus separate) on the same n clips, per metric.

    Recall@1, recall@5 and same-emotion@k are per-clip scores compared with
    ``statistics.paired_difference`` (exact McNemar for the 0/1 recalls, a sign-flip
    permutation test for the shares); the median rank and CKA (per layer and pooled) by a paired
    bootstrap of the difference on the same resamples (p-value: twice the share of replicates on
    the far side of zero). ``p_holm`` adjusts the p-values over all rows. Columns
    ``COMPARISON_COLUMNS``; a negative median-rank difference means A ranks the own clip higher.
    """
    n = len(emotions)
    ranks_a = retrieval_ranks(a.audio, a.video)
    ranks_b = retrieval_ranks(b.audio, b.video)
    per_clip = {
        "recall@1": (recall_at(ranks_a, 1), recall_at(ranks_b, 1)),
        "recall@5": (recall_at(ranks_a, 5), recall_at(ranks_b, 5)),
        f"same_emotion@{k}": (
            same_emotion_shares(a.audio, a.video, emotions, k),
            same_emotion_shares(b.audio, b.video, emotions, k),
        ),
    }
    rows = []
    for metric, (score_a, score_b) in per_clip.items():
        verdict = paired_difference(
            score_a, score_b, n_boot=n_boot, seed=seed, confidence=confidence
        )
        rows.append(
            _row(metric, pd.NA, score_a.mean(), score_b.mean(), verdict.difference)
            | {"low": verdict.low, "high": verdict.high, "p_value": verdict.p_value}
            | {"test": verdict.test, "clips": n}
        )
    rows.append(_median_rank_row(ranks_a, ranks_b, n_boot, seed, confidence))
    pairs = [
        (
            layer,
            a.audio_layers[layer],
            a.video_layers[layer],
            b.audio_layers[layer],
            b.video_layers[layer],
        )
        for layer in range(a.audio_layers.shape[0])
    ]
    pairs.append((pd.NA, a.audio, a.video, b.audio, b.video))
    for layer, xa, ya, xb, yb in pairs:
        verdict = paired_cka_difference(
            xa, ya, xb, yb, n_boot=cka_boot, seed=seed, confidence=confidence
        )
        metric = "cka" if layer is not pd.NA else "cka_pooled"
        rows.append(
            _row(metric, layer, linear_cka(xa, ya), linear_cka(xb, yb), verdict.difference)
            | {"low": verdict.low, "high": verdict.high, "p_value": verdict.p_value}
            | {"test": "paired bootstrap", "clips": n}
        )
    table = pd.DataFrame(rows)
    table["p_holm"] = holm_adjust(table["p_value"].to_numpy())
    table["layer"] = table["layer"].astype("Int64")
    return table.loc[:, list(COMPARISON_COLUMNS)]


def _row(metric: str, layer: object, value_a: float, value_b: float, difference: float) -> dict:
    return {
        "metric": metric,
        "layer": layer,
        "value_a": float(value_a),
        "value_b": float(value_b),
        "difference": float(difference),
    }


def _median_rank_row(
    ranks_a: np.ndarray, ranks_b: np.ndarray, n_boot: int, seed: int, confidence: float
) -> dict:
    def difference(i: np.ndarray) -> float:
        return float(np.median(ranks_a[i]) - np.median(ranks_b[i]))

    replicates = bootstrap(difference, len(ranks_a), n_boot=n_boot, seed=seed)
    low, high = percentile_interval(replicates, confidence)
    value = difference(np.arange(len(ranks_a)))
    return _row("median_rank", pd.NA, np.median(ranks_a), np.median(ranks_b), value) | {
        "low": low,
        "high": high,
        "p_value": two_sided_p_value(replicates),
        "test": "paired bootstrap",
        "clips": len(ranks_a),
    }
