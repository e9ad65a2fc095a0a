"""Fixtures of the demo_data tests: the project's own parameters, shrunk to a few clips."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PARAMETERS_FILE = PROJECT_ROOT / "conf" / "base" / "parameters_demo_data.yml"


@pytest.fixture(scope="session")
def project_demo_params() -> dict:
    """`demo_data` as conf/base/parameters_demo_data.yml defines it."""
    return yaml.safe_load(PARAMETERS_FILE.read_text())["demo_data"]


@pytest.fixture
def demo_params(project_demo_params) -> dict:
    """The project's parameters for a corpus of 24 clips holding three of the real faults.

    Actors 1064 and 1076 say TIE and MTI, so the corpus has 1076_MTI_SAD_XX (silent_stub),
    1076_MTI_NEU_XX (short_video) and 1064_TIE_SAD_XX (no_duration_video), but not 1064_IEO_DIS_MD.
    """
    params = copy.deepcopy(project_demo_params)
    params["actors"] = [1064, 1076]
    params["sentences"] = ["TIE", "MTI"]
    params["faults"] = {
        "1076_MTI_SAD_XX": "silent_stub",
        "1076_MTI_NEU_XX": "short_video",
        "1064_TIE_SAD_XX": "no_duration_video",
    }
    return params
