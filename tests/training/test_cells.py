"""The grid of a phase's cells (fold x seed): the plan of a run, the fingerprints that tell a cell
of the current configuration from a stale one, and the gathering's refusal of stale cells."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from avshared.pipelines.training import PHASE_MODALITIES
from avshared.training.cells import (
    Cell,
    cell_command,
    cell_config,
    cell_status,
    plan_cells,
    stored_in_full,
)
from avshared.training.folds import build_fold_targets, gather_cells
from avshared.training.phase import phase_config


@pytest.fixture
def audio(corpus, tiny_defaults, tmp_path):
    """The plan of the audio phase on a two-fold split, from its defaults, seeds and targets."""

    def make(seeds=(1, 2, 3), split=None, only_fold=None, only_seed=None, **defaults):
        config = phase_config(
            copy.deepcopy(tiny_defaults) | defaults,
            {},
            str(tmp_path),
            phase="audio",
            modalities=PHASE_MODALITIES["audio"],
            seeds=seeds,
        )
        targets, _ = build_fold_targets(
            corpus.clip_manifest,
            corpus.crowd_labels,
            _two_folds(corpus) if split is None else split,
            config,
        )
        stores = {"audio": corpus.log_mel_spectrograms}
        plan = plan_cells(
            targets, config, only_fold=only_fold, only_seed=only_seed, feature_stores=stores
        )
        return config, plan

    return make


def _two_folds(corpus) -> pd.DataFrame:
    swap = {"test": "val", "val": "test", "train": "train"}
    fold_1 = corpus.split.assign(split=corpus.split["split"].map(swap))
    return pd.concat([corpus.split.assign(fold=0), fold_1.assign(fold=1)], ignore_index=True)


def test_the_plan_has_every_fold_and_seed_and_selects_the_named_cell(audio):
    _, plan = audio()
    assert [cell.key for cell in plan.cells] == [
        f"fold_{fold}.seed_{seed}" for fold in (0, 1) for seed in (0, 1, 2)
    ]
    assert plan.selected == plan.cells
    _, one = audio(only_fold=1, only_seed=2)
    assert one.selected == (Cell(1, 2),) and one.seed_value(Cell(1, 2)) == 3
    _, fold = audio(only_fold=0)
    assert [cell.key for cell in fold.selected] == [
        "fold_0.seed_0",
        "fold_0.seed_1",
        "fold_0.seed_2",
    ]
    assert Cell.parse("fold_1.seed_2") == Cell(1, 2)


def test_a_cell_outside_the_grid_is_refused_naming_the_valid_ones(audio):
    with pytest.raises(ValueError, match=r"only_fold=2, but the split has folds \[0, 1\]"):
        audio(only_fold=2)
    with pytest.raises(
        ValueError, match=r"only_seed=3 indexes training.seeds \[1, 2, 3\]: use 0 to 2"
    ):
        audio(only_seed=3)


def test_a_cell_trains_in_a_checkpoint_folder_of_its_own_with_its_seed(audio):
    config, _ = audio()
    cell = cell_config(config, Cell(1, 2))
    assert (cell["fold"], cell["seed"], cell["seed_value"]) == (1, 2, 3)
    assert cell["checkpoint_dir"] == f"{config['checkpoint_dir']}/fold_1/seed_2"


def test_the_fingerprint_follows_what_a_cell_computes(audio, corpus, tiny_defaults):
    _, plan = audio()
    fingerprints = plan.fingerprints
    assert len(set(fingerprints.values())) == len(plan.cells)  # every cell its own
    # Settings that change nothing a cell computes keep every fingerprint...
    quiet = audio(data={**tiny_defaults["data"], "num_workers": 3})[1]
    assert quiet.fingerprints == fingerprints
    # ...and so does adding a seed, for the cells of the seeds already there.
    more = audio(seeds=(1, 2, 3, 4))[1].fingerprints
    assert {key: more[key] for key in fingerprints} == fingerprints
    # A parameter, a seed's value or the split change them.
    longer = audio(trainer={**tiny_defaults["trainer"], "max_epochs": 9})[1]
    assert not set(longer.fingerprints.values()) & set(fingerprints.values())
    other_seed = audio(seeds=(1, 7, 3))[1].fingerprints
    changed = {key for key in fingerprints if other_seed[key] != fingerprints[key]}
    assert changed == {"fold_0.seed_1", "fold_1.seed_1"}
    other_split = audio(split=_two_folds(corpus).assign(fold=lambda s: 1 - s["fold"]))[1]
    assert not set(other_split.fingerprints.values()) & set(fingerprints.values())


def test_cells_are_sorted_into_present_missing_and_stale(audio):
    _, plan = audio(seeds=(1, 2))
    current = {
        key: ({"fingerprint": fp, "training_id": key}, {"fingerprint": fp, "training_id": key})
        for key, fp in plan.fingerprints.items()
    }
    stamps = {
        "fold_0.seed_0": current["fold_0.seed_0"],
        # trained under another configuration
        "fold_0.seed_1": ({"fingerprint": "old", "training_id": "a"}, {"fingerprint": "old"}),
        # evaluated from an earlier training of the cell
        "fold_1.seed_0": (
            current["fold_1.seed_0"][0],
            {**current["fold_1.seed_0"][1], "training_id": "b"},
        ),
    }
    stored = {"cell_weights": set(stamps), "cell_metrics": {*stamps, "fold_1.seed_1"}}
    complete = stored_in_full(plan, stored)
    assert [cell.key for cell in complete] == list(stamps)
    status = cell_status(plan, complete, stamps)
    assert status.present == ("fold_0.seed_0",)
    assert status.missing == ("fold_1.seed_1",)
    assert status.stale == ("fold_0.seed_1", "fold_1.seed_0")
    assert (
        status.commands["fold_1.seed_1"]
        == cell_command("audio", Cell(1, 1))
        == (
            "kedro run --pipelines=audio --tags=cell "
            "--params=training.only_fold=1,training.only_seed=1"
        )
    )
    assert set(status.to_dict()["commands"]) == {"fold_0.seed_1", "fold_1.seed_0", "fold_1.seed_1"}


def test_gathering_refuses_a_phase_whose_every_stored_cell_is_stale(audio):
    config, plan = audio(seeds=(1,))
    old = {"fingerprint": "an earlier configuration", "training_id": "t"}
    stored = {cell.key: (lambda: old) for cell in plan.cells}
    with pytest.raises(ValueError, match="no cell stored under its current configuration") as error:
        gather_cells(
            plan=plan,
            config=config,
            target_summary={},
            cell_weights=stored,
            cell_training_summaries=stored,
            cell_histories=stored,
            cell_predictions=stored,
            cell_metrics=stored,
        )
    assert "stale ['fold_0.seed_0', 'fold_1.seed_0']" in str(error.value)
    assert cell_command("audio", Cell(1, 0)) in str(error.value)
