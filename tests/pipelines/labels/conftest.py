"""Fixtures of the labels pipeline's tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avshared.crema_d import EMOTIONS, QUERY_TYPES, VOTE_COLUMNS


@pytest.fixture
def synthetic_finished_responses() -> pd.DataFrame:
    """A small finishedResponses table: 24 clips x 3 modalities, 3-8 ratings each, 30 raters.

    Raters mostly name the acted emotion, so majorities, ties and misses all occur; rater 'steady'
    always gives level 50, so the rater-normalised levels of their clips are NaN.
    """
    rng = np.random.default_rng(7)
    clips = [f"10{actor:02d}_DFA_{emotion}_XX" for actor in (1, 2, 3, 4) for emotion in EMOTIONS]
    raters = [f"rater{i}" for i in range(29)]
    rows = []
    for clip_num, clip in enumerate(clips, start=1):
        acted_letter = VOTE_COLUMNS[EMOTIONS.index(clip.split("_")[2])]
        for query_type in QUERY_TYPES.values():
            for _ in range(rng.integers(3, 9)):
                letter = acted_letter if rng.random() < 0.5 else str(rng.choice(VOTE_COLUMNS))
                rows.append(
                    (
                        str(rng.choice(raters)),
                        query_type,
                        clip_num,
                        clip,
                        letter,
                        int(rng.integers(0, 101)),
                    )
                )
        rows.append(("steady", 1, clip_num, clip, acted_letter, 50))
    frame = pd.DataFrame(
        rows, columns=["localid", "queryType", "clipNum", "clipName", "respEmo", "respLevel"]
    )
    return frame.assign(
        pos=np.arange(len(frame)),
        ans=frame["respEmo"] + "_" + frame["respLevel"].astype(str),
        ttr=rng.integers(500, 9000, len(frame)),
        subType=4,
    )
