"""Every use of kedro-mlflow (and Kedro's dataset versioning) beyond their public API, in one place.

kedro-mlflow 2.0 has no public call to point one dataset at a run other than the active one, to
switch one dataset's logging off, or to give the dataset that ``MlflowArtifactDataset`` builds
around an inner dataset the catalog's save version. Its own hook does the first two by setting
attributes (``switch_catalog_logging``); this module does the same for one dataset at a time, and
nothing else in avshared touches those attributes. ``check_compatible`` says at once, with the fix,
when an upgrade has moved them (``tests/test_kedro_mlflow_adapter.py`` runs it in CI).
"""

from __future__ import annotations

from importlib.metadata import version as installed_version
from typing import Any

from kedro.io import AbstractVersionedDataset
from kedro.io.core import Version
from kedro_mlflow.io.artifacts import MlflowArtifactDataset
from kedro_mlflow.io.metrics import (
    MlflowMetricDataset,
    MlflowMetricHistoryDataset,
    MlflowMetricsHistoryDataset,
)

#: The kedro-mlflow datasets that log metrics into the run named by their public ``run_id``.
METRIC_DATASETS = (MlflowMetricDataset, MlflowMetricHistoryDataset, MlflowMetricsHistoryDataset)
#: The attribute kedro-mlflow's datasets read before they log (``switch_catalog_logging``).
LOGGING_SWITCH = "_logging_activated"


class IncompatibleKedroMlflowError(RuntimeError):
    """kedro-mlflow (or Kedro) no longer has what this adapter relies on."""


def incompatible(missing: str) -> IncompatibleKedroMlflowError:
    return IncompatibleKedroMlflowError(
        f"kedro-mlflow {installed_version('kedro-mlflow')} with Kedro "
        f"{installed_version('kedro')}: {missing}. avshared logs each phase into its own run "
        "through avshared.kedro_mlflow_adapter, tested with the versions in requirements.lock: "
        "`pip install -c requirements.lock -e .`, or adapt that module to the new release."
    )


def is_artifact_dataset(dataset: Any) -> bool:
    """Whether ``dataset`` was made by ``MlflowArtifactDataset`` (a class it names ``Mlflow<Inner>``
    and derives from the inner dataset's class, the test kedro-mlflow itself uses)."""
    cls = type(dataset)
    return cls.__name__ == f"Mlflow{cls.__bases__[0].__name__}" and hasattr(cls, LOGGING_SWITCH)


def logs_into_a_run(dataset: Any) -> bool:
    """Whether ``dataset`` is a kedro-mlflow dataset that logs into the run its ``run_id`` names."""
    return isinstance(dataset, METRIC_DATASETS) or is_artifact_dataset(dataset)


def bind_to_run(dataset: Any, run_id: str | None) -> None:
    """Log ``dataset`` into ``run_id``; with None, switch its logging off (it still saves)."""
    # dir(), not hasattr(): a metric dataset's run_id property raises when no run is active.
    if not hasattr(type(dataset), LOGGING_SWITCH) or "run_id" not in dir(dataset):
        raise incompatible(f"{type(dataset).__name__} has no `run_id` and `{LOGGING_SWITCH}`")
    if run_id is None:
        setattr(dataset, LOGGING_SWITCH, False)
    else:
        dataset.run_id = run_id


def artifact_dataset(dataset: str | dict[str, Any], version: Version | None, **kwargs: Any) -> Any:
    """``MlflowArtifactDataset(dataset, **kwargs)`` whose inner dataset saves under the catalog's
    ``version`` (``<filepath>/<version>/<file>``) rather than under a version it draws itself,
    which Kedro refuses (``VersionAlreadyExistsError``): kedro-mlflow passes no version through."""
    inner = {"type": dataset} if isinstance(dataset, str) else dict(dataset)
    if version is not None:
        inner["versioned"] = True
    instance = MlflowArtifactDataset(dataset=inner, **kwargs)
    if version is not None:
        if not isinstance(instance, AbstractVersionedDataset) or not hasattr(
            instance, "_clear_version_cache"
        ):
            raise incompatible(f"{type(instance).__name__} is not a Kedro versioned dataset")
        instance._version = version
        instance._clear_version_cache()
    return instance


def check_compatible() -> None:
    """Raise ``IncompatibleKedroMlflowError`` unless every hold this module takes still holds."""
    probe = artifact_dataset(
        {"type": "text.TextDataset", "filepath": "probe.txt"}, Version(None, "probe")
    )
    if not is_artifact_dataset(probe):
        raise incompatible("MlflowArtifactDataset no longer makes a Mlflow<Inner> subclass")
    if probe.resolve_save_version() != "probe":
        raise incompatible("the inner dataset ignores the catalog's save version")
    bind_to_run(probe, None)
    if getattr(probe, LOGGING_SWITCH) is not False:
        raise incompatible(f"`{LOGGING_SWITCH}` is no longer the logging switch")
    metric = MlflowMetricsHistoryDataset()
    bind_to_run(metric, "probe-run")
    if metric.run_id != "probe-run":
        raise incompatible("a metric dataset's `run_id` cannot be set")
