"""The 2-D map of the embeddings: one point per clip and sense, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from avshared.analysis.projection import SENSES, embedding_map
from avshared.analysis.representations import ClipEmbeddings


def _embeddings(n: int, seed: int = 0) -> ClipEmbeddings:
    rng = np.random.default_rng(seed)
    pooled = {s: rng.normal(size=(n, 8)).astype(np.float32) for s in SENSES}
    layers = rng.normal(size=(2, n, 8))
    return ClipEmbeddings(**pooled, audio_layers=layers, video_layers=layers)


def test_one_point_per_clip_and_sense_reproducibly():
    ids = [f"c{i}" for i in range(12)]
    emotions = ["ANG", "SAD", "HAP"] * 4

    first = embedding_map(_embeddings(12), ids, emotions, seed=3, max_iter=250)
    again = embedding_map(_embeddings(12), ids, emotions, seed=3, max_iter=250)

    assert len(first) == 3 * 12
    assert first.groupby("sense").size().to_dict() == dict.fromkeys(SENSES, 12)
    assert first.loc[first["sense"] == "video", "clip_id"].tolist() == ids
    assert np.isfinite(first[["x", "y"]].to_numpy()).all()
    np.testing.assert_allclose(first[["x", "y"]], again[["x", "y"]])


def test_mismatched_clips_are_refused():
    with pytest.raises(ValueError, match="same clips"):
        embedding_map(_embeddings(5), ["a", "b"], ["ANG", "SAD"])
