"""Project settings: how conf/local and --params combine with conf/base."""

from __future__ import annotations

import shutil
from pathlib import Path

from kedro.config import OmegaConfigLoader

from avshared.settings import CONFIG_LOADER_ARGS

PROJECT_CONF = Path(__file__).resolve().parents[1] / "conf" / "base"


def test_local_and_runtime_parameters_change_single_keys(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_CONF, conf / "base")
    (conf / "local").mkdir()
    (conf / "local" / "parameters_split.yml").write_text(
        "split:\n  file:\n    test_list: /data/ogm-ge/test.csv\n"
    )
    runtime = {"training": {"defaults": {"trainer": {"max_epochs": 3}}}}

    parameters = OmegaConfigLoader(str(conf), runtime_params=runtime, **CONFIG_LOADER_ARGS)[
        "parameters"
    ]

    assert parameters["split"]["file"]["test_list"] == "/data/ogm-ge/test.csv"
    assert parameters["split"]["strategy"] == "actor"  # the rest of base's block stays
    trainer = parameters["training"]["defaults"]["trainer"]
    assert trainer["max_epochs"] == 3
    assert trainer["early_stopping"]["patience"] == 4
