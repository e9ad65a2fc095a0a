"""The process's global rank as a cluster launcher set it (no heavy imports: settings use it)."""

from __future__ import annotations

import os

#: Where launchers put the process's global rank: torchrun, then SLURM's srun.
RANK_VARIABLES: tuple[str, ...] = ("RANK", "SLURM_PROCID")


def global_rank() -> int:
    """This process's global rank as torchrun or srun set it; 0 when none did."""
    for variable in RANK_VARIABLES:
        if variable in os.environ:
            return int(os.environ[variable])
    return 0
