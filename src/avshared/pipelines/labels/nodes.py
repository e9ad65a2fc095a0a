"""Nodes of the labels pipeline: CREMA-D crowd ratings -> per-clip crowd labels and human accuracy.

How to get human accuracy on any subset of clips (e.g. a test split) from ``crowd_labels``::

    from avshared.crowd_ratings import response_accuracy
    subset = crowd_labels[crowd_labels["clip_id"].isin(test_clip_ids)]
    response_accuracy(subset, by=["modality"])  # columns correct, total, accuracy

``num_correct / num_responses`` of one row is the share of that clip's raters who named the acted
emotion; ``majority_emotion == acted_emotion`` says whether the (untied) crowd majority did.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from avshared.crema_d import (
    EMOTIONS,
    FINISHED_RESPONSES_FILE,
    LETTER_EMOTIONS,
    MISSING_ROOT_HELP,
    PROBABILITY_COLUMNS,
    QUERY_TYPES,
    RATING_MODALITIES,
    TABULATED_VOTES_FILE,
    VOTE_COLUMNS,
    parse_clip_id,
)
from avshared.crowd_ratings import (
    QUERY_TYPE_FACTOR,
    TIE_SEPARATOR,
    majority_votes,
    response_accuracy,
    tabulate_votes,
)

logger = logging.getLogger(__name__)

#: crowd_labels columns of the vote counts and of the soft label, in crema_d.EMOTIONS order.
COUNT_COLUMNS: tuple[str, ...] = tuple(f"count_{e}" for e in EMOTIONS)
CROWD_LABEL_COLUMNS: tuple[str, ...] = (
    "clip_id",
    "modality",
    "acted_emotion",
    *COUNT_COLUMNS,
    "num_responses",
    *PROBABILITY_COLUMNS,
    "majority_vote",
    "majority_emotion",
    "agreement",
    "mean_level",
    "mean_level_norm",
    "num_correct",
    "source",
)
SOURCE_FINISHED_RESPONSES = "finishedResponses"
SOURCE_TABULATED_VOTES = "tabulatedVotes"
#: The tabulatedVotes.csv columns the labels are built from.
_REQUIRED_TABULATED_COLUMNS: tuple[str, ...] = (
    *VOTE_COLUMNS,
    "fileName",
    "meanEmoResp",
    "meanEmoRespNorm",
)
_MODALITY_OF_QUERY_TYPE = {query_type: modality for modality, query_type in QUERY_TYPES.items()}


def select_tabulated_votes(
    finished_responses: pd.DataFrame | None,
    tabulated_votes: pd.DataFrame | None,
    crema_d_root: str,
) -> tuple[pd.DataFrame, str]:
    """The tabulated votes, from the individual ratings when the root has them, else from its table.

    Args:
        finished_responses: finishedResponses.csv, or None where the root lacks it.
        tabulated_votes: processedResults/tabulatedVotes.csv, or None where the root lacks it.
        crema_d_root: the root both were looked for in (for the error message).

    Returns:
        The tabulated votes in tabulatedVotes.csv's layout and the name of the file they come from
        ('finishedResponses' or 'tabulatedVotes').
    """
    if finished_responses is not None:
        return tabulate_votes(finished_responses), SOURCE_FINISHED_RESPONSES
    if tabulated_votes is not None:
        missing = [c for c in _REQUIRED_TABULATED_COLUMNS if c not in tabulated_votes.columns]
        if missing:
            raise ValueError(
                f"{crema_d_root}/{TABULATED_VOTES_FILE} lacks the columns {missing}: is it the "
                "dataset's file, read with its row ids as index (load_args index_col: 0)?"
            )
        return tabulated_votes, SOURCE_TABULATED_VOTES
    raise FileNotFoundError(
        f"No crowd ratings under crema_d_root={crema_d_root!r}: neither "
        f"{FINISHED_RESPONSES_FILE} nor {TABULATED_VOTES_FILE} is there. {MISSING_ROOT_HELP}"
    )


def build_crowd_labels(
    tabulated_votes: pd.DataFrame, source: str, soft_label_pseudocount: float
) -> pd.DataFrame:
    """One row per clip and rating modality: vote counts, soft label, majority vote and levels.

    Args:
        tabulated_votes: tabulatedVotes.csv's layout (index 100000 * queryType + clipNum).
        source: which file the votes come from, copied to the ``source`` column.
        soft_label_pseudocount: added to every count before normalising the soft label (0 = vote
            shares).

    Returns:
        ``CROWD_LABEL_COLUMNS``, in the table's order (voice, face, audio-visual; clips in stimulus
        order): the counts ``count_ANG..count_SAD``, ``num_responses``, the soft label
        ``p_ANG..p_SAD`` (sums to 1), ``majority_vote`` recomputed from the counts with ties as the
        dataset writes them ('A:D'), ``majority_emotion`` (its three-letter code, None for a tie),
        ``agreement`` (top count / responses), ``mean_level`` and ``mean_level_norm`` (mean rated
        intensity, raw and rater-normalised, the latter NaN where a rater's levels had no range) and
        ``num_correct`` (responses naming the acted emotion). Rows whose clip name is not a CREMA-D
        clip (practice clips) are dropped with a warning.
    """
    if soft_label_pseudocount < 0:
        raise ValueError(
            "labels.soft_label_pseudocount must be >= 0 (0 = raw vote shares), "
            f"got {soft_label_pseudocount}"
        )
    votes = _crema_d_clips_only(tabulated_votes)
    query_types = votes.index.to_numpy() // QUERY_TYPE_FACTOR
    unknown_types = sorted(set(query_types.tolist()) - set(_MODALITY_OF_QUERY_TYPE))
    if unknown_types:
        raise ValueError(
            f"tabulated votes have query types {unknown_types} (row id // {QUERY_TYPE_FACTOR}); "
            f"CREMA-D has only {QUERY_TYPES}"
        )
    counts = votes.loc[:, list(VOTE_COLUMNS)].to_numpy(dtype="int64")
    num_responses = counts.sum(axis=1)
    if (num_responses == 0).any():
        raise ValueError(
            "tabulated votes hold rows without any vote: "
            f"{votes.index[num_responses == 0].tolist()[:5]}"
        )
    smoothed = counts + soft_label_pseudocount
    clip_ids = votes["fileName"].astype("str")
    acted = [parse_clip_id(clip_id).emotion for clip_id in clip_ids]
    majority = majority_votes(votes)

    labels = pd.DataFrame(
        {
            "clip_id": clip_ids.to_numpy(),
            "modality": [_MODALITY_OF_QUERY_TYPE[t] for t in query_types],
            "acted_emotion": acted,
        }
    )
    labels[list(COUNT_COLUMNS)] = counts
    labels["num_responses"] = num_responses
    labels[list(PROBABILITY_COLUMNS)] = smoothed / smoothed.sum(axis=1, keepdims=True)
    labels["majority_vote"] = majority.to_numpy()
    labels["majority_emotion"] = pd.array(
        [None if TIE_SEPARATOR in vote else LETTER_EMOTIONS[vote] for vote in majority],
        dtype="str",
    )
    labels["agreement"] = counts.max(axis=1) / num_responses
    labels["mean_level"] = votes["meanEmoResp"].to_numpy(dtype=float)
    labels["mean_level_norm"] = votes["meanEmoRespNorm"].to_numpy(dtype=float)
    labels["num_correct"] = counts[np.arange(len(counts)), [EMOTIONS.index(e) for e in acted]]
    labels["source"] = source
    return labels.loc[:, list(CROWD_LABEL_COLUMNS)]


def _crema_d_clips_only(tabulated_votes: pd.DataFrame) -> pd.DataFrame:
    """Drop rows of clips that are not CREMA-D stimuli (e.g. 'ANG_HI_practice'), saying so."""
    is_clip = tabulated_votes["fileName"].astype("str").map(_is_clip_id).to_numpy(dtype=bool)
    if not is_clip.all():
        dropped = sorted(set(tabulated_votes.loc[~is_clip, "fileName"].astype("str")))
        logger.warning(
            "Skipping %d rated rows whose clip is not a CREMA-D clip: %s",
            int((~is_clip).sum()),
            dropped[:10],
        )
    return tabulated_votes.loc[is_clip]


def _is_clip_id(name: str) -> bool:
    try:
        parse_clip_id(name)
    except ValueError:
        return False
    return True


def summarise_human_accuracy(crowd_labels: pd.DataFrame) -> dict[str, Any]:
    """Human raters' accuracy: the share of responses that name the acted emotion, per modality.

    Returns:
        ``{"overall": {modality: accuracy}, "per_emotion": {modality: {emotion: accuracy}},
        "responses": {modality: {"correct", "total", "clips"}}, "source": ...}``, modalities in
        crema_d.RATING_MODALITIES order and emotions in crema_d.EMOTIONS order, any without ratings
        left out.
    """
    overall = response_accuracy(crowd_labels, by=["modality"])
    per_emotion = response_accuracy(crowd_labels, by=["modality", "acted_emotion"])
    clips = crowd_labels.groupby("modality")["clip_id"].nunique()
    modalities = [m for m in RATING_MODALITIES if m in overall.index]
    sources = sorted(set(crowd_labels["source"]))
    return {
        "definition": (
            "share of individual responses naming the acted emotion: "
            "sum of num_correct / sum of num_responses over the clips"
        ),
        "overall": {m: float(overall.loc[m, "accuracy"]) for m in modalities},
        "per_emotion": {
            m: {
                e: float(per_emotion.loc[(m, e), "accuracy"])
                for e in EMOTIONS
                if (m, e) in per_emotion.index
            }
            for m in modalities
        },
        "responses": {
            m: {
                "correct": int(overall.loc[m, "correct"]),
                "total": int(overall.loc[m, "total"]),
                "clips": int(clips[m]),
            }
            for m in modalities
        },
        "source": sources[0] if len(sources) == 1 else sources,
    }
