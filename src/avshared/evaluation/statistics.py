"""Paired tests between systems scored on the same clips, and Holm's adjustment for many pairs.

Pure functions on arrays (no Kedro, no plotting): the exact McNemar test for 0/1 correctness per
clip, a sign-flip permutation test on per-group (e.g. per-actor) differences otherwise, and the
percentile bootstrap interval of the difference with the resamples of ``scoring.bootstrap_scores``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import binomtest, permutation_test

from avshared.evaluation.scoring import (
    percentile_interval,
    resample_counts,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of system A minus that of B on the same clips, with its interval and p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    test: str  # exact McNemar | exact sign-flip | sign-flip permutation
    clips: int
    units: int  # resampled units: clips, or actors
    #: The smallest p-value the test could give on these units: with few actors an exact sign-flip
    #: test cannot go below 2 / 2**actors, whatever the difference.
    p_min: float = 0.0


def paired_difference(
    correct_a: ArrayLike,
    correct_b: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    n_boot: int,
    seed: int,
    confidence: float = 0.95,
    n_permutations: int = 10_000,
) -> PairedDifference:
    """Compare two systems scored on the same clips: accuracy A minus accuracy B.

    ``correct_a`` and ``correct_b`` give, per clip (in the same clip order), how right each system
    is: 1 or 0 for a model, the share of correct responses for human raters. The interval is the
    percentile bootstrap of the difference, resampling whole ``groups`` (clips when None, else e.g.
    actors) with the same resamples as ``bootstrap_scores`` for the same groups and seed.

    The p-value (two-sided, H0: equal accuracy) is the exact McNemar test (binomial test of the
    discordant clips) when both are 0/1 and each clip is its own group; otherwise a sign-flip
    permutation test on the per-group summed differences (each group's A and B swapped with
    probability 1/2): every one of the 2**groups sign patterns when there are at most
    ``n_permutations`` of them (``scipy.stats.permutation_test``, ``permutation_type="samples"``:
    exact, as with a few actors), else ``n_permutations`` seeded draws with the observed one
    counted. ``p_min`` is the smallest p-value the test could give on these units.
    """
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two equal, non-empty 1-D arrays, got {a.shape} and {b.shape}")
    if groups is None:
        codes, n_groups = np.arange(len(a)), len(a)
    else:
        codes, uniques = pd.factorize(np.asarray(groups))
        n_groups = len(uniques)
    per_group = np.bincount(codes, weights=a - b, minlength=n_groups)
    clips_per_group = np.bincount(codes, minlength=n_groups).astype(float)
    replicates = np.concatenate(
        [
            (times @ per_group) / (times @ clips_per_group)
            for times in resample_counts(n_groups, n_boot, seed)
        ]
    )
    low, high = percentile_interval(replicates, confidence)
    binary = np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()
    if binary and groups is None:
        a_only, b_only = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
        discordant = a_only + b_only
        p_value = 1.0 if discordant == 0 else binomtest(a_only, discordant, 0.5).pvalue
        test = "exact McNemar"
        p_min = 0.5 ** (discordant - 1) if discordant else 1.0
    elif 2**n_groups <= n_permutations:
        p_value, p_min = exact_sign_flip_test(per_group)
        test = "exact sign-flip"
    else:
        p_value = _sign_flip_p_value(per_group, n_permutations, seed)
        p_min = 1 / (1 + n_permutations)
        test = "sign-flip permutation"
    return PairedDifference(
        difference=float((a - b).mean()),
        low=low,
        high=high,
        p_value=float(min(p_value, 1.0)),
        test=test,
        clips=len(a),
        units=n_groups,
        p_min=float(min(p_min, 1.0)),
    )


def exact_sign_flip_test(per_group: np.ndarray) -> tuple[float, float]:
    """Two-sided p-value of a zero mean difference over every sign pattern of the groups' sums
    (``scipy.stats.permutation_test`` with ``permutation_type="samples"`` enumerates all 2**n of
    them when asked for at least as many resamples), and the smallest p-value any data on these
    groups could give: 2 / 2**n when no group's sum is zero."""
    per_group = np.asarray(per_group, dtype=float)
    if not per_group.any():
        return 1.0, 1.0
    result = permutation_test(
        (per_group,),
        lambda d, axis: np.sum(d, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=np.inf,
        alternative="two-sided",
    )
    null = np.abs(result.null_distribution)
    p_min = float(np.mean(null >= null.max() * (1 - 1e-12)))
    return float(result.pvalue), p_min


def _sign_flip_p_value(per_group: np.ndarray, n_permutations: int, seed: int) -> float:
    """Two-sided p-value of a zero mean difference by random sign flips of the groups' sums."""
    observed = abs(per_group.sum())
    if observed == 0:
        return 1.0
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(n_permutations, len(per_group)))
    as_extreme = int((np.abs(signs @ per_group) >= observed - 1e-12).sum())
    return (1 + as_extreme) / (1 + n_permutations)


def holm_adjust(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted
