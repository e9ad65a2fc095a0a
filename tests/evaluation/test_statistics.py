"""The paired tests (avshared.evaluation.statistics) at their edges: few actors, where a sign-flip
test can only be exact and its smallest p-value must be stated."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from avshared.evaluation.statistics import exact_sign_flip_test, paired_difference


def _by_enumeration(per_group: np.ndarray) -> float:
    observed = abs(per_group.sum())
    sums = [
        abs(np.dot(signs, per_group)) for signs in itertools.product((-1, 1), repeat=len(per_group))
    ]
    return float(np.mean(np.array(sums) >= observed - 1e-12))


@pytest.mark.parametrize(
    "per_group",
    [[3.0, 2.0, 5.0], [3.0, -2.0, 5.0, 1.0, 0.5], [1.0, 1.0, 1.0, 1.0], [4.0, -4.0, 0.0, 2.0]],
)
def test_the_exact_sign_flip_test_enumerates_every_sign_pattern(per_group):
    per_group = np.array(per_group)
    p_value, _ = exact_sign_flip_test(per_group)
    assert p_value == pytest.approx(_by_enumeration(per_group))


def test_with_three_actors_the_smallest_p_is_a_quarter_and_stated():
    # Three test actors (the default demo split): A right on every clip, B wrong on every clip.
    actors = np.repeat(["a1", "a2", "a3"], 10)
    result = paired_difference(
        np.ones(30), np.zeros(30), groups=actors, n_boot=200, seed=0, n_permutations=10_000
    )
    assert result.test == "exact sign-flip"
    assert result.units == 3
    # 2 of the 2**3 sign patterns are as extreme as the observed one: p cannot go lower.
    assert result.p_value == pytest.approx(0.25)
    assert result.p_min == pytest.approx(0.25)


def test_many_actors_fall_back_to_seeded_draws_whose_floor_is_stated():
    rng = np.random.default_rng(1)
    actors = np.repeat([f"a{i}" for i in range(20)], 5)  # 2**20 patterns > 10,000 draws
    a, b = rng.integers(0, 2, 100), rng.integers(0, 2, 100)
    result = paired_difference(a, b, groups=actors, n_boot=200, seed=0, n_permutations=10_000)
    assert result.test == "sign-flip permutation"
    assert result.p_min == pytest.approx(1 / 10_001)
    again = paired_difference(a, b, groups=actors, n_boot=200, seed=0, n_permutations=10_000)
    assert again.p_value == result.p_value


def test_mcnemar_states_its_smallest_p_too():
    a = np.array([1, 1, 1, 1, 0, 0])
    b = np.array([0, 0, 0, 0, 0, 0])
    result = paired_difference(a, b, n_boot=200, seed=0)
    assert result.test == "exact McNemar"
    assert result.p_value == pytest.approx(0.125)  # 4 discordant clips, all for A
    assert result.p_min == pytest.approx(0.125)


def test_no_difference_gives_p_one():
    assert exact_sign_flip_test(np.zeros(4)) == (1.0, 1.0)
