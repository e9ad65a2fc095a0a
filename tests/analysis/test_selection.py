"""The fixed choice of clips to draw: per emotion the first correct and the first wrong clip."""

from __future__ import annotations

import pandas as pd
import pytest

from avshared.analysis.selection import drawn_clips


def test_first_correct_and_first_wrong_per_emotion_by_clip_id():
    predictions = pd.DataFrame(
        {
            "clip_id": [
                "1003_DFA_ANG_XX",
                "1001_DFA_ANG_XX",
                "1002_DFA_ANG_XX",
                "1004_DFA_ANG_XX",
                "1001_DFA_SAD_XX",
                "1002_DFA_SAD_XX",
            ],
            "truth": ["ANG", "ANG", "ANG", "ANG", "SAD", "SAD"],
            "prediction": ["ANG", "SAD", "ANG", "HAP", "SAD", "SAD"],
        }
    )

    chosen = drawn_clips(predictions.sample(frac=1, random_state=0))

    assert chosen.to_dict("list") == {
        "clip_id": ["1002_DFA_ANG_XX", "1001_DFA_ANG_XX", "1001_DFA_SAD_XX"],
        "truth": ["ANG", "ANG", "SAD"],
        "prediction": ["ANG", "SAD", "SAD"],
        "outcome": ["correct", "wrong", "correct"],
    }


def test_class_indices_are_read_as_emotions():
    predictions = pd.DataFrame(
        {"clip_id": ["b", "a", "0"], "truth": [5, 0, -1], "prediction": [5, 1, 5]}
    )

    chosen = drawn_clips(predictions)

    assert chosen["truth"].tolist() == ["ANG", "SAD"]
    assert chosen["prediction"].tolist() == ["DIS", "SAD"]
    assert chosen["outcome"].tolist() == ["wrong", "correct"]


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="prediction"):
        drawn_clips(pd.DataFrame({"clip_id": ["a"], "truth": ["ANG"]}))
