"""One MLflow child run per training phase, and only global rank 0 writes when a cluster launched
``kedro run`` once per process.

``PhaseRunsHook`` creates the child runs of the parent run kedro-mlflow opens for each
``kedro run``: one per namespace (phase) whose ``<phase>.mlflow_run`` the pipeline reads or whose
kedro-mlflow datasets it writes, named after it. It puts ``{"run_id", "tracking_uri"}`` in the
catalog as ``<phase>.mlflow_run`` (None when tracking is off, or in a process other than global
rank 0); runs per cell (fold x seed) and curriculum stage are nested in it by the training
code (``avshared.training.tracking.nested_run``). Training logs into the phase's run
through Lightning's MLFlowLogger, and the phase's kedro-mlflow datasets (``<phase>.test_scores``,
``<phase>.confusion_matrix``: any dataset of the namespace with a ``run_id``) log into it because
the hook sets their ``run_id``; without a run their logging is switched off, as kedro-mlflow does
for its own datasets. The hook closes the runs when the pipeline ends (FINISHED) or fails
(FAILED).

Under torchrun or SLURM every process runs the same ``kedro run``; on global rank > 0 the hook turns
kedro-mlflow off and keeps every output of the run in memory, so only rank 0 saves datasets and
logs, while all ranks train together.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from mlflow.entities import RunStatus
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from avshared.kedro_mlflow_adapter import bind_to_run, logs_into_a_run
from avshared.ranks import global_rank

logger = logging.getLogger(__name__)

#: The suffix of the catalog entries the hook provides: ``<phase>.mlflow_run``.
RUN_SUFFIX = ".mlflow_run"


class PhaseRunsHook:
    """Creates and closes the per-phase child runs; see the module's docstring."""

    def __init__(self) -> None:
        self._runs: dict[str, str] = {}

    @hook_impl(trylast=True)  # after kedro-mlflow's hook set itself up
    def after_context_created(self, context: Any) -> None:
        if global_rank() > 0 and hasattr(context, "mlflow"):
            from kedro.framework.project import pipelines

            context.mlflow.tracking.disable_tracking.pipelines = list(pipelines)

    @hook_impl(trylast=True)  # after kedro-mlflow opened the parent run
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        rank = global_rank()
        if rank > 0:
            for name in pipeline.all_outputs():
                catalog[name] = MemoryDataset()
            logger.info("Global rank %d: outputs stay in memory; rank 0 saves and logs", rank)
        parent = mlflow.active_run() if rank == 0 else None
        tracked = _tracked_outputs(pipeline, catalog)
        phases = {n.removesuffix(RUN_SUFFIX) for n in pipeline.inputs() if n.endswith(RUN_SUFFIX)}
        phases |= {name.split(".", 1)[0] for name in tracked if "." in name}
        for phase in sorted(phases):
            run = self._start(phase, parent) if parent else None
            if phase + RUN_SUFFIX in pipeline.inputs():
                catalog[phase + RUN_SUFFIX] = run
            for name in (n for n in tracked if n.startswith(phase + ".")):
                bind_to_run(tracked[name], run["run_id"] if run else None)

    def _start(self, phase: str, parent: mlflow.ActiveRun) -> dict[str, str]:
        tags = {MLFLOW_PARENT_RUN_ID: parent.info.run_id, MLFLOW_RUN_NAME: phase}
        run = mlflow.MlflowClient().create_run(parent.info.experiment_id, tags=tags)
        self._runs[phase] = run.info.run_id
        return {"run_id": run.info.run_id, "tracking_uri": mlflow.get_tracking_uri()}

    def _close(self, status: str) -> None:
        client = mlflow.MlflowClient()
        for run_id in self._runs.values():
            client.set_terminated(run_id, status)
        self._runs.clear()

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._close(RunStatus.to_string(RunStatus.FINISHED))

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._close(RunStatus.to_string(RunStatus.FAILED))


def _tracked_outputs(pipeline: Pipeline, catalog: DataCatalog) -> dict[str, Any]:
    """The pipeline's outputs that are kedro-mlflow datasets taking a ``run_id``: its metric
    datasets, and the classes its ``MlflowArtifactDataset`` makes around a dataset."""
    datasets = {name: catalog.get(name) for name in pipeline.all_outputs()}
    return {name: dataset for name, dataset in datasets.items() if logs_into_a_run(dataset)}
