"""Classification metrics for emotion recognition, with bootstrap confidence intervals.

Pure functions on arrays (no Kedro, no MLflow), shared by the reporting pipeline and the training
phases. Classes are integer indices into ``crema_d.EMOTIONS``. Every function accepts optional
``sample_weight``: a model's predictions have weight 1 per clip, while crowd ratings are evaluated
as one weighted row per (clip, voted emotion) with the vote count as weight, so human raters and
models are scored by the same code.

Point estimates come from scikit-learn. Bootstrap replicates are computed from per-replicate
confusion counts in a few matrix products instead of one scikit-learn call per replicate (1,000
replicates in milliseconds rather than seconds); the formulas are those of scikit-learn with its
default label set (the classes present in ``y_true`` or ``y_pred``), and the tests check the
replicates against scikit-learn.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from avshared.crema_d import EMOTIONS

#: The headline scores, in table order. UAR (unweighted average recall) is balanced accuracy.
SCORE_NAMES: tuple[str, ...] = ("accuracy", "macro_f1", "weighted_f1", "uar")

#: Bootstrap replicates drawn per block: bounds memory at about this many x n_rows floats.
_REPLICATES_PER_BLOCK = 200


@dataclass(frozen=True)
class Estimate:
    """A score and its bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return format_estimate(self.value, self.low, self.high)


def format_estimate(value: float, low: float, high: float, digits: int = 3) -> str:
    """``0.512 [0.471, 0.553]``; an em dash for a missing score."""
    if not np.isfinite(value):
        return "—"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def classification_scores(
    y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None
) -> dict[str, float]:
    """Accuracy, macro-F1, weighted F1 and UAR (balanced accuracy) with scikit-learn."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    with warnings.catch_warnings():
        # Balanced accuracy averages the recalls of the classes in y_true, as documented; a
        # predicted class absent from y_true (NEU predicted on a level without NEU) is expected.
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true", UserWarning)
        uar = float(balanced_accuracy_score(y_true, y_pred, sample_weight=sample_weight))
    f1 = {
        average: float(
            f1_score(y_true, y_pred, average=average, sample_weight=sample_weight, zero_division=0)
        )
        for average in ("macro", "weighted")
    }
    return {
        "accuracy": float(accuracy_score(y_true, y_pred, sample_weight=sample_weight)),
        "macro_f1": f1["macro"],
        "weighted_f1": f1["weighted"],
        "uar": uar,
    }


def per_class_scores(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    sample_weight: ArrayLike | None = None,
    class_names: tuple[str, ...] = EMOTIONS,
) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (rows in ``class_names`` order).

    A score that is undefined on these clips (e.g. the recall of NEU at level HI, where no clip is
    NEU) is NaN rather than 0, so it is not mistaken for a failure.
    """
    y_true, y_pred = _as_labels(y_true, y_pred)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true,
        y_pred,
        labels=np.arange(len(class_names)),
        sample_weight=sample_weight,
        zero_division=np.nan,
    )
    weights = np.ones(len(y_true)) if sample_weight is None else np.asarray(sample_weight, float)
    support = np.bincount(y_true, weights=weights, minlength=len(class_names))
    return pd.DataFrame(
        {
            "emotion": list(class_names),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
        }
    )


def confusion_matrices(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    sample_weight: ArrayLike | None = None,
    n_classes: int = len(EMOTIONS),
) -> tuple[np.ndarray, np.ndarray]:
    """The confusion matrix (rows: true class, columns: predicted), as counts and row shares.

    Rows of classes absent from ``y_true`` are all zero in both matrices (all of them without
    predictions, e.g. on a global rank that does not evaluate).
    """
    y_true, y_pred = _as_labels(y_true, y_pred)
    if len(y_true) == 0:
        return np.zeros((n_classes, n_classes)), np.zeros((n_classes, n_classes))
    labels = np.arange(n_classes)
    counts = confusion_matrix(y_true, y_pred, labels=labels, sample_weight=sample_weight)
    shares = confusion_matrix(
        y_true, y_pred, labels=labels, sample_weight=sample_weight, normalize="true"
    )
    return counts, np.nan_to_num(shares)


