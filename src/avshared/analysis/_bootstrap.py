"""Bootstrap replicates of any statistic over clips, from the project's one source of resamples.

``scoring.resample_counts`` draws the resamples of every score in the project; the
same number of clips, replicates and seed give the same resamples here, so an interval of the
analysis and one of the comparison table resample the same clips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from avshared.evaluation.scoring import format_estimate, percentile_interval, resample_counts


def resample_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """``n_boot`` arrays of n row indices drawn with replacement (sorted), seeded."""
    if n < 1:
        raise ValueError("cannot bootstrap an empty set of clips")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rows = np.arange(n)
    for block in resample_counts(n, n_boot, seed):
        for times_drawn in block:
            yield np.repeat(rows, times_drawn)


def bootstrap(
    statistic: Callable[[np.ndarray], float], n: int, *, n_boot: int, seed: int
) -> np.ndarray:
    """(n_boot,) replicates of ``statistic(indices)`` over resamples of n clips."""
    return np.array([statistic(i) for i in resample_indices(n, n_boot, seed)], dtype=float)


def two_sided_p_value(replicates: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is 0": twice the share of the finite
    replicates on the far side of 0, counting the observed difference as one of them (+1 over
    n + 1), so that a finite number of resamples never claims p = 0; NaN without replicates."""
    finite = replicates[np.isfinite(replicates)]
    if not len(finite):
        return float("nan")
    far_side = min((finite <= 0).sum(), (finite >= 0).sum())
    return float(min(1.0, 2 * (far_side + 1) / (len(finite) + 1)))


@dataclass(frozen=True)
class Interval:
    """A statistic, its percentile bootstrap interval, and what chance would give (NaN: none)."""

    value: float
    low: float
    high: float
    chance: float = float("nan")

    def __str__(self) -> str:
        return format_estimate(self.value, self.low, self.high)


def with_interval(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    n_boot: int,
    seed: int,
    confidence: float = 0.95,
    chance: float = float("nan"),
) -> Interval:
    """``statistic`` on all n clips with its percentile interval over ``n_boot`` resamples."""
    value = float(statistic(np.arange(n)))
    replicates = bootstrap(statistic, n, n_boot=n_boot, seed=seed)
    low, high = percentile_interval(replicates, confidence)
    return Interval(value, low, high, chance)
