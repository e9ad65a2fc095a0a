"""Cross-modal retrieval: from a clip's audio embedding, find its own video among all clips'.

Queries are the n audio embeddings, the gallery the same n clips' video embeddings (row i of each is
clip i); similarity is cosine. A query's rank is the 1-based position of its own clip's video, ties
counted at their middle (so a collapsed space, where every clip looks alike, ranks at chance rather
than first). Recall@k is the share of queries ranked within k; chance is k / n for recall@k and
(n + 1) / 2 for the median rank. Intervals resample the query clips (the gallery stays all n).

Same-emotion retrieval asks less: the share of an audio query's k nearest videos (its own clip's
left out) that carry the query's emotion; chance is, per query of emotion e, (n_e - 1) / (n - 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from avshared.analysis._bootstrap import Interval, with_interval
from avshared.evaluation.statistics import PairedDifference, paired_difference


def cosine_similarity(query: ArrayLike, gallery: ArrayLike) -> np.ndarray:
    """(n, m) cosine similarities of query rows (n, D) and gallery rows (m, D)."""
    q, g = np.asarray(query, dtype=np.float64), np.asarray(gallery, dtype=np.float64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"need (n, D) and (m, D) embeddings, got {q.shape} and {g.shape}")
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return q @ g.T


def retrieval_ranks(query: ArrayLike, gallery: ArrayLike) -> np.ndarray:
    """(n,) rank (1 = first) of gallery row i for query row i, ties at their middle."""
    similarity = cosine_similarity(query, gallery)
    n = similarity.shape[0]
    if similarity.shape != (n, n):
        raise ValueError(f"query and gallery must hold the same n clips, got {similarity.shape}")
    own = np.diag(similarity)[:, None]
    above = (similarity > own).sum(axis=1)
    tied_others = (similarity == own).sum(axis=1) - 1
    return 1.0 + above + tied_others / 2.0


def recall_at(ranks: ArrayLike, k: int) -> np.ndarray:
    """(n,) 1.0 where the own clip ranks within k, else 0.0."""
    return (np.asarray(ranks) <= k).astype(float)


def retrieval_scores(
    ranks: ArrayLike,
    *,
    ks: Sequence[int] = (1, 5),
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """``recall@k`` for each k and ``median_rank``, each with its interval and chance level."""
    ranks = np.asarray(ranks, dtype=float)
    n = len(ranks)
    scores = {}
    for k in ks:
        hits = recall_at(ranks, k)
        scores[f"recall@{k}"] = with_interval(
            lambda i, hits=hits: float(hits[i].mean()),
            n,
            n_boot=n_boot,
            seed=seed,
            confidence=confidence,
            chance=min(k, n) / n,
        )
    scores["median_rank"] = with_interval(
        lambda i: float(np.median(ranks[i])),
        n,
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
        chance=(n + 1) / 2,
    )
    return scores


def same_emotion_shares(
    query: ArrayLike, gallery: ArrayLike, emotions: Sequence[str] | np.ndarray, k: int = 5
) -> np.ndarray:
    """(n,) share of each query's k nearest gallery rows, its own clip left out, of its emotion."""
    similarity = cosine_similarity(query, gallery)
    n = similarity.shape[0]
    emotions = np.asarray(emotions)
    if similarity.shape != (n, n) or emotions.shape != (n,):
        raise ValueError(f"need n queries, n gallery rows and n emotions; got {similarity.shape}")
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1}, got {k}")
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return (emotions[nearest] == emotions[:, None]).mean(axis=1)


def same_emotion_chance(emotions: Sequence[str] | np.ndarray) -> np.ndarray:
    """(n,) each query's chance share: (n_e - 1) / (n - 1) for a query of emotion e."""
    emotions = np.asarray(emotions)
    _, codes, counts = np.unique(emotions, return_inverse=True, return_counts=True)
    return (counts[codes] - 1) / (len(emotions) - 1)


def same_emotion_score(
    shares: ArrayLike,
    emotions: Sequence[str] | np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """The mean same-emotion share with its interval and its chance level from label frequencies."""
    shares = np.asarray(shares, dtype=float)
    return with_interval(
        lambda i: float(shares[i].mean()),
        len(shares),
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
        chance=float(same_emotion_chance(emotions).mean()),
    )


def paired_per_clip_difference(
    per_clip_a: ArrayLike, per_clip_b: ArrayLike, *, n_boot: int = 1000, seed: int = 0
) -> PairedDifference:
    """Model A minus model B on the same clips, for a per-clip score in [0, 1] (``recall_at``,
    ``same_emotion_shares``): ``statistics.paired_difference`` (exact McNemar for 0/1
    hits, else a sign-flip permutation test)."""
    return paired_difference(per_clip_a, per_clip_b, n_boot=n_boot, seed=seed)
