"""The simulated raters: CREMA-D's rating protocol, and answers that follow what the clips show."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from avshared.crema_d import EMOTIONS
from avshared.pipelines.demo_data.crowd import (
    CrowdSettings,
    assign_raters,
    choose_emotions,
    presentation_clarity,
    simulate_judgements,
)


@pytest.fixture
def settings(project_demo_params) -> CrowdSettings:
    return CrowdSettings.from_params(project_demo_params["crowd"])


def test_every_clip_gets_its_judgements_and_no_rater_sees_a_clip_twice():
    rng = np.random.default_rng(0)
    needs = rng.integers(3, 9, size=(3, 200))
    judgements = assign_raters(needs, clips_per_rater=30, rng=rng)
    counts = judgements.groupby(["presentation", "clip"]).size().unstack(fill_value=0)
    np.testing.assert_array_equal(counts.to_numpy(), needs)
    assert not judgements.duplicated(["rater", "clip"]).any()
    assert judgements.groupby(["rater", "presentation"]).size().max() == 30


def test_fewer_clips_than_a_rater_takes_still_get_their_judgements():
    needs = np.full((3, 5), 4)
    judgements = assign_raters(needs, clips_per_rater=30, rng=np.random.default_rng(1))
    assert len(judgements) == needs.sum()
    assert not judgements.duplicated(["rater", "clip"]).any()


def test_audio_visual_clips_show_at_least_what_the_face_shows(settings):
    voice, face = np.array([0.0, 0.5, 1.0, 0.2]), np.array([0.3, 0.5, 0.0, 0.9])
    clarity = presentation_clarity(voice, face, settings.audiovisual_voice_weight)
    assert np.all(clarity["audiovisual"] >= face)
    assert np.all(clarity["audiovisual"] <= 1.0)
    assert clarity["audiovisual"][0] == pytest.approx(0.3)  # a mute voice adds nothing


def test_clear_clips_get_their_emotion_and_blank_ones_default_to_neutral(settings):
    rng = np.random.default_rng(2)
    acted = np.repeat(np.arange(len(EMOTIONS)), 2000)
    clear = choose_emotions(acted, np.ones(len(acted)), settings, rng)
    blank = choose_emotions(acted, np.zeros(len(acted)), settings, rng)
    assert np.mean(clear == acted) > 0.7
    assert np.bincount(blank, minlength=6).argmax() == EMOTIONS.index("NEU")
    non_neutral = acted != EMOTIONS.index("NEU")
    assert np.mean(blank[non_neutral] == acted[non_neutral]) < 0.2  # about chance


def test_crowd_settings_refuse_unknown_emotions_and_bad_ranges(project_demo_params):
    params = copy.deepcopy(project_demo_params["crowd"])
    params["confusable"] = {"ANG": "SURPRISE"}
    with pytest.raises(ValueError, match="SURPRISE"):
        CrowdSettings.from_params(params)
    params = copy.deepcopy(project_demo_params["crowd"])
    params["ratings_per_clip"] = [9, 4]
    with pytest.raises(ValueError, match="ratings_per_clip"):
        CrowdSettings.from_params(params)


def test_judgements_are_numbered_per_rater_and_deterministic(settings):
    clips = pd.DataFrame({"emotion": list(EMOTIONS) * 20})
    clarity = {m: np.full(len(clips), 0.5) for m in ("voice", "face", "audiovisual")}
    judgements = simulate_judgements(clips, clarity, settings, seed=5)
    pd.testing.assert_frame_equal(judgements, simulate_judgements(clips, clarity, settings, seed=5))
    for _, own in judgements.groupby("rater"):
        assert list(own["pos"]) == list(range(1, len(own) + 1))
        for _, of_type in own.groupby("query_type"):
            assert sorted(of_type["question"]) == list(range(1, len(of_type) + 1))
    assert judgements["level"].between(1, 100).all()
    assert set(judgements["query_type"]) == {1, 2, 3}
