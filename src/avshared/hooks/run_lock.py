"""One `kedro run` at a time per project directory.

Two runs in one project write the same unversioned files (the clip manifest, the labels) and the
same resume checkpoints, so one could read what the other has half written. The hook takes an
exclusive ``fcntl.flock`` on ``<project>/.kedro-run.lock`` before any node runs and keeps it until
the pipeline ends; a second run fails at once, naming the first run's process and command. The
kernel drops the lock when its process dies, even by ``kill -9``, so a stale lock never blocks a
later run. Runs in separate copies (clones) of the project are independent.
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

from avshared.ranks import global_rank

logger = logging.getLogger(__name__)

LOCK_FILE = ".kedro-run.lock"


class ProjectRunLockedError(RuntimeError):
    """Another `kedro run` holds the project's run lock."""


class ProjectRunLock:
    """Holds ``<project>/.kedro-run.lock`` from ``before_pipeline_run`` to the pipeline's end."""

    def __init__(self) -> None:
        self._handle: IO[str] | None = None

    @hook_impl(tryfirst=True)  # before kedro-mlflow starts a run that would then be left open
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if global_rank() > 0:
            return  # a process of a torchrun / SLURM launch: rank 0 holds the lock for all
        self.release()  # a run of this process that failed before its pipeline started
        self.acquire(Path(run_params.get("project_path") or Path.cwd()))

    @hook_impl
    def after_pipeline_run(self) -> None:
        self.release()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self.release()

    def acquire(self, project_path: Path) -> None:
        """Take the lock or raise ``ProjectRunLockedError`` naming the run that holds it."""
        path = project_path / LOCK_FILE
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe_holder(handle.read())
            handle.close()
            raise ProjectRunLockedError(
                f"another `kedro run` is running in {project_path} ({holder}); it would overwrite "
                "the files this run reads. Wait for it to finish, or run in a separate copy of the "
                f"project. The lock is {path}; it is released when that process ends."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": sys.argv}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.truncate(0)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"process {holder['pid']}: {' '.join(holder['command'])}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its id"
