"""The grid of cells behind each model row: the report refuses missing and stale cells, naming
them, and says what ended each cell's training, from its stored history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avshared.evaluation.grid import (
    CAP,
    EARLY_STOP,
    STILL_RISING,
    assess_training_budgets,
    check_cells_complete,
    summarise_endings,
    training_ending,
)
from avshared.evaluation.systems import collect_phase_metrics
from avshared.evaluation.tables import budget_note

BUDGET = {"max_epochs": 6, "min_epochs": 2, "patience": 2}


def _history(val_accuracy: list[float]) -> pd.DataFrame:
    epochs = np.arange(len(val_accuracy))
    return pd.DataFrame(
        {
            "epoch": epochs,
            "train_loss": 1.0 / (epochs + 1),
            "val_loss": 1.0 / (epochs + 1),
            "train_accuracy": 0.5,
            "val_accuracy": val_accuracy,
        }
    )


#: Six epochs (the cap): best at the last epoch; best four epochs before the end, then flat; a tie
#: at the maximum, first reached early. Four epochs: stopped early.
RISING = [0.2, 0.3, 0.35, 0.4, 0.45, 0.5]
FLAT = [0.2, 0.5, 0.45, 0.48, 0.47, 0.49]
TIED = [0.2, 0.5, 0.4, 0.45, 0.48, 0.5]
STOPPED = [0.2, 0.5, 0.45, 0.44]


@pytest.mark.parametrize(
    ("val_accuracy", "ending"),
    [(RISING, STILL_RISING), (FLAT, CAP), (TIED, CAP), (STOPPED, EARLY_STOP)],
)
def test_what_ended_a_cells_training_is_read_from_its_history(val_accuracy, ending):
    assert training_ending(_history(val_accuracy), max_epochs=6, patience=2) == ending


def test_the_patience_window_decides_still_rising_at_the_cap():
    peak_two_before_the_end = [0.2, 0.3, 0.4, 0.5, 0.45, 0.45]
    assert training_ending(_history(peak_two_before_the_end), max_epochs=6, patience=2) == CAP
    still = training_ending(_history(peak_two_before_the_end), max_epochs=6, patience=3)
    assert still == STILL_RISING
    # Patience 0 still counts a best last epoch as rising; no validation score says nothing.
    assert training_ending(_history(RISING), max_epochs=6, patience=0) == STILL_RISING
    unvalidated = _history(RISING).assign(val_accuracy=np.nan)
    assert training_ending(unvalidated, max_epochs=6, patience=2) == CAP


@pytest.fixture
def histories() -> pd.DataFrame:
    """The long table of two phases' histories: bimodal's three cells ended three ways, audio's
    one cell stopped early."""
    cells = [
        ("bimodal", 0, 0, RISING),
        ("bimodal", 0, 1, FLAT),
        ("bimodal", 1, 0, STOPPED),
        ("audio", 0, 0, STOPPED),
    ]
    return pd.concat(
        [
            _history(val).assign(phase=phase, fold=fold, seed=seed)
            for phase, fold, seed, val in cells
        ],
        ignore_index=True,
    )


def test_every_cell_is_assessed_and_each_row_counts_its_endings(histories):
    metrics = {phase: {"budget": BUDGET} for phase in ("bimodal", "audio")}
    budgets = assess_training_budgets(histories, metrics)
    bimodal = budgets.loc[budgets["phase"] == "bimodal"].set_index(["fold", "seed"])
    assert bimodal.loc[(0, 0), "ended_by"] == STILL_RISING
    assert (bimodal.loc[(0, 0), "epochs"], bimodal.loc[(0, 0), "best_val_epoch"]) == (6, 5)
    assert bimodal.loc[(0, 1), "ended_by"] == CAP
    assert bimodal.loc[(1, 0), "ended_by"] == EARLY_STOP
    assert bimodal.loc[(1, 0), "last_val_accuracy"] == pytest.approx(0.44)
    assert summarise_endings(budgets) == {
        "bimodal": "early stop 1/3; cap 1/3; cap, still rising 1/3",
        "audio": "early stop",
    }
    note = budget_note(budgets)
    assert note.startswith("**Still learning at the epoch cap**: bimodal (fold 0 seed 0).")
    assert "audio" not in note.split(". ")[0]
    calm = budget_note(budgets.loc[budgets["ended_by"] != STILL_RISING])
    assert calm.startswith("No row was still learning at the epoch cap.")
    # Metrics gathered before they recorded the budget: the ending is not known.
    unknown = assess_training_budgets(histories, {"bimodal": {"budget": BUDGET}, "audio": {}})
    assert unknown.loc[unknown["phase"] == "audio", "ended_by"].iloc[0].startswith("unknown")


def _cells(missing=(), stale=()) -> dict:
    expected = ["fold_0.seed_0", "fold_0.seed_1", "fold_1.seed_0", "fold_1.seed_1"]
    return {
        "expected": expected,
        "present": [c for c in expected if c not in {*missing, *stale}],
        "missing": list(missing),
        "stale": list(stale),
        "commands": {
            c: f"kedro run --pipelines=bimodal --tags=cell --params=<{c}>"
            for c in (*missing, *stale)
        },
    }


def test_the_report_refuses_a_row_with_a_missing_cell_and_names_it():
    metrics = {
        "audio": {"cells": _cells()},
        "bimodal": {"cells": _cells(missing=["fold_1.seed_1"])},
    }
    with pytest.raises(ValueError, match="refusing to report") as refused:
        collect_phase_metrics(**metrics)
    message = str(refused.value)
    assert "bimodal: missing fold_1.seed_1" in message and "audio" not in message
    assert "kedro run --pipelines=bimodal --tags=cell --params=<fold_1.seed_1>" in message
    assert "--tags=gather" in message


def test_the_report_refuses_a_row_with_a_stale_cell_and_names_it():
    metrics = {"bimodal": {"cells": _cells(stale=["fold_0.seed_1"])}}
    with pytest.raises(
        ValueError, match=r"bimodal: stale fold_0\.seed_1 \(trained under an earlier"
    ):
        check_cells_complete(metrics)


def test_a_complete_grid_and_metrics_from_before_the_grid_are_reported():
    metrics = {"audio": {"cells": _cells()}, "video": {"condition": "video_only"}}
    assert collect_phase_metrics(**metrics) == metrics