def bootstrap_scores(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    n_boot: int,
    seed: int,
    sample_weight: ArrayLike | None = None,
    groups: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """Every score of ``SCORE_NAMES`` on ``n_boot`` bootstrap resamples, as arrays of length n_boot.

    Resampling draws whole groups with replacement (``groups``: e.g. the clip id, so that the
    several vote rows of one clip stay together, or the actor for a speaker-level interval); without
    ``groups`` each row is its own group. Seeded: the same inputs and seed give the same replicates.
    """
    y_true, y_pred = _as_labels(y_true, y_pred)
    if len(y_true) == 0:
        raise ValueError("cannot bootstrap scores of an empty prediction set")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    weights = np.ones(len(y_true)) if sample_weight is None else np.asarray(sample_weight, float)
    if groups is None:
        group_codes, n_groups = np.arange(len(y_true)), len(y_true)
    else:
        group_codes, uniques = pd.factorize(np.asarray(groups))
        n_groups = len(uniques)

    n_classes = int(max(y_true.max(), y_pred.max())) + 1
    is_true = np.eye(n_classes)[y_true]  # (rows, classes) one-hot
    is_pred = np.eye(n_classes)[y_pred]
    is_hit = is_true * (y_true == y_pred)[:, None]

    blocks = []
    for times_drawn in resample_counts(n_groups, n_boot, seed):
        row_weights = times_drawn[:, group_codes] * weights
        blocks.append(
            _scores_from_counts(row_weights @ is_true, row_weights @ is_pred, row_weights @ is_hit)
        )
    return {name: np.concatenate([block[name] for block in blocks]) for name in SCORE_NAMES}


def resample_counts(n_groups: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of (replicates, n_groups) counts: how often each group is drawn in each resample.

    The one source of bootstrap resamples: the same groups, count and seed give the same
    resamples to every score and every paired difference.
    """
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _REPLICATES_PER_BLOCK):
        size = min(_REPLICATES_PER_BLOCK, n_boot - start)
        draws = rng.integers(0, n_groups, size=(size, n_groups))
        offsets = np.arange(size)[:, None] * n_groups
        times_drawn = np.bincount((draws + offsets).ravel(), minlength=size * n_groups)
        yield times_drawn.reshape(size, n_groups)


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile-method interval of bootstrap replicates (NaN replicates ignored)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def scores_with_intervals(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    n_boot: int,
    seed: int,
    confidence: float = 0.95,
    sample_weight: ArrayLike | None = None,
    groups: ArrayLike | None = None,
) -> dict[str, Estimate]:
    """Each score of ``SCORE_NAMES`` with its percentile bootstrap interval."""
    point = classification_scores(y_true, y_pred, sample_weight)
    replicates = bootstrap_scores(
        y_true, y_pred, n_boot=n_boot, seed=seed, sample_weight=sample_weight, groups=groups
    )
    return {
        name: Estimate(point[name], *percentile_interval(replicates[name], confidence))
        for name in SCORE_NAMES
    }


def _scores_from_counts(
    true_counts: np.ndarray, pred_counts: np.ndarray, hit_counts: np.ndarray
) -> dict[str, np.ndarray]:
    """Scores from per-replicate class counts (replicates, classes), as scikit-learn defines them.

    Like scikit-learn with ``labels=None``, macro averages run over the classes present in y_true or
    y_pred of each replicate, and balanced accuracy over the classes present in y_true.
    """
    total = true_counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * hit_counts / (true_counts + pred_counts))
        recall = hit_counts / true_counts
    seen = (true_counts + pred_counts) > 0
    supported = true_counts > 0
    return {
        "accuracy": hit_counts.sum(axis=1) / total,
        "macro_f1": (f1 * seen).sum(axis=1) / seen.sum(axis=1),
        "weighted_f1": (f1 * true_counts).sum(axis=1) / total,
        "uar": np.nansum(recall * supported, axis=1) / supported.sum(axis=1),
    }


def _as_labels(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D and of equal length, got {y_true.shape} and "
            f"{y_pred.shape}"
        )
    if len(y_true) and min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("class labels must be non-negative indices into crema_d.EMOTIONS")
    return y_true, y_pred
