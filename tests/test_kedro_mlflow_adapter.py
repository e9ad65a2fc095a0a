"""The one module that reaches past kedro-mlflow's public API: it holds on the installed release,
and says what to do when it no longer does."""

from __future__ import annotations

import pytest
from kedro.io import MemoryDataset
from kedro.io.core import Version
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

from avshared import kedro_mlflow_adapter as adapter


def test_the_installed_kedro_mlflow_still_offers_what_the_adapter_uses():
    # The CI guard of an upgrade: on a kedro-mlflow that moved these, this fails with the fix.
    adapter.check_compatible()


def test_an_artifact_dataset_saves_under_the_catalogs_version(tmp_path):
    dataset = adapter.artifact_dataset(
        {"type": "text.TextDataset", "filepath": str(tmp_path / "report.md")},
        Version(None, "2026-12-03T18.00.00.000Z"),
    )
    adapter.bind_to_run(dataset, None)  # no run: saves locally only
    dataset.save("# report")
    assert (tmp_path / "report.md" / "2026-12-03T18.00.00.000Z" / "report.md").read_text() == (
        "# report"
    )


def test_kedro_mlflow_datasets_are_told_apart_from_others():
    artifact = adapter.artifact_dataset({"type": "text.TextDataset", "filepath": "x.md"}, None)
    assert adapter.logs_into_a_run(artifact)
    assert adapter.logs_into_a_run(MlflowMetricsHistoryDataset())
    assert not adapter.logs_into_a_run(MemoryDataset())


class _MovedLoggingSwitch:
    """A dataset of a kedro-mlflow whose datasets no longer carry the logging switch."""

    run_id = None


def test_an_incompatible_kedro_mlflow_fails_with_what_to_do():
    with pytest.raises(adapter.IncompatibleKedroMlflowError) as raised:
        adapter.bind_to_run(_MovedLoggingSwitch(), None)
    message = str(raised.value)
    assert "kedro-mlflow 2." in message and "_logging_activated" in message
    assert "requirements.lock" in message
