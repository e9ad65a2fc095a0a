"""Voice/face vote disagreement against cross-modal similarity."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from avshared.analysis.disagreement import (
    pair_similarity,
    similarity_disagreement_correlation,
    voice_face_disagreement,
    vote_shares,
)
from avshared.crema_d import EMOTIONS


def _crowd_labels(votes: dict[tuple[str, str], list[int]]) -> pd.DataFrame:
    rows = []
    for (clip_id, modality), counts in votes.items():
        row = {"clip_id": clip_id, "modality": modality}
        row.update({f"count_{e}": c for e, c in zip(EMOTIONS, counts, strict=True)})
        row["num_responses"] = sum(counts)
        rows.append(row)
    return pd.DataFrame(rows)


def test_total_variation_between_voice_and_face_votes():
    labels = _crowd_labels(
        {
            ("a", "voice"): [10, 0, 0, 0, 0, 0],
            ("a", "face"): [5, 0, 0, 0, 5, 0],
            ("a", "audiovisual"): [9, 0, 0, 0, 1, 0],
            ("b", "voice"): [0, 4, 0, 0, 0, 0],
            ("b", "face"): [0, 0, 0, 0, 0, 7],
            ("c", "voice"): [3, 3, 0, 0, 0, 0],  # no face rating: left out
        }
    )

    disagreement = voice_face_disagreement(labels)

    assert disagreement.to_dict() == {"a": 0.5, "b": 1.0}
    np.testing.assert_allclose(vote_shares(labels, "face").sum(axis=1), 1.0)


def test_a_known_monotone_relation_is_recovered():
    rng = np.random.default_rng(0)
    n = 200
    similarity = rng.uniform(-1, 1, size=n)
    ids = [f"clip{i}" for i in range(n)]
    exact = pd.Series(np.exp(-3 * similarity) / 30, index=ids)  # decreasing: rho = -1
    noisy = pd.Series(0.5 - 0.2 * similarity + rng.normal(scale=0.1, size=n), index=ids)

    perfect = similarity_disagreement_correlation(similarity, ids, exact, n_boot=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = similarity_disagreement_correlation(similarity, ids, noisy, n_boot=200)

    assert perfect.rho == pytest.approx(-1.0)
    assert (perfect.low, perfect.high) == pytest.approx((-1.0, -1.0))
    assert -0.95 < found.rho < -0.5
    assert found.low < found.rho < found.high < 0
    assert found.p_value < 1e-6
    assert found.clips == n


def test_clips_without_votes_are_left_out():
    ids = ["a", "b", "c", "d", "e"]
    disagreement = pd.Series([0.1, 0.2, 0.3, 0.4], index=["a", "b", "c", "z"])

    result = similarity_disagreement_correlation(
        [0.9, 0.5, 0.1, 0.0, 0.3], ids, disagreement, n_boot=20
    )

    assert result.clips == 3
    assert result.rho == pytest.approx(-1.0)


def test_pair_similarity_is_the_rowwise_cosine():
    np.testing.assert_allclose(
        pair_similarity([[1.0, 0.0], [1.0, 1.0]], [[2.0, 0.0], [-1.0, -1.0]]), [1.0, -1.0]
    )
