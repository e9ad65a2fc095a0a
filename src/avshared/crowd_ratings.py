"""CREMA-D crowd ratings: individual ratings -> tabulated votes -> summary table, as the dataset.

A port of the dataset's own R scripts (CheyneyComputerScience/CREMA-D): ``tabulateVotesV2.r``,
which ``processFinishedResponses.R`` calls to write processedResults/tabulatedVotes.csv, and
``data/InfoAndStats/summarizeVotes.r``, which writes processedResults/summaryTable.csv. Pure pandas
and numpy; shared by the labels pipeline and the demo-corpus generator.

What the port does not do: processFinishedResponses.R first drops the responses whose first click
came more than 10 s after the clip (timed in finishedEmoResponses.csv, which no pipeline here
reads), so ``tabulate_votes`` tabulates every response it is given.

Reading and writing the files: ``R_CSV_SAVE_ARGS`` / ``R_CSV_LOAD_ARGS`` (and
``SUMMARY_TABLE_LOAD_ARGS``) are the pandas arguments that write a table the way R's ``write.csv``
does (quoted strings and header, unnamed first column holding the row ids, ``NA`` for missing
values) and read it back unchanged. In a catalog entry they read::

    save_args: {index: true, index_label: "", quoting: 2, na_rep: "NA"}  # 2 = csv.QUOTE_NONNUMERIC
    load_args: {index_col: 0}

(``index: true`` matters: kedro's pandas.CSVDataset drops the index unless told otherwise.)

What pandas writes differently from R, without changing any value read back: floats in full
precision (``0.9090909090909091`` for R's 15 digits, ``-1.0`` for ``-1``) and row ids unquoted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from avshared.crema_d import EMOTIONS, QUERY_TYPES, VOTE_COLUMNS

#: Names the R scripts use in the per-emotion level columns (meanAngerResp, ...), in EMOTIONS order.
EMOTION_NAMES: dict[str, str] = {
    "ANG": "Anger",
    "DIS": "Disgust",
    "FEA": "Fear",
    "HAP": "Happy",
    "NEU": "Neutral",
    "SAD": "Sad",
}
#: Columns of finishedResponses.csv (after its unnamed row-number column), from the README.
FINISHED_RESPONSES_COLUMNS: tuple[str, ...] = (
    "localid",
    "pos",
    "ans",
    "ttr",
    "queryType",
    "numTries",
    "clipNum",
    "questNum",
    "subType",
    "clipName",
    "sessionNums",
    "respEmo",
    "respLevel",
    "dispEmo",
    "dispVal",
    "dispLevel",
)
#: The columns ``tabulate_votes`` reads; the others are carried by the file but not needed.
TABULATION_INPUT_COLUMNS: tuple[str, ...] = (
    "localid",
    "queryType",
    "clipNum",
    "clipName",
    "respEmo",
    "respLevel",
)
MEAN_LEVEL_COLUMNS: tuple[str, ...] = tuple(f"mean{EMOTION_NAMES[e]}Resp" for e in EMOTIONS)
MEAN_LEVEL_NORM_COLUMNS: tuple[str, ...] = tuple(f"{c}Norm" for c in MEAN_LEVEL_COLUMNS)
#: processedResults/tabulatedVotes.csv, in the file's order; its row id (the index) is
#: ``QUERY_TYPE_FACTOR * queryType + clipNum``.
TABULATED_VOTES_COLUMNS: tuple[str, ...] = (
    *VOTE_COLUMNS,
    "fileName",
    "numResponses",
    "agreement",
    "emoVote",
    "meanEmoResp",
    *MEAN_LEVEL_COLUMNS,
    "medianEmoResp",
    "meanEmoRespNorm",
    *MEAN_LEVEL_NORM_COLUMNS,
    "medianEmoRespNorm",
)
#: processedResults/summaryTable.csv; its row id (the index) is the clip's clipNum.
SUMMARY_TABLE_COLUMNS: tuple[str, ...] = (
    "FileName",
    "VoiceVote",
    "VoiceLevel",
    "FaceVote",
    "FaceLevel",
    "MultiModalVote",
    "MultiModalLevel",
)
#: summaryTable.csv's column prefix for each modality.
SUMMARY_PREFIXES: dict[str, str] = {"voice": "Voice", "face": "Face", "audiovisual": "MultiModal"}

QUERY_TYPE_FACTOR = 100_000
#: The per-emotion mean level of an emotion that got no vote.
NO_VOTE_LEVEL = -1.0
#: Ties between emotions are written joined with this, in A D F H N S order ('A:D').
TIE_SEPARATOR = ":"
#: Significant digits of the levels in summaryTable.csv (R's ``format(digits = 4)``).
SUMMARY_LEVEL_DIGITS = 4

R_CSV_SAVE_ARGS: dict[str, object] = {
    "index": True,
    "index_label": "",
    "quoting": csv.QUOTE_NONNUMERIC,
    "na_rep": "NA",
}
R_CSV_LOAD_ARGS: dict[str, object] = {"index_col": 0}
#: summaryTable.csv holds the levels as text ('30.67:51.00'): read every column as a string.
SUMMARY_TABLE_LOAD_ARGS: dict[str, object] = {
    "index_col": 0,
    "dtype": dict.fromkeys(SUMMARY_TABLE_COLUMNS, "str"),
}


def majority_vote(counts: Sequence[float] | np.ndarray | pd.Series) -> str:
    """The letter(s) with the most votes among six counts in A D F H N S order.

    Ties are joined with ':' in that order, as the dataset writes them: ``[3, 3, 0, 1, 0, 0]``
    -> 'A:D'.
    """
    values = np.asarray(counts, dtype=float)
    if values.shape != (len(VOTE_COLUMNS),):
        raise ValueError(
            f"majority_vote needs the {len(VOTE_COLUMNS)} vote counts {list(VOTE_COLUMNS)}, "
            f"got an array of shape {values.shape}"
        )
    top = values.max()
    return TIE_SEPARATOR.join(
        letter for letter, value in zip(VOTE_COLUMNS, values, strict=True) if value == top
    )


def majority_votes(counts: pd.DataFrame) -> pd.Series:
    """``majority_vote`` of every row of a table with the columns A D F H N S."""
    values = counts.loc[:, list(VOTE_COLUMNS)].to_numpy(dtype=float)
    return pd.Series([majority_vote(row) for row in values], index=counts.index, dtype="str")


def tabulate_votes(finished_responses: pd.DataFrame) -> pd.DataFrame:
    """Tabulate individual ratings per clip and query type, as tabulateVotesV2.r does.

    Args:
        finished_responses: one row per rating, with at least the columns
            ``TABULATION_INPUT_COLUMNS`` of finishedResponses.csv: ``respEmo`` one of the letters
            A D F H N S, ``respLevel`` the rated intensity (0..100; text that is not a number counts
            as missing, as in R), ``queryType`` 1 voice, 2 face, 3 audio-visual, ``clipNum`` the
            clip's row in SentenceFilenames.csv and ``clipName`` its name (1001_DFA_ANG_XX).

    Returns:
        processedResults/tabulatedVotes.csv as a frame: index ``100000 * queryType + clipNum``
        (sorted), columns ``TABULATED_VOTES_COLUMNS``: the six vote counts, ``fileName``,
        ``numResponses``, ``agreement`` (top count / numResponses), ``emoVote``
        (``majority_vote``), the mean and median level of all responses and the mean level per
        responded emotion (-1 for an emotion without votes), and the same means and median of the
        rater-normalised levels (the ``*Norm`` columns).

    Rater normalisation (tabulateVotesV2.r): each rater's levels, over all their responses in the
    input, are rescaled to 0..100 by ``(level - rater_min) * 100 / (rater_max - rater_min)``.
    A rater who always gave the same level has no range: their normalised levels are NaN, which
    makes every mean and median they take part in NaN (NA in the dataset's file), as in R. Missing
    levels likewise.
    """
    missing = [c for c in TABULATION_INPUT_COLUMNS if c not in finished_responses.columns]
    if missing:
        raise ValueError(
            f"finishedResponses is missing the columns {missing}; it needs "
            f"{list(TABULATION_INPUT_COLUMNS)} (see 'Finished Responses Columns' in the "
            "CREMA-D README)"
        )
    responded = finished_responses["respEmo"]
    unknown = sorted({str(v) for v in responded[~responded.isin(VOTE_COLUMNS)].unique()})
    if unknown:
        raise ValueError(
            f"finishedResponses.respEmo holds {unknown}: "
            f"expected only the letters {list(VOTE_COLUMNS)}"
        )
    level = pd.to_numeric(finished_responses["respLevel"], errors="coerce").astype(float)
    by_rater = level.groupby(finished_responses["localid"])
    rater_min, rater_max = by_rater.transform("min"), by_rater.transform("max")
    # A zero range gives 0 * inf = NaN, exactly as R does; silence numpy's warning about it.
    with np.errstate(divide="ignore", invalid="ignore"):
        level_norm = (level - rater_min) * (100.0 / (rater_max - rater_min))
    ratings = pd.DataFrame(
        {
            "row_id": (
                QUERY_TYPE_FACTOR * finished_responses["queryType"].astype("int64")
                + finished_responses["clipNum"].astype("int64")
            ),
            "emotion": responded.astype("str"),
            "level": level,
            "level_norm": level_norm,
            "fileName": finished_responses["clipName"].astype("str"),
        }
    )

    counts = (
        pd.crosstab(ratings["row_id"], ratings["emotion"])
        .reindex(columns=list(VOTE_COLUMNS), fill_value=0)
        .astype("int64")
    )
    counts.columns.name = None
    counts.index.name = None
    per_clip = ratings.groupby("row_id", sort=True)
    num_responses = counts.sum(axis=1)
    table = counts.assign(
        fileName=per_clip["fileName"].first().astype("str").to_numpy(),
        numResponses=num_responses,
        agreement=counts.max(axis=1) / num_responses,
        emoVote=majority_votes(counts),
        meanEmoResp=per_clip["level"].mean(skipna=False).to_numpy(),
    )
    table[list(MEAN_LEVEL_COLUMNS)] = _mean_per_emotion(ratings, "level", counts)
    table["medianEmoResp"] = per_clip["level"].median(skipna=False).to_numpy()
    table["meanEmoRespNorm"] = per_clip["level_norm"].mean(skipna=False).to_numpy()
    table[list(MEAN_LEVEL_NORM_COLUMNS)] = _mean_per_emotion(ratings, "level_norm", counts)
    table["medianEmoRespNorm"] = per_clip["level_norm"].median(skipna=False).to_numpy()
    return table.loc[:, list(TABULATED_VOTES_COLUMNS)]


def _mean_per_emotion(ratings: pd.DataFrame, column: str, counts: pd.DataFrame) -> np.ndarray:
    """Mean of ``column`` per clip row and responded emotion; -1 where the emotion got no vote."""
    means = (
        ratings.groupby(["row_id", "emotion"])[column]
        .mean(skipna=False)
        .unstack("emotion")
        .reindex(index=counts.index, columns=list(VOTE_COLUMNS))
    )
    # Mask by the counts, not by NaN: a voted emotion whose mean is NaN stays NaN, not -1.
    return means.where(counts.to_numpy() > 0, NO_VOTE_LEVEL).to_numpy(dtype=float)


def summary_table(tabulated_votes: pd.DataFrame) -> pd.DataFrame:
    """processedResults/summaryTable.csv from tabulatedVotes, as summarizeVotes.r builds it.

    For each clip (index: clipNum, the row of SentenceFilenames.csv) and modality: the majority
    vote, recomputed from the six counts, and the mean level of the voted emotion(s), written as R's
    ``format(levels, digits = 4)`` writes it: ties share one number of decimals and one width,
    ':'-joined ('30.67:51.00', ' 7.333:87.333:51.667'). Every column is text, as in the file.
    A clip that a modality has no row for gets missing values there.
    """
    query_types = tabulated_votes.index.to_numpy() // QUERY_TYPE_FACTOR
    clip_nums = tabulated_votes.index.to_numpy() % QUERY_TYPE_FACTOR
    votes = majority_votes(tabulated_votes)
    levels = [
        _format_r_levels(
            means[[VOTE_COLUMNS.index(letter) for letter in vote.split(TIE_SEPARATOR)]]
        )
        for vote, means in zip(
            votes,
            tabulated_votes.loc[:, list(MEAN_LEVEL_COLUMNS)].to_numpy(dtype=float),
            strict=True,
        )
    ]
    per_row = pd.DataFrame(
        {
            "clip_num": clip_nums,
            "query_type": query_types,
            "FileName": tabulated_votes["fileName"].astype("str").to_numpy(),
            "Vote": votes.to_numpy(),
            "Level": levels,
        }
    )
    clips = per_row.groupby("clip_num", sort=True)["FileName"].first()
    summary = pd.DataFrame({"FileName": clips}, index=clips.index)
    for modality, prefix in SUMMARY_PREFIXES.items():
        of_modality = per_row[per_row["query_type"] == QUERY_TYPES[modality]].set_index("clip_num")
        summary[f"{prefix}Vote"] = of_modality["Vote"].reindex(summary.index)
        summary[f"{prefix}Level"] = of_modality["Level"].reindex(summary.index)
    summary.index.name = None
    return summary.loc[:, list(SUMMARY_TABLE_COLUMNS)].astype("str")


def _format_r_levels(values: Iterable[float], digits: int = SUMMARY_LEVEL_DIGITS) -> str:
    """':'-join ``values`` as R's ``format(values, digits = digits)`` prints a numeric vector.

    R gives every element the decimals the most demanding one needs to show ``digits`` significant
    digits (trailing zeros dropped), pads all to one width, and writes NA for a missing value.
    Fixed notation only: the levels lie in 0..100, where R never switches to scientific notation.
    """
    values = [float(v) for v in values]
    decimals = max((_r_decimals(v, digits) for v in values if np.isfinite(v)), default=0)
    texts = [f"{v:.{decimals}f}" if np.isfinite(v) else "NA" for v in values]
    width = max(len(t) for t in texts)
    return TIE_SEPARATOR.join(t.rjust(width) for t in texts)


def _r_decimals(value: float, digits: int) -> int:
    """Decimals R needs to show ``value`` with ``digits`` significant digits.

    Follows scientific() in R's src/main/format.c.
    """
    magnitude = abs(value)
    if magnitude == 0.0:
        return 0
    # Scale to a `digits`-digit integer in extended precision by an exact power of ten and round
    # half to even, as R does.
    shift = int(np.floor(np.log10(magnitude))) - digits + 1
    if shift >= 0:
        scaled = np.longdouble(magnitude) / np.longdouble(10**shift)
    else:
        scaled = np.longdouble(magnitude) * np.longdouble(10**-shift)
    if scaled < np.longdouble(10) ** (digits - 1):
        scaled *= 10
        shift -= 1
    mantissa = int(np.rint(scaled))
    significant = digits
    while significant > 0 and mantissa % 10 == 0:
        mantissa //= 10
        significant -= 1
    if significant == 0:  # rounding carried into a new digit: 99.996 -> 100
        significant, shift = 1, shift + 1
    exponent = shift + digits - 1
    return max(0, significant - exponent - 1)


def response_accuracy(
    crowd_labels: pd.DataFrame, by: Sequence[str] = ("modality",)
) -> pd.DataFrame:
    """Share of human responses that name the acted emotion, pooled over the rows of each group.

    Args:
        crowd_labels: rows of the labels pipeline's ``crowd_labels`` (any subset, e.g. the test
            clips), with the columns ``num_correct`` (votes for the acted emotion),
            ``num_responses`` and ``by``.
        by: the columns to group by, e.g. ``("modality", "acted_emotion")``.

    Returns:
        One row per group: ``correct`` and ``total`` response counts and
        ``accuracy`` = correct / total.
    """
    grouped = crowd_labels.groupby(list(by), sort=False, observed=True)
    totals = pd.DataFrame(
        {
            "correct": grouped["num_correct"].sum().astype("int64"),
            "total": grouped["num_responses"].sum().astype("int64"),
        }
    )
    return totals.assign(accuracy=totals["correct"] / totals["total"])
