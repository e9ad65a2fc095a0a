"""Tests of avshared.crowd_ratings, the port of the CREMA-D R scripts that tabulate the ratings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avshared.crema_d import SUMMARY_TABLE_FILE, TABULATED_VOTES_FILE, VOTE_COLUMNS
from avshared.crowd_ratings import (
    MEAN_LEVEL_COLUMNS,
    MEAN_LEVEL_NORM_COLUMNS,
    R_CSV_LOAD_ARGS,
    R_CSV_SAVE_ARGS,
    SUMMARY_TABLE_COLUMNS,
    SUMMARY_TABLE_LOAD_ARGS,
    TABULATED_VOTES_COLUMNS,
    majority_vote,
    majority_votes,
    response_accuracy,
    summary_table,
    tabulate_votes,
)

ANGRY_CLIP, DISGUSTED_CLIP = "1001_DFA_ANG_XX", "1001_DFA_DIS_XX"


def _ratings(rows: list[tuple[str, int, int, str, str, float]]) -> pd.DataFrame:
    """finishedResponses rows from (localid, queryType, clipNum, clipName, respEmo, respLevel)."""
    frame = pd.DataFrame(
        rows, columns=["localid", "queryType", "clipNum", "clipName", "respEmo", "respLevel"]
    )
    return frame.assign(
        pos=range(len(frame)), ans=frame["respEmo"] + "_" + frame["respLevel"].astype(str)
    )


@pytest.fixture
def hand_made_ratings() -> pd.DataFrame:
    """Seven ratings by three raters whose levels span 20..100 (r1), 0..50 (r2) and 40..40 (r3)."""
    return _ratings(
        [
            ("r1", 1, 1, ANGRY_CLIP, "A", 60),  # r1: (60 - 20) * 100 / 80 = 50
            ("r2", 1, 1, ANGRY_CLIP, "A", 50),  # r2: (50 - 0) * 100 / 50 = 100
            ("r1", 1, 2, DISGUSTED_CLIP, "D", 20),  # 0
            ("r2", 1, 2, DISGUSTED_CLIP, "F", 0),  # 0
            ("r1", 3, 1, ANGRY_CLIP, "H", 100),  # 100
            ("r3", 3, 1, ANGRY_CLIP, "H", 40),  # r3 never varies: NaN
            ("r3", 2, 2, DISGUSTED_CLIP, "N", 40),  # NaN
        ]
    )


def test_majority_vote_single_winner_and_ties_in_dataset_order():
    assert majority_vote([0, 1, 0, 7, 2, 0]) == "H"
    assert majority_vote(pd.Series([3, 3, 0, 1, 0, 3])) == "A:D:S"
    assert majority_vote(np.array([0, 0, 2, 0, 2, 0])) == "F:N"


def test_majority_vote_rejects_anything_but_six_counts():
    with pytest.raises(ValueError, match="6 vote counts"):
        majority_vote([1, 2, 3])


def test_tabulate_votes_counts_ties_levels_and_rater_normalisation(hand_made_ratings):
    table = tabulate_votes(
        hand_made_ratings.sample(frac=1, random_state=3)
    )  # order must not matter

    assert list(table.columns) == list(TABULATED_VOTES_COLUMNS)
    assert table.index.tolist() == [100001, 100002, 200002, 300001]
    assert table[list(VOTE_COLUMNS)].to_numpy().tolist() == [
        [2, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 2, 0, 0],
    ]
    assert table["fileName"].tolist() == [ANGRY_CLIP, DISGUSTED_CLIP, DISGUSTED_CLIP, ANGRY_CLIP]
    assert table["numResponses"].tolist() == [2, 2, 1, 2]
    assert table["agreement"].tolist() == [1.0, 0.5, 1.0, 1.0]
    assert table["emoVote"].tolist() == ["A", "D:F", "N", "H"]

    assert table["meanEmoResp"].tolist() == [55.0, 10.0, 40.0, 70.0]
    assert table["medianEmoResp"].tolist() == [55.0, 10.0, 40.0, 70.0]
    # -1 for every emotion without a vote, the mean level for the others.
    assert table.loc[100001, list(MEAN_LEVEL_COLUMNS)].tolist() == [55, -1, -1, -1, -1, -1]
    assert table.loc[100002, list(MEAN_LEVEL_COLUMNS)].tolist() == [-1, 20, 0, -1, -1, -1]

    # Levels rescaled per rater to 0..100 over all their responses.
    assert table.loc[100001, "meanEmoRespNorm"] == pytest.approx(75.0)
    assert table.loc[100001, "medianEmoRespNorm"] == pytest.approx(75.0)
    assert table.loc[100001, list(MEAN_LEVEL_NORM_COLUMNS)].tolist() == [75, -1, -1, -1, -1, -1]
    assert table.loc[100002, list(MEAN_LEVEL_NORM_COLUMNS)].tolist() == [-1, 0, 0, -1, -1, -1]
    # A rater without range makes every mean they take part in NaN (NA in the dataset), not -1.
    assert np.isnan(table.loc[300001, "meanEmoRespNorm"])
    assert np.isnan(table.loc[300001, "meanHappyRespNorm"])
    assert np.isnan(table.loc[200002, "medianEmoRespNorm"])
    assert table.loc[300001, "meanAngerRespNorm"] == -1


def test_tabulate_votes_rejects_unknown_emotions_and_missing_columns(hand_made_ratings):
    with pytest.raises(ValueError, match="respEmo holds \\['Anger'\\]"):
        tabulate_votes(hand_made_ratings.assign(respEmo="Anger"))
    with pytest.raises(ValueError, match="missing the columns \\['respLevel'\\]"):
        tabulate_votes(hand_made_ratings.drop(columns="respLevel"))


def test_r_csv_arguments_write_the_dataset_layout_and_read_it_back_unchanged(hand_made_ratings):
    table = tabulate_votes(hand_made_ratings)
    text = table.to_csv(**R_CSV_SAVE_ARGS)

    header, first_row = text.splitlines()[:2]
    assert header.startswith('"","A","D","F","H","N","S","fileName","numResponses"')
    assert f',"{ANGRY_CLIP}",' in first_row and ',"A",' in first_row
    assert "NA" in text.splitlines()[4]  # the NaN of rater r3
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(text), **R_CSV_LOAD_ARGS), table)


def _tabulated(means_by_row: dict[int, tuple[list[int], list[float]]], names: dict[int, str]):
    """A tabulatedVotes frame from {row id: (six counts, six mean levels)} and {clipNum: name}."""
    rows = {
        row_id: [*counts, names[row_id % 100_000], *means]
        for row_id, (counts, means) in means_by_row.items()
    }
    return pd.DataFrame.from_dict(
        rows, orient="index", columns=[*VOTE_COLUMNS, "fileName", *MEAN_LEVEL_COLUMNS]
    )


def test_summary_table_formats_tied_levels_as_r_does():
    no = -1
    tabulated = _tabulated(
        {
            100001: ([0, 0, 0, 1, 10, 0], [no, no, no, 98, 69.1, no]),
            200001: ([0, 0, 3, 0, 3, 0], [no, no, 30 + 2 / 3, no, 51, no]),
            300001: ([0, 3, 0, 0, 3, 3], [no, 7 + 1 / 3, no, no, 87 + 1 / 3, 51 + 2 / 3]),
            100002: ([1, 1, 0, 0, 0, 0], [29, 100, no, no, no, no]),
            200002: ([0, 0, 0, 0, 2, 0], [no, no, no, no, 92 + 2 / 9, no]),
            300002: ([0, 2, 0, 0, 2, 0], [no, 61, no, no, 42.6, no]),
        },
        {1: "1001_IEO_NEU_XX", 2: "1001_IEO_HAP_LO"},
    )
    summary = summary_table(tabulated)

    assert list(summary.columns) == list(SUMMARY_TABLE_COLUMNS)
    assert summary.index.tolist() == [1, 2]
    assert summary.loc[1].tolist() == [
        "1001_IEO_NEU_XX",
        "N",
        "69.1",
        "F:N",
        "30.67:51.00",
        "D:N:S",
        " 7.333:87.333:51.667",
    ]
    assert summary.loc[2].tolist() == [
        "1001_IEO_HAP_LO",
        "A:D",
        " 29:100",
        "N",
        "92.22",
        "D:N",
        "61.0:42.6",
    ]


def test_response_accuracy_pools_responses_over_clips():
    labels = pd.DataFrame(
        {
            "modality": ["voice", "voice", "face"],
            "num_correct": [1, 5, 2],
            "num_responses": [9, 1, 4],
        }
    )
    accuracy = response_accuracy(labels)
    assert accuracy.loc["voice"].tolist() == [6, 10, 0.6]
    assert accuracy.loc["face", "accuracy"] == 0.5


# ---- the real CREMA-D ratings


def _real_tabulated_votes(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / TABULATED_VOTES_FILE, **R_CSV_LOAD_ARGS)


def test_summary_table_reproduces_the_real_summary_table(real_crema_d_metadata):
    real_summary = pd.read_csv(
        real_crema_d_metadata / SUMMARY_TABLE_FILE, **SUMMARY_TABLE_LOAD_ARGS
    )
    ours = summary_table(_real_tabulated_votes(real_crema_d_metadata))
    assert len(ours) == 7442
    pd.testing.assert_frame_equal(ours, real_summary)


def test_majority_votes_from_the_real_counts_match_the_real_emo_vote(real_crema_d_metadata):
    tabulated = _real_tabulated_votes(real_crema_d_metadata)
    assert len(tabulated) == 3 * 7442
    assert (majority_votes(tabulated) == tabulated["emoVote"]).all()


def test_real_tabulated_votes_survive_the_r_csv_round_trip(real_crema_d_metadata):
    tabulated = _real_tabulated_votes(real_crema_d_metadata)
    assert tabulated["meanEmoRespNorm"].isna().any()  # the file's NA must come back as NaN
    text = tabulated.to_csv(**R_CSV_SAVE_ARGS)
    real_header = (real_crema_d_metadata / TABULATED_VOTES_FILE).read_text().splitlines()[0]
    assert text.splitlines()[0] == real_header
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(text), **R_CSV_LOAD_ARGS), tabulated)
