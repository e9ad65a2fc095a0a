"""avshared.evaluation: scores against scikit-learn, bootstrap replicates and interval coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
)

from avshared.evaluation.scoring import (
    SCORE_NAMES,
    bootstrap_scores,
    classification_scores,
    confusion_matrices,
    format_estimate,
    per_class_scores,
    percentile_interval,
    scores_with_intervals,
)
from avshared.evaluation.statistics import holm_adjust, paired_difference

# A worked example: 3 classes of the 6, 10 clips.
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 5])


def _sklearn_scores(y_true, y_pred, sample_weight=None) -> dict[str, float]:
    return {
        "accuracy": accuracy_score(y_true, y_pred, sample_weight=sample_weight),
        "macro_f1": f1_score(y_true, y_pred, average="macro", sample_weight=sample_weight),
        "weighted_f1": f1_score(y_true, y_pred, average="weighted", sample_weight=sample_weight),
        "uar": balanced_accuracy_score(y_true, y_pred, sample_weight=sample_weight),
    }


def _noisy_predictions(n: int, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 6, n)
    wrong = (y_true + rng.integers(1, 6, n)) % 6
    return y_true, np.where(rng.random(n) < accuracy, y_true, wrong)


def test_scores_of_the_worked_example() -> None:
    scores = classification_scores(Y_TRUE, Y_PRED)
    assert scores["accuracy"] == pytest.approx(6 / 10)
    # Recalls 2/4, 2/3, 2/3 over the classes present in y_true.
    assert scores["uar"] == pytest.approx((2 / 4 + 2 / 3 + 2 / 3) / 3)
    # F1 = 2TP / (2TP + FP + FN): class 0: 4/7, class 1: 4/6, class 2: 4/6, class 5 (predicted
    # once, never true): 0; the macro mean runs over the four classes seen.
    assert scores["macro_f1"] == pytest.approx((4 / 7 + 4 / 6 + 4 / 6 + 0) / 4)
    assert scores == pytest.approx(_sklearn_scores(Y_TRUE, Y_PRED))


def test_weighted_scores_equal_scores_of_repeated_rows() -> None:
    weights = np.array([1, 2, 3, 1, 1, 2, 1, 4, 1, 2])
    repeated = classification_scores(np.repeat(Y_TRUE, weights), np.repeat(Y_PRED, weights))
    assert classification_scores(Y_TRUE, Y_PRED, weights) == pytest.approx(repeated)


def test_per_class_scores_match_sklearn_and_mark_undefined_scores_nan() -> None:
    table = per_class_scores(Y_TRUE, Y_PRED)
    assert list(table["emotion"]) == ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    expected_f1 = f1_score(Y_TRUE, Y_PRED, labels=[0, 1, 2], average=None)
    np.testing.assert_allclose(table["f1"].iloc[:3], expected_f1)
    assert list(table["support"]) == [4, 3, 3, 0, 0, 0]
    # HAP and NEU: never true, never predicted: nothing to score.
    assert table.loc[3:4, ["precision", "recall", "f1"]].isna().all().all()
    # SAD: predicted once wrongly, never true: precision 0, recall undefined.
    assert table.loc[5, "precision"] == 0
    assert np.isnan(table.loc[5, "recall"])


def test_confusion_matrices_counts_and_row_shares() -> None:
    counts, shares = confusion_matrices(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(counts, confusion_matrix(Y_TRUE, Y_PRED, labels=range(6)))
    np.testing.assert_allclose(shares[:3].sum(axis=1), 1)
    np.testing.assert_array_equal(shares[3:5], 0)  # absent classes: zero rows, not NaN
    assert shares[0, 0] == pytest.approx(2 / 4)


@pytest.mark.parametrize("with_weights", [False, True])
def test_bootstrap_replicates_equal_sklearn_on_the_resampled_clips(with_weights: bool) -> None:
    y_true, y_pred = _noisy_predictions(120, 0.5, seed=3)
    weights = np.random.default_rng(4).integers(1, 5, 120).astype(float) if with_weights else None
    replicates = bootstrap_scores(y_true, y_pred, n_boot=5, seed=11, sample_weight=weights)

    # Redraw the same resamples: n_boot rows of clip indices from the same seeded generator.
    draws = np.random.default_rng(11).integers(0, 120, size=(5, 120))
    for replicate, drawn in enumerate(draws):
        drawn_weights = None if weights is None else weights[drawn]
        expected = _sklearn_scores(y_true[drawn], y_pred[drawn], drawn_weights)
        assert {name: replicates[name][replicate] for name in SCORE_NAMES} == pytest.approx(
            expected
        )


def test_group_bootstrap_keeps_the_rows_of_a_group_together() -> None:
    """Each clip split into two half-weight rows and resampled by clip gives the same replicates
    as resampling the whole clips."""
    y_true, y_pred = _noisy_predictions(80, 0.6, seed=5)
    whole = bootstrap_scores(y_true, y_pred, n_boot=300, seed=2)
    halves = bootstrap_scores(
        np.repeat(y_true, 2),
        np.repeat(y_pred, 2),
        n_boot=300,
        seed=2,
        sample_weight=np.full(160, 0.5),
        groups=np.repeat(np.arange(80), 2),
    )
    for name in SCORE_NAMES:
        np.testing.assert_allclose(halves[name], whole[name])


def test_bootstrap_is_seeded() -> None:
    y_true, y_pred = _noisy_predictions(50, 0.4, seed=6)
    first = bootstrap_scores(y_true, y_pred, n_boot=450, seed=9)
    again = bootstrap_scores(y_true, y_pred, n_boot=450, seed=9)
    other = bootstrap_scores(y_true, y_pred, n_boot=450, seed=10)
    np.testing.assert_array_equal(first["macro_f1"], again["macro_f1"])
    assert not np.array_equal(first["macro_f1"], other["macro_f1"])
    assert len(first["accuracy"]) == 450


def test_percentile_interval_of_known_replicates() -> None:
    replicates = np.arange(1001) / 1000  # 0.000 .. 1.000
    assert percentile_interval(replicates, 0.95) == pytest.approx((0.025, 0.975))
    assert percentile_interval(replicates, 0.5) == pytest.approx((0.25, 0.75))
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(replicates, 95)


def test_accuracy_interval_covers_the_true_accuracy_about_95_percent_of_the_time() -> None:
    """Correctness ~ Bernoulli(p): the 95% interval must cover p in about 95% of seeded trials."""
    p, trials, covered = 0.55, 200, 0
    for trial in range(trials):
        y_true, y_pred = _noisy_predictions(200, p, seed=1000 + trial)
        estimates = scores_with_intervals(y_true, y_pred, n_boot=400, seed=trial)
        covered += estimates["accuracy"].low <= p <= estimates["accuracy"].high
    assert 0.90 <= covered / trials <= 0.99


def test_intervals_contain_the_point_estimate_and_narrow_with_more_clips() -> None:
    widths = []
    for n in (100, 1600):
        y_true, y_pred = _noisy_predictions(n, 0.5, seed=n)
        estimates = scores_with_intervals(y_true, y_pred, n_boot=500, seed=0)
        for estimate in estimates.values():
            assert estimate.low <= estimate.value <= estimate.high
        widths.append(estimates["macro_f1"].high - estimates["macro_f1"].low)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(16) = 1/4 of the width


def test_format_estimate() -> None:
    assert format_estimate(0.5123, 0.4711, 0.5529) == "0.512 [0.471, 0.553]"
    assert format_estimate(0.5, np.nan, np.nan) == "0.500"
    assert format_estimate(np.nan, np.nan, np.nan) == "—"


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="equal length"):
        classification_scores([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        bootstrap_scores([], [], n_boot=10, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        bootstrap_scores([0, -1], [0, 1], n_boot=10, seed=0)


# ---------------------------------------------------------------- paired comparisons


def test_identical_predictions_give_p_one_and_an_interval_around_zero() -> None:
    correct = (np.random.default_rng(0).random(150) < 0.6).astype(float)
    result = paired_difference(correct, correct, n_boot=500, seed=1)
    assert result.test == "exact McNemar"
    assert result.p_value == 1.0
    assert result.low <= 0.0 <= result.high
    assert result.difference == 0.0


def test_always_right_against_always_wrong_is_detected() -> None:
    result = paired_difference(np.ones(200), np.zeros(200), n_boot=500, seed=1)
    assert result.p_value < 1e-6
    assert result.difference == 1.0 and result.low == result.high == 1.0
    reverse = paired_difference(np.zeros(200), np.ones(200), n_boot=500, seed=1)
    assert reverse.difference == -1.0 and reverse.p_value == result.p_value


def test_mcnemar_counts_only_the_discordant_clips() -> None:
    # 30 clips only A gets right, 10 only B; 60 concordant clips do not matter.
    a = np.r_[np.ones(30), np.zeros(10), np.ones(40), np.zeros(20)]
    b = np.r_[np.zeros(30), np.ones(10), np.ones(40), np.zeros(20)]
    result = paired_difference(a, b, n_boot=200, seed=0)
    assert result.p_value == pytest.approx(binomtest(30, 40, 0.5).pvalue)
    assert result.difference == pytest.approx(0.2)


def test_paired_interval_uses_the_resamples_of_the_scores() -> None:
    """Against an always-wrong system the difference is A's accuracy on every resample, so the
    interval equals A's bootstrap accuracy interval for the same groups and seed."""
    y_true, y_pred = _noisy_predictions(300, 0.55, seed=4)
    actors = np.repeat(np.arange(30), 10)
    correct = (y_true == y_pred).astype(float)
    paired = paired_difference(correct, np.zeros(300), groups=actors, n_boot=400, seed=9)
    replicates = bootstrap_scores(y_true, y_pred, n_boot=400, seed=9, groups=actors)
    assert (paired.low, paired.high) == pytest.approx(percentile_interval(replicates["accuracy"]))
    assert paired.test == "sign-flip permutation" and paired.units == 30


def test_grouped_permutation_test_on_known_cases() -> None:
    actors = np.repeat(np.arange(10), 20)
    same = paired_difference(np.ones(200), np.ones(200), groups=actors, n_boot=100, seed=0)
    assert same.p_value == 1.0
    apart = paired_difference(np.ones(200), np.zeros(200), groups=actors, n_boot=100, seed=0)
    # 10 actors: only the 2 of 2^10 sign patterns with all signs equal are as extreme.
    assert apart.p_value == pytest.approx(2 / 1024, abs=0.002)


def test_fractional_correctness_of_human_raters_uses_the_permutation_test() -> None:
    humans = np.full(100, 0.5)
    model = np.r_[np.ones(50), np.zeros(50)]
    result = paired_difference(model, humans, n_boot=200, seed=0)
    assert result.test == "sign-flip permutation"
    assert result.difference == 0.0 and result.p_value == 1.0


def test_holm_adjustment_of_a_worked_example() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max.
    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([0.2]) == pytest.approx([0.2])
