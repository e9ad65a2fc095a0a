"""The fixed, documented choice of test clips to draw.

Per emotion, in ``crema_d.EMOTIONS`` order: the first test clip by clip id that the model got right,
then the first it got wrong (an emotion without such a clip simply has none). The choice depends
only on the clip ids and the predictions, so the same model on the same split draws the same clips.
"""

from __future__ import annotations

import pandas as pd

from avshared.crema_d import EMOTIONS

OUTCOMES: tuple[str, ...] = ("correct", "wrong")


def drawn_clips(predictions: pd.DataFrame, per_outcome: int = 1) -> pd.DataFrame:
    """The clips to draw, from one row per test clip.

    Args:
        predictions: columns ``clip_id``, ``truth`` and ``prediction`` (emotion codes of
            ``crema_d.EMOTIONS``, or class indices into it); clips whose truth is none of them
            (``NO_LABEL`` = -1, missing) are never drawn.
        per_outcome: clips per emotion and outcome (1: one correct, one wrong).

    Returns:
        ``clip_id``, ``truth``, ``prediction``, ``outcome`` ("correct"/"wrong"), ordered by emotion,
        then outcome, then clip id; the index is reset.
    """
    missing = [c for c in ("clip_id", "truth", "prediction") if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack the columns {missing}")
    table = predictions.loc[:, ["clip_id", "truth", "prediction"]].copy()
    for column in ("truth", "prediction"):
        if pd.api.types.is_integer_dtype(table[column]):
            codes = dict(enumerate(EMOTIONS))
            table[column] = table[column].map(codes)  # NO_LABEL (-1) becomes missing
    # A clip without a single true emotion (a tied crowd vote) is right or wrong about nothing.
    table = table[table["truth"].isin(EMOTIONS)]
    table["outcome"] = pd.Categorical(
        (table["truth"] == table["prediction"]).map({True: "correct", False: "wrong"}),
        categories=OUTCOMES,
    )
    table["truth"] = pd.Categorical(table["truth"], categories=EMOTIONS)
    chosen = (
        table.sort_values(["truth", "outcome", "clip_id"])
        .groupby(["truth", "outcome"], observed=True, sort=True)
        .head(per_outcome)
    )
    chosen["truth"] = chosen["truth"].astype(str)
    chosen["outcome"] = chosen["outcome"].astype(str)
    return chosen.reset_index(drop=True)
