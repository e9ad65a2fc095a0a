"""Datasets for input files that a CREMA-D root may or may not hold."""

from __future__ import annotations

import pandas as pd
from kedro_datasets.pandas import CSVDataset


class OptionalCSVDataset(CSVDataset):
    """A ``pandas.CSVDataset`` that loads as ``None`` when its file is absent.

    For inputs such as finishedResponses.csv, which the full CREMA-D repository has but its light
    copies leave out: the node that reads it decides what to do without it. Saving is unchanged.
    """

    def load(self) -> pd.DataFrame | None:  # type: ignore[override]
        if not self._exists():
            return None
        return super().load()
