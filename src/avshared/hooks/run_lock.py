"""One `kedro run` at a time per project directory, except runs of separate cells of the grid.

Two runs in one project write the same unversioned files (the clip manifest, the labels) and the
same resume checkpoints, so one could read what the other has half written. The hook takes an
exclusive ``fcntl.flock`` on ``<project>/.kedro-run.lock`` before any node runs and keeps it until
the pipeline ends; a second run fails at once, naming the first run's process and command. The
kernel drops the lock when its process dies, even by ``kill -9``, so a stale lock never blocks a
later run. Runs in separate copies (clones) of the project are independent.

A cell run names one cell, ``training.only_fold`` and ``training.only_seed`` both set, and runs
nothing but the training template's ``cell`` nodes (``--tags=cell``): it reads the prepared data
and writes only its cell's partitions, checkpoint folder and MLflow runs (docs/grid.md). Cell runs
therefore run side by side: each holds the project lock shared (so no ordinary run, such as the data
preparation, rewrites what they read meanwhile) and, exclusively,
``<project>/.kedro-run.<phase>.<cell>.lock`` for each phase it runs (so one cell never trains twice
at once).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
from pathlib import Path
from typing import IO, Any

from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from avshared.ranks import global_rank
from avshared.training.cells import CELL_TAG, Cell

logger = logging.getLogger(__name__)

LOCK_FILE = ".kedro-run.lock"


class ProjectRunLockedError(RuntimeError):
    """Another `kedro run` holds the project's run lock, or the lock of the same cell."""


class ProjectRunLock:
    """Holds ``<project>/.kedro-run.lock`` (and a cell run's cell locks) from
    ``before_pipeline_run`` to the pipeline's end."""

    def __init__(self) -> None:
        #: The lock files held, and whether this process wrote its id into each.
        self._handles: list[tuple[IO[str], bool]] = []

    @hook_impl(tryfirst=True)  # before kedro-mlflow starts a run that would then be left open
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        if global_rank() > 0:
            return  # a process of a torchrun / SLURM launch: rank 0 holds the lock for all
        self.release()  # a run of this process that failed before its pipeline started
        project_path = Path(run_params.get("project_path") or Path.cwd())
        cells = cell_locks(pipeline, catalog)
        if cells is None:
            self.acquire(project_path)
        else:
            self.acquire_cells(project_path, cells)

    @hook_impl
    def after_pipeline_run(self) -> None:
        self.release()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self.release()

    def acquire(self, project_path: Path) -> None:
        """Take the project's lock alone or raise ``ProjectRunLockedError`` naming who holds it."""
        handle = _lock(
            project_path / LOCK_FILE,
            fcntl.LOCK_EX,
            f"another `kedro run` is running in {project_path}",
            "it would overwrite the files this run reads. Wait for it to finish, or run in a "
            "separate copy of the project. (Runs of single cells of the training grid run side "
            "by side: docs/grid.md.)",
        )
        self._handles.append((handle, True))

    def acquire_cells(self, project_path: Path, cells: list[str]) -> None:
        """Take the project's lock shared with other cell runs, and each of ``cells``
        (``<phase>.fold_<k>.seed_<i>``) alone; raise ``ProjectRunLockedError`` naming who holds
        the one that is taken."""
        try:
            shared = _lock(
                project_path / LOCK_FILE,
                fcntl.LOCK_SH,
                f"a `kedro run` other than a cell run is running in {project_path}",
                "it may rewrite the prepared data this cell run reads. Wait for it to finish.",
                record=False,  # the file names its exclusive holder, not the cell runs
            )
            self._handles.append((shared, False))
            for cell in cells:
                handle = _lock(
                    project_path / f".kedro-run.{cell}.lock",
                    fcntl.LOCK_EX,
                    f"cell {cell} is already being trained in {project_path}",
                    "wait for that run, or train another cell.",
                )
                self._handles.append((handle, True))
        except ProjectRunLockedError:
            self.release()
            raise
        logger.info("Cell run: locked %s (other cells may run beside it)", ", ".join(cells))

    def release(self) -> None:
        for handle, recorded in reversed(self._handles):
            if recorded:
                handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        self._handles.clear()


def cell_locks(pipeline: Pipeline, catalog: DataCatalog) -> list[str] | None:
    """The cell locks of a cell run (``<phase>.fold_<k>.seed_<i>`` for each phase it runs), or
    None for any other run."""
    only = [_parameter(catalog, f"training.only_{name}") for name in ("fold", "seed")]
    nodes = pipeline.nodes
    if None in only or not nodes or any(CELL_TAG not in node.tags for node in nodes):
        return None
    cell = Cell(*only)
    phases = sorted({node.namespace.split(".")[0] for node in nodes if node.namespace})
    return [f"{phase}.{cell.key}" for phase in phases]


def _parameter(catalog: DataCatalog, name: str) -> Any:
    key = f"params:{name}"
    return catalog.load(key) if key in catalog else None


def _lock(path: Path, mode: int, refusal: str, advice: str, *, record: bool = True) -> IO[str]:
    """``path`` locked in ``mode`` (``fcntl.LOCK_EX`` or ``LOCK_SH``), its handle; with
    ``record``, this process's id and command written into it for the next run's message."""
    handle = path.open("a+")
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _describe_holder(handle.read())
        handle.close()
        raise ProjectRunLockedError(
            f"{refusal} ({holder}); {advice} The lock is {path}; it is released when that "
            "process ends."
        ) from None
    if record:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": sys.argv}))
        handle.flush()
    return handle


def _describe_holder(text: str) -> str:
    if not text:
        return "cell runs, or a process that has not yet written its id"
    try:
        holder = json.loads(text)
        return f"process {holder['pid']}: {' '.join(holder['command'])}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its id"
