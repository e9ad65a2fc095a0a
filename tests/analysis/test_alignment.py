"""The alignment table of one model and the paired comparison of two."""

from __future__ import annotations

import numpy as np
import pytest

from avshared.analysis.alignment import (
    ALIGNMENT_COLUMNS,
    COMPARISON_COLUMNS,
    alignment_comparison,
    alignment_table,
)
from avshared.analysis.representations import ClipEmbeddings

N, LAYERS = 60, 2
EMOTIONS = np.array(["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"] * (N // 6))


def _embeddings(aligned: bool, seed: int) -> ClipEmbeddings:
    rng = np.random.default_rng(seed)
    audio = rng.normal(size=(N, 8))
    video = audio + 0.05 * rng.normal(size=(N, 8)) if aligned else rng.normal(size=(N, 8))
    layers_a = np.stack([audio] * LAYERS)
    layers_v = np.stack([video] * LAYERS)
    return ClipEmbeddings(audio, video, (audio + video) / 2, layers_a, layers_v)


def test_an_aligned_models_table():
    table = alignment_table(_embeddings(True, 0), EMOTIONS, n_boot=100, cka_boot=50)

    assert tuple(table.columns) == ALIGNMENT_COLUMNS
    assert table["metric"].tolist() == [
        "recall@1",
        "recall@5",
        "median_rank",
        "same_emotion@5",
        "cka",
        "cka",
        "cka_pooled",
    ]
    by_metric = table.drop_duplicates("metric").set_index("metric")
    assert by_metric.loc["recall@1", "value"] == 1.0
    assert by_metric.loc["recall@1", "chance"] == pytest.approx(1 / N)
    assert by_metric.loc["median_rank", "value"] == 1.0
    assert by_metric.loc["same_emotion@5", "chance"] == pytest.approx(9 / 59)
    assert table.loc[table["metric"] == "cka", "layer"].tolist() == [0, 1]
    assert (table.loc[table["metric"].str.startswith("cka"), "value"] > 0.95).all()
    assert (table["clips"] == N).all()


def test_shared_against_separate_on_the_same_clips():
    aligned, unaligned = _embeddings(True, 0), _embeddings(False, 1)

    verdict = alignment_comparison(aligned, unaligned, EMOTIONS, n_boot=200, cka_boot=50)
    same = alignment_comparison(aligned, aligned, EMOTIONS, n_boot=50, cka_boot=20)

    assert tuple(verdict.columns) == COMPARISON_COLUMNS
    rows = verdict.drop_duplicates("metric").set_index("metric")
    assert rows.loc["recall@1", "difference"] > 0.9
    assert rows.loc["recall@1", "test"] == "exact McNemar"
    assert rows.loc["recall@1", "p_holm"] < 0.001
    assert rows.loc["median_rank", "difference"] < -10
    assert rows.loc["cka_pooled", "low"] > 0
    assert (verdict["p_holm"] >= verdict["p_value"]).all()
    np.testing.assert_allclose(same["difference"], 0.0, atol=1e-12)
    assert (same["p_value"] == 1.0).all()
