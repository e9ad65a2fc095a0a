"""Datasets of inputs that may not exist: None when absent, the saved data otherwise."""

from __future__ import annotations

from pathlib import Path

import torch
from kedro.io import Version
from torch import nn

from avshared.datasets.optional import OptionalJSONDataset, OptionalPyTorchDataset


def test_the_pretrained_encoder_loads_as_none_until_a_version_is_saved(tmp_path):
    filepath = str(tmp_path / "pretrained_encoder.pt")
    assert OptionalPyTorchDataset(filepath=filepath, version=Version(None, None)).load() is None
    module = nn.Linear(3, 2)
    OptionalPyTorchDataset(
        filepath=filepath, version=Version(None, "2026-01-01T00.00.00.000Z")
    ).save(module)

    loaded = OptionalPyTorchDataset(filepath=filepath, version=Version(None, None)).load()

    assert set(loaded) == {"weight", "bias"}
    assert torch.equal(loaded["weight"], module.weight)
    # Memory-mapped, not read into memory: the file is among the process's mappings.
    (saved,) = (tmp_path / "pretrained_encoder.pt").glob("*/pretrained_encoder.pt")
    assert str(saved) in Path("/proc/self/maps").read_text()


def test_the_pretrain_summary_loads_as_none_until_a_version_is_saved(tmp_path):
    filepath = str(tmp_path / "pretrain_summary.json")
    assert OptionalJSONDataset(filepath=filepath, version=Version(None, None)).load() is None
    OptionalJSONDataset(filepath=filepath, version=Version(None, "v1")).save({"folds": 1})

    assert OptionalJSONDataset(filepath=filepath, version=Version(None, None)).load() == {
        "folds": 1
    }
