"""Linear CKA: identity, invariances, independence, per layer, paired difference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from avshared.analysis._bootstrap import resample_indices
from avshared.analysis.cka import cka_by_layer, cka_replicates, linear_cka, paired_cka_difference


def _x(n=100, p=10, seed=0):
    return np.random.default_rng(seed).normal(size=(n, p))


def test_cka_of_a_representation_with_itself_is_one():
    assert linear_cka(_x(), _x()) == pytest.approx(1.0)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    x = _x()
    y = _x(seed=1) + 0.5 * x
    rotation = ortho_group.rvs(10, random_state=3)

    expected = linear_cka(x, y)

    assert linear_cka(x @ rotation, y) == pytest.approx(expected)
    assert linear_cka(x, 7.5 * y) == pytest.approx(expected)
    assert linear_cka(x @ rotation * 0.1 + 4.0, y) == pytest.approx(expected)  # and shifts
    assert linear_cka(x, x @ rotation * 3.0) == pytest.approx(1.0)


def test_cka_of_independent_random_matrices_is_small():
    assert linear_cka(_x(n=2000, seed=4), _x(n=2000, seed=5)) < 0.02


def test_cka_of_a_constant_representation_is_nan():
    assert np.isnan(linear_cka(np.ones((5, 3)), _x(n=5)))


def test_cka_by_layer_with_intervals():
    x = _x(n=80)
    layers_x = np.stack([x, x])
    layers_y = np.stack([x @ ortho_group.rvs(10, random_state=0), _x(n=80, seed=9)])

    table = cka_by_layer(layers_x, layers_y, n_boot=50, seed=0)

    assert table["layer"].tolist() == [0, 1]
    assert table.loc[0, "cka"] == pytest.approx(1.0)
    assert table.loc[0, "low"] == pytest.approx(1.0)
    assert table.loc[1, "cka"] < 0.5
    assert (table["low"] <= table["cka"] + 1e-12).all() and (
        table["cka"] <= table["high"] + 1e-12
    ).all()


def test_paired_cka_difference_on_the_same_clips():
    x = _x(n=80)
    verdict = paired_cka_difference(x, x + 0.01 * _x(n=80, seed=1), x, _x(n=80, seed=2), n_boot=100)

    assert verdict.difference > 0.5
    assert verdict.low > 0
    assert verdict.p_value < 0.05
    assert verdict.clips == 80


def test_replicates_are_the_cka_of_the_resampled_clips():
    x, y = _x(n=30, p=5), _x(n=30, p=7, seed=1) + 0.3 * _x(n=30, p=7)

    replicates = cka_replicates(x, y, n_boot=20, seed=4)

    expected = [linear_cka(x[i], y[i]) for i in resample_indices(30, 20, seed=4)]
    np.testing.assert_allclose(replicates, expected, rtol=1e-10)
