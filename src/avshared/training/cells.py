"""The grid of a phase: one model per cell, a (fold, seed) pair, each one addressable on its own.

A phase trains one model per fold of the split (one fold, 0, for a single split) and per seed of
``training.seeds``: the cell ``fold_<k>.seed_<i>``, where ``i`` indexes ``training.seeds`` (the
``seed`` of predictions, histories, partitions and MLflow tags; the number itself is
``seed_value``). ``plan_cells`` says which cells the phase expects (every fold x every seed) and
which this run trains (``training.only_fold`` / ``training.only_seed``; null = every one), with each
cell's fingerprint: a hash of what its model is computed from (the phase configuration less the
parameters that do not change results, the cell's fold and seed value, its fold's targets and
split, the features' own fingerprints).

Each cell's results are stored under its key with its fingerprint and the id of the training that
made them (the catalog's ``{phase}.cell_*`` partitioned datasets); ``cell_status`` sorts the
expected cells into present, missing (some result not stored) and stale (stored under another
configuration, or evaluated from another training of the cell), so that gathering a phase never
mixes in a cell of an earlier configuration silently.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from avshared.features.store import FINGERPRINT, FeatureStore
from avshared.training.checkpoints import fingerprint
from avshared.training.phase import without_resume_independent

#: The tag of the training template's nodes a cell run runs: plan, train, evaluate (--tags=cell).
CELL_TAG = "cell"
_KEY = re.compile(r"fold_(\d+)\.seed_(\d+)")
#: The columns of a fold's targets that decide what its models learn and are tested on.
_TARGET_IDENTITY: tuple[str, ...] = ("clip_id", "split", "target")


@dataclass(frozen=True, order=True)
class Cell:
    """One model of a phase: the fold it is trained and tested on, the index of its seed."""

    fold: int
    seed: int

    @property
    def key(self) -> str:
        """``fold_<k>.seed_<i>``: the cell's partition in the ``{phase}.cell_*`` datasets."""
        return f"fold_{self.fold}.seed_{self.seed}"

    @classmethod
    def parse(cls, key: str) -> Cell:
        match = _KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"{key!r} is not a cell key (fold_<k>.seed_<i>)")
        return cls(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class CellPlan:
    """The cells a phase expects (every fold x every seed), those this run trains and evaluates,
    and each expected cell's fingerprint (by key)."""

    phase: str
    seeds: tuple[int, ...]
    cells: tuple[Cell, ...]
    selected: tuple[Cell, ...]
    fingerprints: Mapping[str, str]

    @property
    def folds(self) -> tuple[int, ...]:
        return tuple(sorted({cell.fold for cell in self.cells}))

    def seed_value(self, cell: Cell) -> int:
        return self.seeds[cell.seed]


def plan_cells(
    targets: pd.DataFrame,
    config: Mapping[str, Any],
    *,
    only_fold: int | None,
    only_seed: int | None,
    feature_stores: Mapping[str, FeatureStore | None],
) -> CellPlan:
    """The phase's cells (the folds of ``targets`` x ``config["seeds"]``), those selected by
    ``only_fold`` / ``only_seed`` (None: all), and the fingerprints of the expected cells.

    Refuses a fold the split does not have and a seed index outside ``seeds``, naming the valid
    ones.
    """
    folds = sorted(int(fold) for fold in targets["fold"].unique())
    seeds = tuple(int(seed) for seed in config["seeds"])
    if only_fold is not None and only_fold not in folds:
        raise ValueError(
            f"training.only_fold={only_fold}, but the split has folds {folds}: pick one of them "
            "(or null for every fold), or re-run the split pipeline if the split should have more"
        )
    if only_seed is not None and not 0 <= only_seed < len(seeds):
        raise ValueError(
            f"training.only_seed={only_seed} indexes training.seeds {list(seeds)}: use 0 to "
            f"{len(seeds) - 1}, or null for every seed"
        )
    cells = tuple(Cell(fold, seed) for fold in folds for seed in range(len(seeds)))
    selected = tuple(
        cell
        for cell in cells
        if (only_fold is None or cell.fold == only_fold)
        and (only_seed is None or cell.seed == only_seed)
    )
    configuration = without_resume_independent(config)
    configuration.pop("seeds")  # each cell's own seed is in its fingerprint
    features = {
        name: store.attrs.get(FINGERPRINT)
        for name, store in sorted(feature_stores.items())
        if store is not None
    }
    fold_targets = {fold: _targets_digest(targets.loc[targets["fold"] == fold]) for fold in folds}
    fingerprints = {
        cell.key: fingerprint(
            {
                "configuration": configuration,
                "fold": cell.fold,
                "seed_value": seeds[cell.seed],
                "targets": fold_targets[cell.fold],
                "features": features,
            }
        )
        for cell in cells
    }
    return CellPlan(config["phase"], seeds, cells, selected, fingerprints)


def _targets_digest(targets: pd.DataFrame) -> str:
    """A hash of a fold's clips, their split and target distribution, in clip order."""
    distribution = [c for c in targets.columns if c.startswith("p_")]
    rows = targets.loc[:, [*_TARGET_IDENTITY, *distribution]].sort_values("clip_id")
    hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def cell_config(config: Mapping[str, Any], cell: Cell) -> dict[str, Any]:
    """The configuration ``train_model`` trains the cell with: the phase's, with the cell's
    ``fold``, ``seed`` (index), ``seed_value`` and checkpoint folder
    ``<checkpoint_dir>/fold_<k>/seed_<i>`` (runs of several cells never share one)."""
    return {
        **config,
        "fold": cell.fold,
        "seed": cell.seed,
        "seed_value": int(config["seeds"][cell.seed]),
        "checkpoint_dir": f"{config['checkpoint_dir']}/fold_{cell.fold}/seed_{cell.seed}",
    }


def cell_command(phase: str, cell: Cell) -> str:
    """The `kedro run` that trains and evaluates one cell of ``phase`` (docs/grid.md)."""
    return (
        f"kedro run --pipelines={phase} --tags={CELL_TAG} "
        f"--params=training.only_fold={cell.fold},training.only_seed={cell.seed}"
    )


def stored_in_full(plan: CellPlan, stored: Mapping[str, Collection[str]]) -> list[Cell]:
    """The expected cells every one of the ``stored`` datasets (name -> its partition keys) has."""
    return [cell for cell in plan.cells if all(cell.key in keys for keys in stored.values())]


@dataclass(frozen=True)
class CellStatus:
    """The expected cells of a phase sorted by what is stored of them (keys, in cell order)."""

    expected: tuple[str, ...]
    present: tuple[str, ...]
    missing: tuple[str, ...]
    stale: tuple[str, ...]
    #: The command that (re)trains each missing or stale cell.
    commands: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """The status as the phase's metrics record it (``cells``), for the report."""
        return {
            "expected": list(self.expected),
            "present": list(self.present),
            "missing": list(self.missing),
            "stale": list(self.stale),
            "commands": dict(self.commands),
        }


def cell_status(
    plan: CellPlan,
    complete: Sequence[Cell],
    stamps: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]],
) -> CellStatus:
    """Sort the expected cells: ``complete`` are those with every result stored; ``stamps`` give
    each complete cell's (training summary, metrics). A complete cell is present if both carry the
    plan's fingerprint and the same training id, else stale; the others are missing."""
    stale = {cell for cell in complete if not _current(plan, cell, *stamps[cell.key])}
    missing = [cell for cell in plan.cells if cell not in set(complete)]
    return CellStatus(
        expected=tuple(cell.key for cell in plan.cells),
        present=tuple(cell.key for cell in complete if cell not in stale),
        missing=tuple(cell.key for cell in missing),
        stale=tuple(cell.key for cell in complete if cell in stale),
        commands={cell.key: cell_command(plan.phase, cell) for cell in sorted({*missing, *stale})},
    )


def _current(
    plan: CellPlan, cell: Cell, summary: Mapping[str, Any], metrics: Mapping[str, Any]
) -> bool:
    """Whether a stored cell was trained under the plan's configuration and evaluated from that
    training (not from an earlier one of the same cell)."""
    trained_here = summary.get("fingerprint") == plan.fingerprints[cell.key]
    evaluated_from_it = metrics.get("fingerprint") == summary.get("fingerprint") and metrics.get(
        "training_id"
    ) == summary.get("training_id")
    return trained_here and evaluated_from_it
