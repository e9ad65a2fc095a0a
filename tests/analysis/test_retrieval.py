"""Cross-modal and same-emotion retrieval: duplicates, chance, ties, intervals, paired verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from avshared.analysis.retrieval import (
    cosine_similarity,
    paired_per_clip_difference,
    recall_at,
    retrieval_ranks,
    retrieval_scores,
    same_emotion_chance,
    same_emotion_score,
    same_emotion_shares,
)


def test_a_clips_own_duplicate_is_found_first():
    embeddings = np.random.default_rng(0).normal(size=(40, 8))

    ranks = retrieval_ranks(embeddings, embeddings * 3.0)  # cosine ignores the scale
    scores = retrieval_scores(ranks, n_boot=100, seed=0)

    assert (ranks == 1).all()
    assert scores["recall@1"].value == 1.0
    assert scores["recall@5"].value == 1.0
    assert scores["median_rank"].value == 1.0
    assert (scores["median_rank"].low, scores["median_rank"].high) == (1.0, 1.0)


def test_random_embeddings_retrieve_at_chance():
    rng = np.random.default_rng(1)
    n = 400
    ranks = retrieval_ranks(rng.normal(size=(n, 16)), rng.normal(size=(n, 16)))
    scores = retrieval_scores(ranks, n_boot=200, seed=0)

    assert scores["recall@1"].chance == 1 / n
    assert scores["recall@5"].chance == 5 / n
    assert scores["median_rank"].chance == (n + 1) / 2
    assert scores["recall@5"].value < 0.05
    assert abs(scores["median_rank"].value - (n + 1) / 2) < 0.15 * n
    assert scores["median_rank"].low <= (n + 1) / 2 <= scores["median_rank"].high


def test_a_collapsed_space_ranks_at_the_middle_not_first():
    ranks = retrieval_ranks(np.ones((9, 4)), np.ones((9, 4)))

    np.testing.assert_array_equal(ranks, 5.0)


def test_cosine_similarity_of_orthogonal_and_parallel_rows():
    similarity = cosine_similarity([[1.0, 0.0], [0.0, 2.0]], [[3.0, 0.0], [1.0, 1.0]])

    np.testing.assert_allclose(similarity, [[1.0, 2**-0.5], [0.0, 2**-0.5]])


def test_same_emotion_share_and_chance():
    emotions = np.array(["ANG"] * 3 + ["SAD"] * 3)
    # Audio and video embeddings cluster by emotion: every neighbour shares the emotion.
    centres = {"ANG": np.array([1.0, 0.0]), "SAD": np.array([0.0, 1.0])}
    rng = np.random.default_rng(0)
    audio = np.stack([centres[e] for e in emotions]) + rng.normal(scale=0.01, size=(6, 2))
    video = np.stack([centres[e] for e in emotions]) + rng.normal(scale=0.01, size=(6, 2))

    shares = same_emotion_shares(audio, video, emotions, k=2)
    score = same_emotion_score(shares, emotions, n_boot=50, seed=0)

    np.testing.assert_array_equal(shares, 1.0)
    np.testing.assert_allclose(same_emotion_chance(emotions), 2 / 5)
    assert score.value == 1.0 and score.chance == pytest.approx(0.4)


def test_same_emotion_k_must_leave_room():
    with pytest.raises(ValueError, match="k must be"):
        same_emotion_shares(np.eye(3), np.eye(3), ["A", "B", "C"], k=3)


def test_paired_difference_of_two_models_on_the_same_clips():
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(60, 8))
    good = recall_at(retrieval_ranks(embeddings, embeddings), 1)
    bad = recall_at(retrieval_ranks(embeddings, rng.normal(size=(60, 8))), 1)

    verdict = paired_per_clip_difference(good, bad, n_boot=200, seed=0)

    assert verdict.difference > 0.8
    assert verdict.low > 0
    assert verdict.p_value < 0.001
    assert verdict.test == "exact McNemar"
