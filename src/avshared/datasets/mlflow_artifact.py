"""kedro-mlflow's ``MlflowArtifactDataset`` that keeps Kedro's versioned local copy.

``MlflowArtifactDataset`` (kedro-mlflow 2.0.3) logs the file its inner dataset saves to the active
MLflow run. Its inner dataset cannot be ``versioned: true`` in Kedro 1.7: the inner dataset draws
a save version of its own, which the catalog refuses (``VersionAlreadyExistsError``: every dataset
of a catalog must share the run's save version). Here the catalog entry itself says
``versioned: true``; Kedro then hands the run's ``Version`` to this class, which gives it to the
inner dataset, so the report is written to ``<filepath>/<version>/<file>`` AND logged to the run,
with nothing else changed.
"""

from __future__ import annotations

from typing import Any

from kedro.io.core import Version
from kedro_mlflow.io.artifacts import MlflowArtifactDataset

from avshared.kedro_mlflow_adapter import artifact_dataset


class VersionedMlflowArtifactDataset(MlflowArtifactDataset):
    """``MlflowArtifactDataset`` whose inner dataset is versioned with the catalog's version.

    Catalog entry::

        comparison_table:
          type: avshared.datasets.mlflow_artifact.VersionedMlflowArtifactDataset
          versioned: true
          artifact_path: reporting
          dataset: {type: pandas.CSVDataset, filepath: data/08_reporting/comparison_table.csv}
    """

    def __new__(
        cls,
        dataset: str | dict[str, Any],
        *,
        run_id: str | None = None,
        artifact_path: str | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        version: Version | None = None,
    ):
        return artifact_dataset(
            dataset,
            version,
            run_id=run_id,
            artifact_path=artifact_path,
            credentials=credentials,
            metadata=metadata,
        )
