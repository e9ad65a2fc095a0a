"""The split pipeline with the project's parameters, saved through the project's catalog entry."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from avshared.pipelines.split import create_pipeline
from avshared.settings import CONFIG_LOADER_ARGS

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_split_pipeline_saves_a_versioned_actor_split(tmp_path):
    config = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)
    entries = {
        name: {**config["catalog"][name], "filepath": str(tmp_path / f"{name}.out")}
        for name in ("split", "split_unmatched_clips")
    }
    entries["split"]["filepath"] = str(tmp_path / "split.parquet")
    catalog = DataCatalog.from_config(entries)
    actors = [1001 + number for number in range(20) for _ in range(6)]
    catalog["clip_manifest"] = pd.DataFrame(
        {
            "clip_id": [
                f"{actor}_DFA_{emotion}_XX"
                for actor in range(1001, 1021)
                for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
            ],
            "actor": actors,
            "emotion": ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"] * 20,
            "sex": ["Male" if actor % 2 else "Female" for actor in actors],
        }
    )
    catalog["params:split"] = config["parameters"]["split"]

    SequentialRunner().run(create_pipeline(), catalog)

    assert len(list((tmp_path / "split.parquet").iterdir())) == 1  # one version directory
    split = catalog.load("split")
    assert list(split.columns) == ["fold", "clip_id", "actor", "split"]
    assert set(split["fold"]) == {0}
    assert split["actor"].dtype == "int64"
    assert len(split) == 120
    sides = split.groupby("actor")["split"].nunique()
    assert (sides == 1).all()
    assert set(split["split"]) == {"train", "val", "test"}
