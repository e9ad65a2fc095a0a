"""The analysis's bootstrap p-value: never 0 from a finite number of resamples."""

from __future__ import annotations

import math

import numpy as np

from avshared.analysis._bootstrap import two_sided_p_value


def test_every_replicate_on_one_side_gives_the_smallest_p_the_resamples_allow():
    replicates = np.linspace(0.1, 1.0, 999)

    assert two_sided_p_value(replicates) == 2 / 1000
    assert two_sided_p_value(-replicates) == 2 / 1000


def test_replicates_around_zero_give_p_one():
    assert two_sided_p_value(np.array([-2.0, -1.0, 0.0, 1.0, 2.0])) == 1.0


def test_a_quarter_on_the_far_side_gives_about_half():
    replicates = np.r_[-np.ones(250), np.ones(749)]

    assert two_sided_p_value(replicates) == 2 * 251 / 1000


def test_non_finite_replicates_are_left_out_and_none_gives_nan():
    assert two_sided_p_value(np.array([np.nan, 1.0, 2.0, np.inf])) == 2 * 1 / 3
    assert math.isnan(two_sided_p_value(np.array([np.nan, np.nan])))
