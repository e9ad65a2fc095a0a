"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Kedro's telemetry plugin must never prompt or reach the network from tests.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The real CREMA-D text data (no media), present beside the checkout on the project's machines.
REAL_METADATA = PROJECT_ROOT.parent / "shared" / "crema-d"


@pytest.fixture(scope="session")
def real_crema_d_metadata() -> Path:
    """The real CREMA-D ratings and metadata files; skips where they are absent."""
    if not (REAL_METADATA / "processedResults" / "tabulatedVotes.csv").is_file():
        pytest.skip(
            f"real CREMA-D metadata not found at {REAL_METADATA}: place the dataset's CSV files "
            "(SentenceFilenames.csv, VideoDemographics.csv, processedResults/) there to run this test"
        )
    return REAL_METADATA
