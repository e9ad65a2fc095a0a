"""The demo_data nodes: CREMA-D's stimulus list, media files, faults and crowd ratings."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pandas as pd
import pytest

from avshared import crema_d, media
from avshared.crema_d import DEMO_MARKER_FILE
from avshared.crowd_ratings import FINISHED_RESPONSES_COLUMNS
from avshared.pipelines.demo_data.nodes import (
    NO_FAULT,
    describe_actors,
    list_sentence_filenames,
    plan_actors,
    plan_clips,
    render_media,
    simulate_crowd_responses,
)

#: Share of individual responses naming the acted emotion in CREMA-D (SOURCE.md, tabulatedVotes).
REAL_ACCURACY = {1: 0.400, 2: 0.574, 3: 0.631}


def plan_for(params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    actors = plan_actors(params)
    return actors, plan_clips(actors, params)


def test_actors_carry_crema_d_demographics_and_are_independent_of_each_other(demo_params):
    actors = plan_actors(demo_params)
    assert list(actors["ActorID"]) == [1064, 1076]
    assert set(actors["Sex"]) <= {"Male", "Female"}
    assert actors["Age"].between(20, 74).all()
    alone = plan_actors({**demo_params, "actors": [1076]})
    pd.testing.assert_series_equal(
        actors.iloc[1], alone.iloc[0], check_names=False
    )  # adding an actor changes no other


def test_actor_ids_must_be_distinct_four_digit_numbers(demo_params):
    for bad in ([], [1001, 1001], [42]):
        with pytest.raises(ValueError, match="4-digit"):
            plan_actors({**demo_params, "actors": bad})


def test_each_actor_says_every_sentence_as_crema_d_lists_it(project_demo_params):
    _, plan = plan_for({**project_demo_params, "actors": [1001, 1002], "sentences": "all"})
    assert len(plan) == 2 * 82 - 1  # CREMA-D has no 1002_TIE_NEU_XX
    assert "1002_TIE_NEU_XX" not in set(plan["clip"])
    assert list(plan["stimulus_number"]) == list(range(1, len(plan) + 1))
    parsed = [crema_d.parse_clip_id(clip) for clip in plan["clip"]]
    ieo = [p for p in parsed if p.actor == 1001 and p.sentence == "IEO"]
    assert [(p.emotion, p.level) for p in ieo[:4]] == [
        ("NEU", "XX"),
        ("HAP", "LO"),
        ("HAP", "MD"),
        ("HAP", "HI"),
    ]
    assert len(ieo) == 16
    assert all(p.level == "XX" for p in parsed if p.sentence != "IEO")


def test_the_stimulus_order_is_the_real_one(project_demo_params, real_crema_d_metadata):
    real = pd.read_csv(real_crema_d_metadata / crema_d.SENTENCE_FILENAMES_FILE)
    _, plan = plan_for({**project_demo_params, "actors": "all", "sentences": "all"})
    assert len(plan) == 7442
    assert list(plan["clip"]) == list(real["Filename"])
    assert list(plan["stimulus_number"]) == list(real["Stimulus_Number"])


def test_the_full_size_setting_has_crema_d_clip_count(project_demo_params):
    actors, plan = plan_for({**project_demo_params, "actors": "all", "sentences": "all"})
    assert len(actors) == 91 and len(plan) == 7442
    assert not set(plan["clip"]) & crema_d.ABSENT_CLIPS
    # CREMA-D's class sizes: NEU has no LO/MD/HI versions of IEO.
    expected = {"ANG": 1271, "DIS": 1271, "FEA": 1271, "HAP": 1271, "NEU": 1087, "SAD": 1271}
    assert plan.groupby("emotion").size().to_dict() == expected


def test_expressiveness_is_bounded_by_the_level_and_depends_only_on_the_clip(demo_params):
    _, plan = plan_for(demo_params)
    ceiling = plan["level"].map(demo_params["level_intensity"])
    for channel in ("voice_expressiveness", "face_expressiveness"):
        assert plan[channel].between(0, 1).all() and (plan[channel] <= ceiling).all()
    _, alone = plan_for({**demo_params, "actors": [1076], "sentences": ["MTI"]})
    same = plan.set_index("clip").loc[alone["clip"], "voice_expressiveness"]
    np.testing.assert_array_equal(same.to_numpy(), alone["voice_expressiveness"].to_numpy())


def test_faults_land_on_their_clips_and_absent_ones_are_reported(demo_params, caplog):
    params = {**demo_params, "faults": {**demo_params["faults"], "1064_IEO_DIS_MD": "silent_stub"}}
    with caplog.at_level(logging.WARNING):
        _, plan = plan_for(params)
    faults = plan.set_index("clip")["fault"]
    assert faults["1076_MTI_SAD_XX"] == "silent_stub"
    assert faults["1064_TIE_SAD_XX"] == "no_duration_video"
    assert (faults == NO_FAULT).sum() == len(plan) - 3
    assert "1064_IEO_DIS_MD" in caplog.text


def test_unknown_faults_and_sentences_are_refused(demo_params):
    with pytest.raises(ValueError, match="unknown kind"):
        plan_for({**demo_params, "faults": {"1076_MTI_SAD_XX": "melted"}})
    with pytest.raises(ValueError, match="XYZ"):
        plan_for({**demo_params, "sentences": ["XYZ"]})


@pytest.fixture
def small_render(demo_params, tmp_path):
    """Eight clips rendered: five plain, silent_stub, short_video and no_duration_video."""
    actors, plan = plan_for(demo_params)
    clips = plan["clip"]
    chosen = plan[clips.str.startswith("1076_MTI_") | clips.str.startswith("1064_TIE_SA")]
    chosen = pd.concat([chosen, plan[plan["clip"] == "1064_TIE_HAP_XX"]])
    root = tmp_path / "demo"
    return root, render_media(chosen, actors, str(root), demo_params)


def test_media_are_written_in_crema_d_formats(small_render):
    root, truth = small_render
    assert len(truth) == 8
    for clip in truth[truth["fault"] == NO_FAULT].itertuples():
        audio = media.probe_audio(crema_d.audio_path(root, clip.clip))
        assert (audio.sample_rate, audio.channels, audio.subtype) == (16_000, 1, "PCM_16")
        assert audio.duration_s == pytest.approx(clip.audio_seconds)
        assert 1.3 < audio.duration_s < 5.0
        video = media.probe_video(crema_d.video_path(root, clip.clip))
        assert (video.width, video.height, video.fps) == (480, 360, 30.0)
        assert video.frame_count == clip.video_frames == round(clip.audio_seconds * 30)
    marker = json.loads((root / DEMO_MARKER_FILE).read_text())
    assert marker["seed"] == 20140701


def test_the_real_corpus_faults_are_reproduced(small_render):
    root, truth = small_render
    stub_audio, rate = media.read_audio(crema_d.audio_path(root, "1076_MTI_SAD_XX"))
    assert stub_audio.shape[1] / rate < 0.5 and not stub_audio.any()  # very short, no audio
    assert media.probe_video(crema_d.video_path(root, "1076_MTI_SAD_XX")).frame_count < 10
    short = crema_d.video_path(root, "1076_MTI_NEU_XX")
    assert media.probe_video(short).duration_s < 0.5
    assert media.probe_audio(crema_d.audio_path(root, "1076_MTI_NEU_XX")).duration_s > 1.3
    with pytest.raises(media.MediaError):
        media.probe_video(crema_d.video_path(root, "1064_TIE_SAD_XX"))
    assert truth.set_index("clip").loc["1064_TIE_SAD_XX", "video_frames"] == 0


def test_damaged_copies_are_unreadable(demo_params, tmp_path):
    params = {
        **demo_params,
        "faults": {"1064_TIE_ANG_XX": "unreadable_video", "1064_TIE_FEA_XX": "lfs_pointer_audio"},
    }
    actors, plan = plan_for(params)
    chosen = plan[plan["clip"].isin(["1064_TIE_ANG_XX", "1064_TIE_FEA_XX"])]
    render_media(chosen, actors, str(tmp_path), params)
    with pytest.raises(media.MediaError):
        media.probe_video(crema_d.video_path(tmp_path, "1064_TIE_ANG_XX"))
    assert media.probe_audio(crema_d.audio_path(tmp_path, "1064_TIE_ANG_XX")).duration_s > 1.0
    pointer = crema_d.audio_path(tmp_path, "1064_TIE_FEA_XX")
    assert media.is_lfs_pointer(pointer)
    with pytest.raises(media.MediaError):
        media.probe_audio(pointer)
    assert media.probe_video(crema_d.video_path(tmp_path, "1064_TIE_FEA_XX")).frame_count > 30


def test_the_all_emotions_clip_is_long(demo_params, tmp_path):
    params = copy.deepcopy(demo_params)
    params["speech"]["take_gap_s"] = 0.2  # shorter than the project's minute, to keep this quick
    params.update(actors=[1064], sentences=["IEO"], faults={"1064_IEO_DIS_MD": "all_emotions_long"})
    actors, plan = plan_for(params)
    truth = render_media(plan[plan["clip"] == "1064_IEO_DIS_MD"], actors, str(tmp_path), params)
    seconds = truth["audio_seconds"].iloc[0]
    assert seconds > 10.0  # longer than any real clip: ingestion must reject it
    video = media.probe_video(crema_d.video_path(tmp_path, "1064_IEO_DIS_MD"))
    assert video.duration_s == pytest.approx(seconds, abs=0.05)


def test_rendering_is_byte_identical_and_independent_of_the_other_clips(demo_params, tmp_path):
    actors, plan = plan_for(demo_params)
    render_media(plan.iloc[:2], actors, str(tmp_path / "a"), demo_params)
    render_media(plan.iloc[1:2], actors, str(tmp_path / "b"), demo_params)
    clip = plan["clip"].iloc[1]
    for path_of in (crema_d.audio_path, crema_d.video_path):
        first, second = path_of(tmp_path / "a", clip), path_of(tmp_path / "b", clip)
        assert first.read_bytes() == second.read_bytes()


def test_a_foreign_folder_is_never_written_to(demo_params, tmp_path):
    actors, plan = plan_for(demo_params)
    (tmp_path / "README.md").write_text("a real CREMA-D copy")
    with pytest.raises(FileExistsError, match="crema_d_root"):
        render_media(plan.iloc[:1], actors, str(tmp_path), demo_params)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


def test_a_demo_folder_is_rewritten_without_stale_media(demo_params, tmp_path):
    actors, plan = plan_for(demo_params)
    render_media(plan.iloc[:2], actors, str(tmp_path), demo_params)
    render_media(plan.iloc[:1], actors, str(tmp_path), demo_params)
    assert {p.stem for p in (tmp_path / crema_d.AUDIO_DIR).iterdir()} == {plan["clip"].iloc[0]}
    assert {p.stem for p in (tmp_path / crema_d.VIDEO_DIR).iterdir()} == {plan["clip"].iloc[0]}


def test_sentence_filenames_and_demographics_describe_the_rendered_clips(demo_params):
    actors, plan = plan_for(demo_params)
    truth = plan[plan["actor"] == 1076].iloc[::-1]
    listed = list_sentence_filenames(truth)
    assert list(listed.columns) == ["Stimulus_Number", "Filename"]
    assert list(listed["Stimulus_Number"]) == sorted(truth["stimulus_number"])
    described = describe_actors(actors, truth)
    assert list(described.columns) == ["ActorID", "Age", "Sex", "Race", "Ethnicity"]
    assert list(described["ActorID"]) == [1076]


def test_crowd_responses_have_the_real_columns_and_every_clip_is_rated(demo_params):
    _, plan = plan_for(demo_params)
    responses = simulate_crowd_responses(plan, demo_params["crowd"], demo_params["seed"])
    assert tuple(responses.columns) == FINISHED_RESPONSES_COLUMNS
    assert responses.index[0] == 1
    low, high = demo_params["crowd"]["ratings_per_clip"]
    counts = responses.groupby(["clipName", "queryType"]).size()
    assert len(counts) == 3 * len(plan) and counts.between(low, high).all()
    acted = responses["clipName"].map(crema_d.parse_clip_id)
    assert (responses["dispEmo"] == [crema_d.EMOTION_LETTERS[c.emotion] for c in acted]).all()
    assert (responses["dispVal"] == [c.level for c in acted]).all()
    answers = responses["respEmo"] + "_" + responses["respLevel"].astype(str)
    assert (responses["ans"] == answers).all()
    assert responses.loc[responses["dispVal"] == "LO", "dispLevel"].eq(20).all()
    assert responses.loc[responses["dispVal"] == "XX", "dispLevel"].isna().all()


def crowd_accuracy(plan: pd.DataFrame, params: dict) -> pd.Series:
    responses = simulate_crowd_responses(plan, params["crowd"], params["seed"])
    correct = responses["respEmo"] == responses["dispEmo"]
    return correct.groupby(responses["queryType"]).mean()


def test_raters_are_as_accurate_as_crema_d_raters(project_demo_params):
    _, plan = plan_for({**project_demo_params, "actors": list(range(1001, 1011))})
    accuracy = crowd_accuracy(plan, project_demo_params)
    assert accuracy[1] < accuracy[2] < accuracy[3]
    for query_type, real in REAL_ACCURACY.items():
        assert accuracy[query_type] == pytest.approx(real, abs=0.04)


def test_raters_cannot_tell_the_emotion_of_spoiled_clips(project_demo_params):
    _, plan = plan_for({**project_demo_params, "actors": [1001, 1002, 1003]})
    acted = plan[plan["emotion"] != "NEU"]
    spoiled = crowd_accuracy(acted.assign(fault="silent_stub"), project_demo_params)
    assert (spoiled < 0.25).all()  # chance is 1/6; "neutral" soaks up the rest
    assert (crowd_accuracy(acted, project_demo_params) > 0.3).all()


def test_some_actors_get_a_warm_backdrop_without_changing_their_other_looks(demo_params):
    everyone = {**demo_params, "actors": "all"}
    actors = plan_actors(everyone)
    warm = actors["backdrop_warmth"] > 0
    low, high = everyone["looks"]["warmth"]
    assert actors.loc[warm, "backdrop_warmth"].between(low, high).all()
    assert abs(warm.mean() - everyone["looks"]["warm_backdrop_share"]) < 0.12
    # The warmth is drawn last: with no warm actors every other column stays as it was.
    cool = plan_actors({**everyone, "looks": {**everyone["looks"], "warm_backdrop_share": 0.0}})
    assert (cool["backdrop_warmth"] == 0).all()
    pd.testing.assert_frame_equal(
        actors.drop(columns="backdrop_warmth"), cool.drop(columns="backdrop_warmth")
    )
