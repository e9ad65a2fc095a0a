"""Do clips whose voice and face raters disagree have less alike audio and video embeddings?

CREMA-D's raters judged each clip from the voice alone, the face alone and both (the labels
pipeline's ``crowd_labels``: one row per clip and rating ``modality``, "voice", "face",
"audiovisual", with the vote counts ``count_ANG..count_SAD`` and ``num_responses``). A clip's
voice/face disagreement is the total-variation distance between its voice and face vote
distributions, ``0.5 * sum_e |p_voice(e) - p_face(e)|``: 0 when the two groups of raters split their
votes alike, 1 when they never name the same emotion. The measurement is Spearman's rho, over the
test clips, between that disagreement and the cosine similarity of the clip's audio-only and
video-only embeddings; an aligned space predicts a negative rho.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import ConstantInputWarning, spearmanr

from avshared.analysis._bootstrap import bootstrap
from avshared.crema_d import EMOTIONS
from avshared.evaluation.scoring import percentile_interval

COUNT_COLUMNS: tuple[str, ...] = tuple(f"count_{e}" for e in EMOTIONS)


def vote_shares(crowd_labels: pd.DataFrame, modality: str) -> pd.DataFrame:
    """(clips, 6) vote shares of one rating modality, indexed by ``clip_id``, in EMOTIONS order."""
    missing = [c for c in ("clip_id", "modality", *COUNT_COLUMNS) if c not in crowd_labels.columns]
    if missing:
        raise ValueError(f"crowd_labels lacks the columns {missing}")
    rows = crowd_labels[crowd_labels["modality"] == modality]
    if rows["clip_id"].duplicated().any():
        raise ValueError(f"crowd_labels holds several {modality} rows for one clip")
    counts = rows.set_index("clip_id").loc[:, list(COUNT_COLUMNS)].astype(float)
    counts.columns = list(EMOTIONS)
    return counts.div(counts.sum(axis=1), axis=0)


def voice_face_disagreement(crowd_labels: pd.DataFrame) -> pd.Series:
    """Total-variation distance between each clip's voice and face vote shares (clips rated both
    ways), a Series named ``disagreement`` indexed by ``clip_id``."""
    voice, face = vote_shares(crowd_labels, "voice"), vote_shares(crowd_labels, "face")
    both = voice.index.intersection(face.index, sort=False)
    distance = 0.5 * (voice.loc[both] - face.loc[both]).abs().sum(axis=1)
    return distance.rename("disagreement")


def pair_similarity(audio: ArrayLike, video: ArrayLike) -> np.ndarray:
    """(n,) cosine similarity of each clip's audio embedding with its own video embedding."""
    a, v = np.asarray(audio, dtype=np.float64), np.asarray(video, dtype=np.float64)
    if a.shape != v.shape or a.ndim != 2:
        raise ValueError(f"need two (n, D) embeddings of the same clips, got {a.shape}, {v.shape}")
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(v, axis=1), 1e-12)
    return (a * v).sum(axis=1) / norms


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho over ``clips`` clips, its percentile bootstrap interval and p-value."""

    rho: float
    low: float
    high: float
    p_value: float
    clips: int


def similarity_disagreement_correlation(
    similarity: ArrayLike,
    clip_ids: Sequence[str],
    disagreement: pd.Series,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Correlation:
    """Spearman's rho between the clips' cross-modal similarity and their voice/face disagreement.

    Args:
        similarity: (n,) per clip, e.g. ``pair_similarity`` of the audio-only and video-only
            embeddings.
        clip_ids: the n clips' ids, in the same order.
        disagreement: ``voice_face_disagreement`` (indexed by clip id); clips it lacks are left out.
        n_boot, seed, confidence: the bootstrap over clips (the project's resamples).

    The p-value is scipy's (two-sided, no ties correction beyond average ranks).
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.shape != (len(clip_ids),):
        raise ValueError(f"{len(similarity)} similarities for {len(clip_ids)} clips")
    joined = pd.DataFrame({"similarity": similarity}, index=pd.Index(list(clip_ids))).join(
        disagreement.rename("disagreement"), how="inner"
    )
    if len(joined) < 3:
        raise ValueError(f"only {len(joined)} clips have both a similarity and crowd votes")
    x, y = joined["similarity"].to_numpy(), joined["disagreement"].to_numpy()

    def rho(i: np.ndarray) -> float:
        # A resample of few clips may be constant: its rho is NaN, and the interval skips it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConstantInputWarning)
            return float(spearmanr(x[i], y[i]).statistic)

    result = spearmanr(x, y)
    replicates = bootstrap(rho, len(x), n_boot=n_boot, seed=seed)
    low, high = percentile_interval(replicates, confidence)
    return Correlation(
        rho=float(result.statistic),
        low=low,
        high=high,
        p_value=float(result.pvalue),
        clips=len(x),
    )
