"""The project's run lock: a second run in one directory is refused, naming the first; a killed
run never leaves the lock held."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from avshared.hooks.run_lock import LOCK_FILE, ProjectRunLock, ProjectRunLockedError

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
    first.before_pipeline_run({"project_path": str(tmp_path)})
    with pytest.raises(ProjectRunLockedError):
        second.acquire(tmp_path)
    first.after_pipeline_run()
    second.before_pipeline_run({"project_path": str(tmp_path)})
    second.on_pipeline_error()
    first.acquire(tmp_path)
    first.release()
