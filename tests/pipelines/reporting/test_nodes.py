"""Nodes of the reporting pipeline on a small synthetic world (see conftest.py)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from avshared.crema_d import DEMO_MARKER_FILE, EMOTIONS, LEVELS, TABULATED_VOTES_FILE
from avshared.evaluation import classification_scores
from avshared.pipelines.labels.nodes import build_crowd_labels
from avshared.pipelines.reporting.nodes import (
    DEMO_LABEL,
    HISTORY_COLUMNS,
    PREDICTION_COLUMNS,
    REAL_LABEL,
    TABLE_SCORES,
    collect_training_histories,
    confusion_matrix_table,
    detect_data_label,
    format_comparison_table,
    gather_model_predictions,
    human_rater_predictions,
    markdown_table,
    plot_confusion_matrices,
    plot_per_emotion_f1,
    plot_training_curves,
    predict_reference_baselines,
    score_per_emotion_and_level,
    score_systems,
    stack_predictions,
)
from avshared.pipelines.reporting.pipeline import PHASES

MODEL_SYSTEMS = [
    "video",
    "audio",
    "bimodal",
    "bimodal (audio only)",
    "bimodal (video only)",
    "baseline",
]
HUMAN_SYSTEMS = [
    f"{name} ({modality})"
    for name in ("human raters", "crowd majority")
    for modality in ("voice", "face", "audiovisual")
]
INTERVAL = re.compile(r"^0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]$")


@pytest.fixture
def model_predictions(phase_predictions, phase_metrics) -> pd.DataFrame:
    return gather_model_predictions(phase_metrics, **phase_predictions)


@pytest.fixture
def all_predictions(model_predictions, split, clip_manifest, crowd_labels) -> pd.DataFrame:
    return stack_predictions(
        model_predictions,
        predict_reference_baselines(split, clip_manifest, chance_seed=0),
        human_rater_predictions(crowd_labels, split),
    )


@pytest.fixture
def scores(all_predictions, crowd_labels, reporting_params) -> pd.DataFrame:
    return score_systems(all_predictions, crowd_labels, reporting_params["bootstrap"])


def test_model_predictions_get_one_system_per_phase_and_condition(
    model_predictions, test_clips
) -> None:
    assert list(model_predictions.columns) == list(PREDICTION_COLUMNS)
    assert list(dict.fromkeys(model_predictions["system"])) == MODEL_SYSTEMS
    per_system = model_predictions.groupby("system", sort=False)
    assert (per_system.size() == len(test_clips)).all()
    conditions = per_system["condition"].first()
    assert conditions["audio"] == "audio_only"
    assert conditions["bimodal (video only)"] == "video_only"
    assert (model_predictions["weight"] == 1).all()


def test_model_targets_are_the_acted_emotions(phase_predictions, phase_metrics) -> None:
    """A phase trained on perceived labels writes them as `target`; reporting scores the acted
    emotion (`emotion`) for every phase alike."""
    video = phase_predictions["video"]
    perceived = video.assign(target=(video["target"] + 1) % 6)
    gathered = gather_model_predictions(phase_metrics, video=perceived)
    np.testing.assert_array_equal(gathered["target"], video["emotion"].map(EMOTIONS.index))


def test_model_predictions_name_what_is_wrong(phase_predictions, phase_metrics) -> None:
    broken = {"video": phase_predictions["video"].drop(columns="level")}
    with pytest.raises(ValueError, match=r"video\.test_predictions lacks the columns \['level'\]"):
        gather_model_predictions(phase_metrics, **broken)
    with pytest.raises(KeyError, match=r"fusion\.metrics has no 'condition'"):
        gather_model_predictions(phase_metrics, fusion=phase_predictions["video"])
    out_of_range = {"audio": phase_predictions["audio"].assign(predicted=6)}
    with pytest.raises(ValueError, match=r"outside 0\.\.5.*\['audio'\]"):
        gather_model_predictions(phase_metrics, **out_of_range)
    unknown = {"audio": phase_predictions["audio"].assign(condition="audio_and_text")}
    with pytest.raises(ValueError, match="unknown conditions"):
        gather_model_predictions(phase_metrics, **unknown)


def test_reference_baselines_use_train_labels_and_only_test_clips(
    split, clip_manifest, test_clips
) -> None:
    references = predict_reference_baselines(split, clip_manifest, chance_seed=3)
    train = clip_manifest.loc[split["split"] == "train", "label"]
    most_frequent = int(train.value_counts().idxmax())
    assert EMOTIONS[most_frequent] == "SAD"  # the fixture makes SAD the train majority

    majority = references.loc[references["system"] == "majority class (SAD)"]
    assert set(majority["clip_id"]) == set(test_clips["clip_id"])
    assert (majority["predicted"] == most_frequent).all()

    chance = references.loc[references["system"] == "chance (uniform)"]
    assert len(chance) == len(test_clips)
    assert chance["predicted"].nunique() == len(EMOTIONS)
    again = predict_reference_baselines(split, clip_manifest, chance_seed=3)
    assert again.equals(references)
    other_seed = predict_reference_baselines(split, clip_manifest, chance_seed=4)
    assert not other_seed["predicted"].equals(references["predicted"])


def test_human_rows_give_per_response_accuracy_on_test_clips(crowd_labels, split) -> None:
    humans = human_rater_predictions(crowd_labels, split)
    assert list(dict.fromkeys(humans["system"])) == HUMAN_SYSTEMS
    test_ids = set(split.loc[split["split"] == "test", "clip_id"])
    for modality in ("voice", "face", "audiovisual"):
        rows = humans.loc[humans["system"] == f"human raters ({modality})"]
        correct = (rows["target"] == rows["predicted"]) * rows["weight"]
        crowd = crowd_labels.loc[
            (crowd_labels["modality"] == modality) & crowd_labels["clip_id"].isin(test_ids)
        ]
        assert set(rows["clip_id"]) == test_ids
        assert rows["weight"].sum() == crowd["num_responses"].sum()
        assert correct.sum() / rows["weight"].sum() == pytest.approx(
            crowd["num_correct"].sum() / crowd["num_responses"].sum()
        )


def test_crowd_majority_splits_ties(crowd_labels, split) -> None:
    humans = human_rater_predictions(crowd_labels, split)
    majority = humans.loc[humans["system"] == "crowd majority (voice)"]
    # The fixture's tie: 4 ANG and 4 DIS votes for an ANG clip: half right, half wrong.
    tie = crowd_labels.loc[crowd_labels["majority_vote"] == "A:D", "clip_id"]
    tied = majority.loc[majority["clip_id"].isin(tie)]
    assert sorted(zip(tied["predicted"], tied["weight"], strict=True)) == [(0, 0.5), (1, 0.5)]
    assert majority.groupby("clip_id")["weight"].sum().eq(1).all()


def test_scores_match_sklearn_and_intervals_contain_them(scores, all_predictions) -> None:
    expected_systems = [
        *MODEL_SYSTEMS,
        "majority class (SAD)",
        "chance (uniform)",
        *HUMAN_SYSTEMS,
    ]
    assert list(scores["system"]) == expected_systems
    for system in ("video", "bimodal (audio only)", "chance (uniform)"):
        rows = all_predictions.loc[all_predictions["system"] == system]
        row = scores.set_index("system").loc[system]
        assert row["accuracy"] == pytest.approx(accuracy_score(rows["target"], rows["predicted"]))
        assert row["macro_f1"] == pytest.approx(
            f1_score(rows["target"], rows["predicted"], average="macro")
        )
    for name in ("accuracy", "macro_f1", "weighted_f1", "uar"):
        assert (scores[f"{name}_low"] <= scores[name]).all()
        assert (scores[name] <= scores[f"{name}_high"]).all()
    majority = scores.set_index("system").loc["majority class (SAD)"]
    assert majority["accuracy"] == pytest.approx(1 / 6, abs=0.02)  # SAD is 1/6 of test clips
    assert majority["uar"] == pytest.approx(1 / 6)


def test_crowd_agreement_uses_the_matching_modality_without_ties(
    scores, all_predictions, crowd_labels
) -> None:
    by_system = scores.set_index("system")
    for system, modality in (
        ("audio", "voice"),
        ("video", "face"),
        ("bimodal", "audiovisual"),
        ("bimodal (audio only)", "voice"),
    ):
        assert by_system.loc[system, "crowd_modality"] == modality
        crowd = crowd_labels.loc[
            (crowd_labels["modality"] == modality) & crowd_labels["majority_emotion"].notna()
        ]
        rows = all_predictions.loc[all_predictions["system"] == system].merge(crowd, on="clip_id")
        perceived = rows["majority_emotion"].map(EMOTIONS.index)
        assert by_system.loc[system, "crowd_agreement_clips"] == len(rows)
        assert by_system.loc[system, "crowd_agreement"] == pytest.approx(
            (rows["predicted"] == perceived).mean()
        )
    # Tied voice majorities (at least the fixture's one) are left out of the voice comparison.
    test_ids = all_predictions.loc[all_predictions["system"] == "audio", "clip_id"]
    voice = crowd_labels.loc[
        (crowd_labels["modality"] == "voice") & crowd_labels["clip_id"].isin(test_ids)
    ]
    ties = voice["majority_emotion"].isna().sum()
    assert ties >= 1
    assert by_system.loc["audio", "crowd_agreement_clips"] == len(test_ids) - ties
    humans = scores.loc[scores["kind"] != "model"]
    assert humans["crowd_agreement"].isna().all()


def test_actor_bootstrap_resamples_whole_actors(all_predictions, crowd_labels, reporting_params):
    video = all_predictions.loc[all_predictions["system"] == "video"]
    one_actor = video.loc[video["actor"] == video["actor"].iloc[0]]
    bootstrap = reporting_params["bootstrap"] | {"unit": "actor"}
    row = score_systems(one_actor, crowd_labels, bootstrap)
    # Resampling the only actor always gives back the same clips: a zero-width interval.
    assert row.loc[0, "accuracy_low"] == row.loc[0, "accuracy"] == row.loc[0, "accuracy_high"]
    by_clip = score_systems(one_actor, crowd_labels, reporting_params["bootstrap"])
    assert by_clip.loc[0, "accuracy_low"] < by_clip.loc[0, "accuracy_high"]
    with pytest.raises(ValueError, match=r"bootstrap\.unit must be one of"):
        score_systems(one_actor, crowd_labels, bootstrap | {"unit": "sentence"})


def test_per_emotion_and_level_scores(all_predictions) -> None:
    per_emotion, per_level = score_per_emotion_and_level(all_predictions)
    video = per_emotion.loc[per_emotion["system"] == "video"]
    assert list(video["level"].unique()) == ["all", *LEVELS]
    everything = video.loc[video["level"] == "all"]
    assert list(everything["emotion"]) == list(EMOTIONS)
    n_test = (all_predictions["system"] == "video").sum()
    assert everything["support"].sum() == n_test
    # No NEU clip is acted at LO: its recall there is undefined, not zero.
    neu_lo = video.loc[(video["level"] == "LO") & (video["emotion"] == "NEU")].iloc[0]
    assert np.isnan(neu_lo["recall"])
    assert neu_lo["support"] == 0

    levels = per_level.loc[per_level["system"] == "video"].set_index("level")
    assert levels.loc[list(LEVELS), "clips"].sum() == levels.loc["all", "clips"] == n_test
    rows = all_predictions.loc[
        (all_predictions["system"] == "video") & (all_predictions["level"] == "HI")
    ]
    assert levels.loc["HI", "accuracy"] == pytest.approx(
        accuracy_score(rows["target"], rows["predicted"])
    )


def test_confusion_matrix_table(all_predictions) -> None:
    confusion = confusion_matrix_table(all_predictions)
    assert (confusion.groupby("system").size() == len(EMOTIONS) ** 2).all()
    video = confusion.loc[confusion["system"] == "video"]
    assert video["count"].sum() == (all_predictions["system"] == "video").sum()
    np.testing.assert_allclose(video.groupby("true_emotion")["row_share"].sum(), 1)
    voice = confusion.loc[confusion["system"] == "human raters (voice)"]
    humans = all_predictions.loc[all_predictions["system"] == "human raters (voice)"]
    assert voice["count"].sum() == pytest.approx(humans["weight"].sum())  # responses


def test_comparison_table_has_every_system_and_score(
    scores, phase_metrics, reporting_params
) -> None:
    table, markdown = format_comparison_table(
        scores, phase_metrics, reporting_params["bootstrap"], DEMO_LABEL
    )
    assert list(table.columns) == [
        "system",
        "kind",
        "inputs",
        "test_clips",
        "parameters",
        *TABLE_SCORES,
        "crowd_reference",
    ]
    assert list(table["system"]) == list(scores["system"])
    for name in ("accuracy", "macro_f1", "weighted_f1", "uar"):
        assert table[name].str.match(INTERVAL).all(), table[name]
    by_system = table.set_index("system")
    assert by_system.loc["bimodal (audio only)", "parameters"] == (
        f"{phase_metrics['bimodal']['param_count']:,}"
    )
    assert by_system.loc["chance (uniform)", "parameters"] == "—"
    assert by_system.loc["bimodal (audio only)", "inputs"] == "audio"
    assert by_system.loc["human raters (face)", "crowd_agreement"] == "—"
    assert INTERVAL.match(by_system.loc["video", "crowd_agreement"])

    lines = markdown.splitlines()
    assert lines[0] == f"# Emotion recognition on the test clips — {DEMO_LABEL}"
    table_lines = [line for line in lines if line.startswith("|")]
    assert len(table_lines) == 2 + len(table)
    assert all(line.count("|") == len(table.columns) + 1 for line in table_lines)


def test_markdown_table_escapes_pipes_and_marks_missing_cells() -> None:
    frame = pd.DataFrame({"a": ["x|y", None], "b": pd.array([1, None], dtype="Int64")})
    assert markdown_table(frame).splitlines() == [
        "| a | b |",
        "| --- | --- |",
        "| x\\|y | 1 |",
        "| — | — |",
    ]


def test_data_label_from_marker_file_or_phase_metrics(tmp_path) -> None:
    assert detect_data_label(str(tmp_path), {"video": {"demo": False}}) == REAL_LABEL
    assert detect_data_label(str(tmp_path), {"video": {"demo": True}}) == DEMO_LABEL
    (tmp_path / DEMO_MARKER_FILE).write_text("")
    assert detect_data_label(str(tmp_path), {"video": {"demo": False}}) == DEMO_LABEL


def test_training_histories_are_stacked_and_checked(phase_histories) -> None:
    histories = collect_training_histories(**phase_histories)
    assert list(histories.columns) == ["phase", *HISTORY_COLUMNS]
    assert list(histories["phase"].unique()) == list(PHASES)
    with pytest.raises(ValueError, match=r"audio\.training_history lacks the columns"):
        collect_training_histories(audio=phase_histories["audio"].drop(columns="train_loss"))
    # Trained without a validation split: no val columns, NaN in the long table.
    unvalidated = phase_histories["audio"].drop(columns=["val_loss", "val_accuracy"])
    assert collect_training_histories(audio=unvalidated)["val_loss"].isna().all()


def test_figures_are_labelled_and_cover_every_phase(all_predictions, phase_histories) -> None:
    confusion = confusion_matrix_table(all_predictions)
    figures = plot_confusion_matrices(confusion, DEMO_LABEL)
    assert sorted(figures) == sorted(f"{phase}.png" for phase in PHASES)
    assert DEMO_LABEL in figures["video.png"].get_suptitle()
    titles = [axis.get_title() for axis in figures["bimodal.png"].axes if axis.get_images()]
    assert [title.rsplit(" (", 1)[0] for title in titles] == MODEL_SYSTEMS[2:5]

    per_emotion, _ = score_per_emotion_and_level(all_predictions)
    f1_figure = plot_per_emotion_f1(per_emotion, REAL_LABEL)
    axis = f1_figure.axes[0]
    assert axis.get_title().endswith(REAL_LABEL)
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend == ["chance (1/6)", *MODEL_SYSTEMS, *HUMAN_SYSTEMS[:3]]
    assert len(axis.patches) == (len(legend) - 1) * len(EMOTIONS)

    curves = plot_training_curves(collect_training_histories(**phase_histories), DEMO_LABEL)
    assert DEMO_LABEL in curves.get_suptitle()
    loss_axis = curves.axes[0]
    assert len(loss_axis.get_lines()) == 2 * len(PHASES)  # train and val per phase


def test_human_rows_reproduce_the_published_rater_accuracy(real_crema_d_metadata) -> None:
    """Over all 7,442 real clips, per-response accuracy is 0.400 (voice), 0.574 (face) and
    0.631 (audio-visual), as measured from the dataset's tabulatedVotes.csv."""
    votes = pd.read_csv(real_crema_d_metadata / TABULATED_VOTES_FILE, index_col=0)
    crowd = build_crowd_labels(votes, "tabulatedVotes", soft_label_pseudocount=0.0)
    clips = sorted(set(crowd["clip_id"]))
    every_clip_tested = pd.DataFrame({"clip_id": clips, "actor": 0, "split": "test"})
    humans = human_rater_predictions(crowd, every_clip_tested)
    for modality, expected in (("voice", 0.400), ("face", 0.574), ("audiovisual", 0.631)):
        rows = humans.loc[humans["system"] == f"human raters ({modality})"]
        assert rows["clip_id"].nunique() == 7442
        accuracy = classification_scores(rows["target"], rows["predicted"], rows["weight"])
        assert round(accuracy["accuracy"], 3) == expected
