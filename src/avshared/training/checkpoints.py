"""The resume checkpoints of one phase: kept while a run is unfinished, removed when it finishes.

``<checkpoint_dir>/<phase>/`` holds Lightning's ``last.ckpt`` (resume point, saved every epoch),
``best.ckpt`` (best validation score so far) and ``fingerprint.json`` (what the run was: parameters,
model sizes, training clips). The next run of the phase resumes from ``last.ckpt`` only if its
fingerprint is the same; otherwise, or after a clean finish, it trains afresh.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LAST = "last"
BEST = "best"
FINGERPRINT_FILE = "fingerprint.json"


def fingerprint(run_description: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-serialisable description of a training run."""
    text = json.dumps(run_description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def without_paths(config: Mapping[str, Any], paths: Iterable[tuple[str, ...]]) -> dict[str, Any]:
    """A deep copy of ``config`` less the keys at ``paths`` (e.g. ``("data", "num_workers")``):
    what a run's fingerprint describes, once the settings a run may resume across are gone."""
    kept = copy.deepcopy(dict(config))
    for path in paths:
        parent = kept
        for key in path[:-1]:
            parent = parent.get(key, {})
        parent.pop(path[-1], None)
    return kept


class PhaseCheckpoints:
    """The checkpoint folder of one phase and the decision to resume from it."""

    def __init__(self, root: str | Path, phase: str, run_fingerprint: str):
        self.directory = Path(root) / phase
        self.run_fingerprint = run_fingerprint

    @property
    def last(self) -> Path:
        return self.directory / f"{LAST}.ckpt"

    def resume_path(self, *, may_clear: bool = True) -> Path | None:
        """``last.ckpt`` if an unfinished run of the same configuration left one, else None.

        Stale checkpoints are removed only if ``may_clear`` (one process of several: rank 0).
        """
        if not self.last.is_file():
            return None
        stored = self.directory / FINGERPRINT_FILE
        if stored.is_file() and json.loads(stored.read_text()).get("fingerprint") == (
            self.run_fingerprint
        ):
            logger.info("Resuming the interrupted run from %s", self.last)
            return self.last
        logger.warning(
            "Found %s from an interrupted run with other parameters or data; training afresh "
            "(the old checkpoints are removed)",
            self.last,
        )
        if may_clear:
            self.clear()
        return None

    def prepare(self) -> None:
        """Create the folder and record this run's fingerprint."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / FINGERPRINT_FILE).write_text(
            json.dumps({"fingerprint": self.run_fingerprint})
        )

    def decide_resume(self) -> Path | None:
        """The resume decision of every process: made once, by global rank 0 (which clears a stale
        checkpoint and writes this run's fingerprint), and broadcast to the other processes a
        cluster launcher started, before any of them reads the folder; alone, made here.

        Under torchrun / srun the processes' group does not exist yet (Lightning makes it in
        ``fit``): a gloo group of the launcher's processes carries the decision, then goes.
        """
        from avshared.training.devices import cluster_environment

        environment = cluster_environment()
        if environment is None or environment.world_size() == 1:
            decision = self.resume_path(may_clear=True)
            self.prepare()
            return decision
        import torch.distributed as dist

        dist.init_process_group(
            "gloo",
            init_method=f"tcp://{environment.main_address}:{environment.main_port}",
            rank=environment.global_rank(),
            world_size=environment.world_size(),
        )
        try:
            message: list[str | None] = [None]
            if dist.get_rank() == 0:
                decision = self.resume_path(may_clear=True)
                self.prepare()
                message = [str(decision) if decision else ""]
            dist.broadcast_object_list(message, src=0)
        finally:
            dist.destroy_process_group()
        return Path(message[0]) if message[0] else None

    def clear(self) -> None:
        """Remove the folder: the next run trains afresh."""
        shutil.rmtree(self.directory, ignore_errors=True)
