"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

#: Pipelines that make inputs rather than results: never part of `kedro run` without --pipelines.
_NOT_IN_DEFAULT = {"demo_data"}


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines; `__default__` runs everything but the demo-data generator."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipe for name, pipe in pipelines.items() if name not in _NOT_IN_DEFAULT), Pipeline([])
    )
    return pipelines
