"""Datasets for inputs that may or may not exist: a file a CREMA-D root may lack, the output of a
pipeline that may never have run."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset
from kedro_datasets_experimental.pytorch import PyTorchDataset


class OptionalCSVDataset(CSVDataset):
    """A ``pandas.CSVDataset`` that loads as ``None`` when its file is absent.

    For inputs such as finishedResponses.csv, which the full CREMA-D repository has but its light
    copies leave out: the node that reads it decides what to do without it. Saving is unchanged.
    """

    def load(self) -> pd.DataFrame | None:  # type: ignore[override]
        if not self._exists():
            return None
        return super().load()


class OptionalJSONDataset(JSONDataset):
    """A ``json.JSONDataset`` that loads as ``None`` when no (version of its) file exists: the
    summary of a pipeline that may not have run (``pretrain_summary``). Saving is unchanged."""

    def load(self) -> Any:
        if not self._exists():
            return None
        return super().load()


class OptionalPyTorchDataset(PyTorchDataset):
    """A ``PyTorchDataset`` (a module's ``state_dict``, saved with ``torch.save``) that loads as
    ``None`` when no (version of its) file exists, and otherwise memory-mapped
    (``torch.load(..., mmap=True, weights_only=True)``): every training phase takes the pretrained
    encoders as an input whether it uses them or not (``init``), and a mapped file costs nothing
    until a tensor is read. Local files only (a memory map needs a path). Saving is unchanged."""

    def load(self) -> dict[str, torch.Tensor] | None:  # type: ignore[override]
        if not self._exists():
            return None
        path = get_filepath_str(self._get_load_path(), self._protocol)
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
