"""The grid of cells behind each model row of the report (a phase trains one model per fold of the
split and per seed of ``training.seeds``): whether every cell is there, and how each cell's
training ended. No Kedro, no plotting.

``check_cells_complete`` refuses phases whose gathered metrics record missing or stale cells
(``cells`` in ``<phase>.metrics``, written by the training pipeline's ``gather_cells``), naming
each cell and the command that trains it. ``assess_training_budgets`` reads each cell's stored
per-epoch history and says what ended its training (``ENDINGS``):

- ``early stop``: it trained fewer epochs than ``max_epochs`` (early stopping ended it);
- ``cap``: it trained ``max_epochs`` epochs and its best validation accuracy came more than
  ``patience`` epochs before the last one (it had levelled off);
- ``cap, still rising``: it trained ``max_epochs`` epochs and its best validation accuracy (the
  first epoch that reached the highest value) came in the last ``patience`` epochs (the last one at
  least): early stopping would not have stopped it yet, so more epochs might have helped.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

#: How a cell's training ended, in the order the report counts them.
EARLY_STOP, CAP, STILL_RISING = "early stop", "cap", "cap, still rising"
ENDINGS: tuple[str, ...] = (EARLY_STOP, CAP, STILL_RISING)
#: Said of a phase whose metrics do not record its trainer's budget (gathered before it did).
UNKNOWN_ENDING = "unknown: gather the phase again"
#: Columns of ``training_budgets``: one row per phase and cell.
BUDGET_COLUMNS: tuple[str, ...] = (
    "phase",
    "fold",
    "seed",
    "epochs",
    "max_epochs",
    "patience",
    "best_val_epoch",
    "best_val_accuracy",
    "last_val_accuracy",
    "ended_by",
)


def check_cells_complete(phase_metrics: dict[str, dict[str, Any]]) -> None:
    """Refuse to report phases whose grid lacks cells or holds stale ones (trained under an
    earlier configuration), naming each cell and the command that (re)trains it. Metrics that
    record no ``cells`` (written before the grid existed) are one complete cell."""
    problems, commands = [], []
    for phase, metrics in phase_metrics.items():
        cells = metrics.get("cells") or {}
        missing, stale = cells.get("missing", []), cells.get("stale", [])
        if missing:
            problems.append(f"{phase}: missing {', '.join(missing)}")
        if stale:
            problems.append(
                f"{phase}: stale {', '.join(stale)} (trained under an earlier configuration)"
            )
        commands += [cells["commands"][cell] for cell in (*missing, *stale)]
    if problems:
        raise ValueError(
            "refusing to report: the table would leave out cells (fold x seed) of these rows:\n  "
            + "\n  ".join(problems)
            + "\nTrain them:\n  "
            + "\n  ".join(commands)
            + "\nthen gather them (kedro run --pipelines=training --tags=gather, or "
            "--pipelines=<phase> --tags=gather for the other rows) and report again "
            "(docs/grid.md)."
        )


def training_ending(history: pd.DataFrame, *, max_epochs: int, patience: int) -> str:
    """What ended one cell's training (``ENDINGS``, module docstring), from its per-epoch history
    (``epoch`` from 0, ``val_accuracy``). A cell without validation scores that hit the cap is
    ``cap``: nothing says it was still rising."""
    last = int(history["epoch"].max())
    if last + 1 < max_epochs:
        return EARLY_STOP
    validation = history["val_accuracy"] if "val_accuracy" in history else pd.Series(dtype=float)
    if validation.isna().all():
        return CAP
    best = int(history.loc[validation.idxmax(), "epoch"])  # the first epoch at the maximum
    return STILL_RISING if last - best < max(patience, 1) else CAP


def assess_training_budgets(
    histories: pd.DataFrame, phase_metrics: dict[str, dict[str, Any]]
) -> pd.DataFrame:
    """How each cell of each phase ended its training (``BUDGET_COLUMNS``), from the phases' stored
    histories (``collect_training_histories``: phase, fold, seed, epoch, ...) and the trainer's
    budget each phase's metrics record (``budget``: ``max_epochs``, ``patience``)."""
    rows = []
    for (phase, fold, seed), history in histories.groupby(["phase", "fold", "seed"], sort=False):
        budget = phase_metrics.get(phase, {}).get("budget")
        validation = history["val_accuracy"]
        best = validation.idxmax() if validation.notna().any() else None
        rows.append(
            {
                "phase": phase,
                "fold": int(fold),
                "seed": int(seed),
                "epochs": int(history["epoch"].max()) + 1,
                "max_epochs": budget["max_epochs"] if budget else None,
                "patience": budget["patience"] if budget else None,
                "best_val_epoch": None if best is None else int(history.loc[best, "epoch"]),
                "best_val_accuracy": None if best is None else float(validation.loc[best]),
                "last_val_accuracy": float(validation.iloc[-1]),
                "ended_by": (
                    training_ending(
                        history, max_epochs=budget["max_epochs"], patience=budget["patience"]
                    )
                    if budget
                    else UNKNOWN_ENDING
                ),
            }
        )
    return pd.DataFrame(rows, columns=list(BUDGET_COLUMNS))


def summarise_endings(budgets: pd.DataFrame) -> dict[str, str]:
    """Per phase, how its cells ended: the ending of its one cell, else each ending's count over
    the cells, e.g. ``early stop 3/5; cap, still rising 2/5``."""
    summaries = {}
    for phase, cells in budgets.groupby("phase", sort=False):
        if len(cells) == 1:
            summaries[phase] = str(cells["ended_by"].iloc[0])
            continue
        counts = cells["ended_by"].value_counts()
        order = [*ENDINGS, *sorted(set(counts.index) - set(ENDINGS))]
        summaries[phase] = "; ".join(
            f"{ending} {counts[ending]}/{len(cells)}" for ending in order if ending in counts
        )
    return summaries


def still_rising(budgets: pd.DataFrame) -> dict[str, list[str]]:
    """The cells that were still learning at the epoch cap, per phase (``fold k seed i``)."""
    flagged = budgets.loc[budgets["ended_by"] == STILL_RISING]
    return {
        phase: [
            f"fold {fold} seed {seed}"
            for fold, seed in zip(cells["fold"], cells["seed"], strict=True)
        ]
        for phase, cells in flagged.groupby("phase", sort=False)
    }
