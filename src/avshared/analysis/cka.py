"""Linear CKA (Kornblith et al., 2019): how alike two representations of the same clips are.

For column-centred X (n, p) and Y (n, q), ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``: 1
for representations equal up to an orthogonal transform and an isotropic scaling, near 0 for
unrelated ones (its bias on few clips is positive: independent random matrices give about
p / n). Here X is the audio-only and Y the video-only representation of the same test clips, per
layer: how much the two senses' representations share their geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from avshared.analysis._bootstrap import two_sided_p_value
from avshared.evaluation.scoring import percentile_interval, resample_counts


def linear_cka(x: ArrayLike, y: ArrayLike) -> float:
    """Linear CKA of two representations (n, p) and (n, q) of the same n clips (row i = clip i).

    NaN when either is constant over the clips (no variance to compare).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"need (n, p) and (n, q) with the same n; got {x.shape} and {y.shape}")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    norms = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norms) if norms > 0 else float("nan")


def cka_replicates(x: ArrayLike, y: ArrayLike, *, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot,) linear CKA of x and y on bootstrap resamples of their n clips.

    The resamples are the project's (``scoring.resample_counts``: the same n, count
    and seed draw the same clips as every other interval); each replicate equals ``linear_cka`` of
    the resampled rows, computed from the clips' Gram matrices weighted by how often each clip was
    drawn (O(n^2) per replicate instead of O(n p^2)).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"need (n, p) and (n, q) with the same n; got {x.shape} and {y.shape}")
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    gram_x, gram_y = x @ x.T, y @ y.T
    replicates = [
        _weighted_cka(gram_x, gram_y, times_drawn)
        for block in resample_counts(x.shape[0], n_boot, seed)
        for times_drawn in block
    ]
    return np.array(replicates, dtype=float)


def _weighted_cka(gram_x: np.ndarray, gram_y: np.ndarray, times_drawn: np.ndarray) -> float:
    """Linear CKA of the rows drawn ``times_drawn`` times each, from the rows' Gram matrices."""
    drawn = np.flatnonzero(times_drawn)
    w = times_drawn[drawn].astype(np.float64)
    pair_weights = np.outer(w, w)

    def centred(gram: np.ndarray) -> np.ndarray:
        gram = gram[np.ix_(drawn, drawn)]
        means = gram @ w / w.sum()  # x_i . mean of the resample
        return gram - means[:, None] - means[None, :] + (w @ means) / w.sum()

    kx, ky = centred(gram_x), centred(gram_y)
    norms = np.sqrt((pair_weights * kx * kx).sum() * (pair_weights * ky * ky).sum())
    return float((pair_weights * kx * ky).sum() / norms) if norms > 0 else float("nan")


def cka_by_layer(
    x_layers: ArrayLike,
    y_layers: ArrayLike,
    *,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """CKA per layer of (layers, n, p) and (layers, n, q) with percentile intervals over clips.

    Returns one row per layer: ``layer`` (0-based), ``cka``, ``low``, ``high``. Every layer is
    resampled with the same clips (the same seed). Resampling with replacement inflates CKA (a clip
    drawn twice agrees with itself in both representations), so the percentile interval is shifted
    by the bootstrap's bias (mean replicate minus the value).
    """
    x_layers, y_layers = np.asarray(x_layers), np.asarray(y_layers)
    if x_layers.ndim != 3 or x_layers.shape[:2] != y_layers.shape[:2]:
        raise ValueError(
            f"need (layers, n, p) and (layers, n, q) alike; got {x_layers.shape}, {y_layers.shape}"
        )
    rows = []
    for layer, (x, y) in enumerate(zip(x_layers, y_layers, strict=True)):
        value = linear_cka(x, y)
        replicates = cka_replicates(x, y, n_boot=n_boot, seed=seed)
        bias = float(np.nanmean(replicates)) - value
        low, high = percentile_interval(replicates - bias, confidence)
        rows.append({"layer": layer, "cka": value, "low": low, "high": high})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PairedCKA:
    """CKA of model A minus that of model B on the same clips, with its bootstrap interval.

    ``p_value``: two-sided bootstrap p-value of no difference (twice the share of replicates on the
    far side of zero, at most 1).
    """

    difference: float
    low: float
    high: float
    p_value: float
    clips: int


def paired_cka_difference(
    x_a: ArrayLike,
    y_a: ArrayLike,
    x_b: ArrayLike,
    y_b: ArrayLike,
    *,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedCKA:
    """CKA(x_a, y_a) - CKA(x_b, y_b), both on the same resampled clips in every replicate; the
    replicates are shifted by their bias, as in ``cka_by_layer``."""
    x_a, y_a, x_b, y_b = (np.asarray(m, dtype=np.float64) for m in (x_a, y_a, x_b, y_b))
    n = x_a.shape[0]
    if not all(m.shape[0] == n for m in (y_a, x_b, y_b)):
        raise ValueError("the four representations must hold the same clips")

    value = linear_cka(x_a, y_a) - linear_cka(x_b, y_b)
    replicates = cka_replicates(x_a, y_a, n_boot=n_boot, seed=seed) - cka_replicates(
        x_b, y_b, n_boot=n_boot, seed=seed
    )  # the same seed: the same clips in both
    replicates = replicates - (np.nanmean(replicates) - value)  # bias-corrected, as cka_by_layer
    low, high = percentile_interval(replicates, confidence)
    return PairedCKA(
        difference=value,
        low=low,
        high=high,
        p_value=two_sided_p_value(replicates),
        clips=n,
    )
