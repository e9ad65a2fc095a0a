"""The project's run lock: a second run in one directory is refused, naming the first; a killed
run never leaves the lock held; runs of separate cells of the training grid run side by side."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from kedro.io import DataCatalog

from avshared.hooks.run_lock import LOCK_FILE, ProjectRunLock, ProjectRunLockedError
from avshared.pipelines.training import create_phase_pipeline

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from avshared.hooks.run_lock import ProjectRunLock
    lock = ProjectRunLock()  # held while the object lives, as the registered hook is
    lock.acquire(Path(sys.argv[1]))
    print("locked", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of ``tmp_path``, as a running `kedro run` would."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    yield process
    process.kill()
    process.wait(timeout=30)


def test_a_second_run_is_refused_naming_the_first(tmp_path, holder):
    with pytest.raises(ProjectRunLockedError, match=rf"process {holder.pid}: .*-c") as refused:
        ProjectRunLock().acquire(tmp_path)
    assert str(tmp_path) in str(refused.value)


def test_a_killed_run_leaves_no_stale_lock(tmp_path, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; the kernel dropped the lock

    lock = ProjectRunLock()
    lock.acquire(tmp_path)
    assert f'"pid": {os.getpid()}' in (tmp_path / LOCK_FILE).read_text()
    lock.release()


# A hang guard, not a speed test: a released lock is taken at once, without waiting for anything.
@pytest.mark.timeout(60)
def test_runs_one_after_the_other_in_one_process(tmp_path):
    first, second = ProjectRunLock(), ProjectRunLock()
    pipeline, catalog = create_phase_pipeline("audio"), _catalog()
    first.before_pipeline_run({"project_path": str(tmp_path)}, pipeline, catalog)
    with pytest.raises(ProjectRunLockedError):
        second.acquire(tmp_path)
    first.after_pipeline_run()
    second.before_pipeline_run({"project_path": str(tmp_path)}, pipeline, catalog)
    second.on_pipeline_error()
    first.acquire(tmp_path)
    first.release()


def _catalog(only_fold=None, only_seed=None) -> DataCatalog:
    catalog = DataCatalog()
    catalog["params:training.only_fold"] = only_fold
    catalog["params:training.only_seed"] = only_seed
    return catalog


CELL_NODES = create_phase_pipeline("audio").only_nodes_with_tags("cell")


def _start(tmp_path, pipeline, catalog) -> ProjectRunLock:
    lock = ProjectRunLock()
    lock.before_pipeline_run({"project_path": str(tmp_path)}, pipeline, catalog)
    return lock


def test_cell_runs_of_different_cells_run_side_by_side_but_one_cell_never_twice(tmp_path):
    first = _start(tmp_path, CELL_NODES, _catalog(0, 0))
    second = _start(tmp_path, CELL_NODES, _catalog(0, 1))  # another cell: allowed
    assert (tmp_path / ".kedro-run.audio.fold_0.seed_1.lock").read_text()
    with pytest.raises(ProjectRunLockedError, match=r"cell audio\.fold_0\.seed_1 is already"):
        _start(tmp_path, CELL_NODES, _catalog(0, 1))
    # No ordinary run while cells train: it would rewrite the data they read.
    with pytest.raises(ProjectRunLockedError, match="another `kedro run` is running"):
        _start(tmp_path, create_phase_pipeline("audio"), _catalog())
    first.after_pipeline_run()
    second.after_pipeline_run()
    _start(tmp_path, CELL_NODES, _catalog(0, 1)).release()
    _start(tmp_path, create_phase_pipeline("audio"), _catalog()).release()


def test_a_cell_run_waits_for_no_ordinary_run_and_a_run_beyond_its_cell_is_ordinary(tmp_path):
    ordinary = _start(tmp_path, create_phase_pipeline("audio"), _catalog())
    with pytest.raises(ProjectRunLockedError, match="other than a cell run is running"):
        _start(tmp_path, CELL_NODES, _catalog(1, 0))
    ordinary.release()
    # Naming a cell without --tags=cell runs the gathering too: an ordinary run, alone.
    whole_phase = _start(tmp_path, create_phase_pipeline("audio"), _catalog(1, 0))
    with pytest.raises(ProjectRunLockedError):
        _start(tmp_path, CELL_NODES, _catalog(2, 0))
    whole_phase.release()
    # Every seed of a fold is not one cell: an ordinary run too.
    every_seed = _start(tmp_path, CELL_NODES, _catalog(1, None))
    with pytest.raises(ProjectRunLockedError):
        _start(tmp_path, CELL_NODES, _catalog(2, 0))
    every_seed.release()
    assert not list(tmp_path.glob(".kedro-run.audio.fold_1*"))
