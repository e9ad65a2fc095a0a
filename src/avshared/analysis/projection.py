"""The shared space in two dimensions: one t-SNE map of every clip's three embeddings together.

The audio-only, video-only and audio-visual embeddings of the n clips go into ONE t-SNE (cosine
distance, as retrieval uses), so the three senses of a model share its coordinates: an aligned
space puts a clip's voice and face near each other, and clips of one emotion together. Maps of two
models are two separate t-SNE runs (their coordinates are not comparable, their neighbourhoods
are). scikit-learn's t-SNE, seeded; UMAP (umap-learn) is not a dependency of the project.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE

from avshared.analysis.representations import ClipEmbeddings

#: The embeddings drawn, in drawing order.
SENSES: tuple[str, ...] = ("audio", "video", "audiovisual")


def embedding_map(
    embeddings: ClipEmbeddings,
    clip_ids: Sequence[str],
    emotions: Sequence[str],
    *,
    seed: int = 0,
    perplexity: float = 30.0,
    max_iter: int = 500,
) -> pd.DataFrame:
    """2-D t-SNE coordinates of each clip's embeddings, one row per clip and sense.

    Returns ``clip_id``, ``emotion``, ``sense`` ("audio", "video", "audiovisual"), ``x``, ``y``;
    rows grouped by sense in ``SENSES`` order, clips in input order. The perplexity is lowered to
    what the number of points allows (scikit-learn needs it below the number of points).
    ``max_iter`` (at least 250): optimisation steps; 500 takes about half the time of
    scikit-learn's default 1000.
    """
    n = len(clip_ids)
    if len(emotions) != n or any(getattr(embeddings, s).shape[0] != n for s in SENSES):
        raise ValueError("clip_ids, emotions and the embeddings must hold the same clips")
    points = np.concatenate([getattr(embeddings, s) for s in SENSES]).astype(np.float64)
    tsne = TSNE(
        n_components=2,
        perplexity=min(perplexity, max(1.0, (len(points) - 1) / 3)),
        metric="cosine",
        init="pca",
        random_state=seed,
        max_iter=max_iter,
    )
    coordinates = tsne.fit_transform(points)
    return pd.DataFrame(
        {
            "clip_id": np.tile(np.asarray(clip_ids), len(SENSES)),
            "emotion": np.tile(np.asarray(emotions), len(SENSES)),
            "sense": np.repeat(SENSES, n),
            "x": coordinates[:, 0],
            "y": coordinates[:, 1],
        }
    )
