"""The folds of a split table: one (clip_id, actor, split) table per fold, used by training and
reporting alike (a single split is fold 0)."""

from __future__ import annotations

import pandas as pd


def fold_splits(split: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """The split of each fold (clip_id, actor, split), keyed by fold, in fold order.

    Accepts a split without a ``fold`` column (written before folds existed) as fold 0.
    """
    if "fold" not in split.columns:
        return {0: split.loc[:, ["clip_id", "actor", "split"]]}
    return {
        int(fold): rows.loc[:, ["clip_id", "actor", "split"]].reset_index(drop=True)
        for fold, rows in split.groupby("fold", sort=True)
    }
