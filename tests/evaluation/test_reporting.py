"""The report's systems, tables and figures (avshared.evaluation) on a small synthetic world (see
conftest.py)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from avshared.crema_d import DEMO_MARKER_FILE, EMOTIONS, LEVELS, TABULATED_VOTES_FILE
from avshared.evaluation.figures import (
    plot_confusion_matrices,
    plot_per_emotion_f1,
    plot_training_curves,
)
from avshared.evaluation.grid import assess_training_budgets
from avshared.evaluation.scoring import classification_scores
from avshared.evaluation.systems import (
    DEMO_LABEL,
    REAL_LABEL,
    SYSTEM_PREDICTION_COLUMNS,
    check_split_protocol,
    detect_data_label,
    gather_model_predictions,
    human_rater_predictions,
    predict_reference_baselines,
    stack_predictions,
)
from avshared.evaluation.tables import (
    HISTORY_COLUMNS,
    TABLE_SCORES,
    _correctness,
    _paired_rows,
    collect_training_histories,
    compare_pairs,
    confusion_matrix_table,
    format_comparison_table,
    markdown_table,
    resolve_bootstrap,
    score_folds,
    score_per_emotion_and_level,
    score_systems,
)
from avshared.pipelines.labels.nodes import build_crowd_labels
from avshared.pipelines.reporting.pipeline import PHASES

MODEL_SYSTEMS = [
    "video",
    "audio",
    "bimodal",
    "bimodal (audio only)",
    "bimodal (video only)",
    "baseline",
    "baseline_matched",
]
HUMAN_SYSTEMS = [
    f"{name} ({modality})"
    for name in ("human raters", "crowd majority")
    for modality in ("voice", "face", "audiovisual")
]
SINGLE_SPLIT = {"folds": 1, "name": "a single train/val/test split", "test_actors": 2}
PAIRED = {
    "alpha": 0.05,
    "n_permutations": 2000,
    "pairs": [["bimodal", "video"], ["bimodal", "baseline"], ["video", "human raters (face)"]],
}
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


@pytest.fixture
def budgets(phase_histories, phase_metrics) -> pd.DataFrame:
    return assess_training_budgets(collect_training_histories(**phase_histories), phase_metrics)


def test_model_predictions_get_one_system_per_phase_and_condition(
    model_predictions, test_clips
) -> None:
    assert list(model_predictions.columns) == list(SYSTEM_PREDICTION_COLUMNS)
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
    scores, phase_metrics, reporting_params, all_predictions, budgets
) -> None:
    table, markdown = format_comparison_table(
        scores,
        phase_metrics,
        bootstrap=reporting_params["bootstrap"],
        data_label=DEMO_LABEL,
        protocol=SINGLE_SPLIT,
        fold_scores=pd.DataFrame(columns=["system", "accuracy"]),
        paired=compare_pairs(all_predictions, reporting_params["bootstrap"], PAIRED),
        budgets=budgets,
    )
    assert list(table.columns) == [
        "system",
        "kind",
        "inputs",
        "test_clips",
        "parameters",
        *TABLE_SCORES,
        "crowd_reference",
        "ended_by",
    ]
    # One seed: no spread over seeds, and each model row's one cell stopped early.
    assert "accuracy_over_seeds" not in table
    assert "seeds" not in markdown.split("## Paired comparisons")[0]
    assert set(table.loc[table["kind"] == "model", "ended_by"]) == {"early stop"}
    assert set(table.loc[table["kind"] != "model", "ended_by"]) == {"—"}
    assert "No row was still learning at the epoch cap" in markdown
    assert list(table["system"]) == list(scores["system"])
    # One split: the verdicts describe its test actors, and the report says so.
    assert "the 2 test actors" in markdown
    assert "split.strategy=actor_kfold" in markdown
    assert "smallest possible p" in markdown
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
    assert "Protocol: a single train/val/test split." in markdown
    table_lines = [
        line for line in lines[: lines.index("## Paired comparisons")] if line[:1] == "|"
    ]
    assert len(table_lines) == 2 + len(table)
    assert all(line.count("|") == len(table.columns) + 1 for line in table_lines)
    paired_section = lines[
        lines.index("## Paired comparisons") : lines.index("## Sharing and fusion")
    ]
    paired_lines = [line for line in paired_section if line[:1] == "|"]
    assert len(paired_lines) == 2 + len(PAIRED["pairs"])


def test_the_sharing_and_fusion_section_fills_the_cells_and_gives_the_contrasts(
    scores, phase_metrics, reporting_params, all_predictions, budgets
) -> None:
    bimodal = all_predictions.loc[all_predictions["system"] == "bimodal"]
    # A shared-encoder late-fusion row that is right on every clip the baseline is right on.
    late = all_predictions.loc[all_predictions["system"] == "baseline"].assign(
        system="bimodal_late", phase="bimodal_late"
    )
    predictions = pd.concat([all_predictions, late], ignore_index=True)
    scored = pd.concat(
        [
            scores,
            scores.loc[scores["system"] == "baseline"].assign(
                system="bimodal_late", phase="bimodal_late"
            ),
        ],
        ignore_index=True,
    )
    pairs = {**PAIRED, "pairs": [["bimodal_late", "baseline"], ["bimodal", "bimodal_late"]]}
    paired = compare_pairs(predictions, reporting_params["bootstrap"], pairs)
    table, markdown = format_comparison_table(
        scored,
        {**phase_metrics, "bimodal_late": phase_metrics["bimodal"]},
        bootstrap=reporting_params["bootstrap"],
        data_label=DEMO_LABEL,
        protocol=SINGLE_SPLIT,
        fold_scores=pd.DataFrame(columns=["system", "accuracy"]),
        paired=paired,
        budgets=budgets,
    )
    section = markdown[
        markdown.index("## Sharing and fusion") : markdown.index("## Training budgets")
    ]
    accuracy = table.set_index("system")["accuracy"]
    assert f"bimodal: {accuracy['bimodal']}" in section
    assert f"bimodal_late: {accuracy['bimodal_late']}" in section
    assert f"baseline: {accuracy['baseline']}" in section
    assert "bimodal_mid: not run" in section
    assert section.count("— (no such model)") == 2  # separate encoders cannot meet early or mid
    rows = {line.split(" | ")[1]: line for line in section.splitlines() if " - " in line}
    same = rows["bimodal_late - baseline"]
    assert "+0.000 [+0.000, +0.000]" in same and "no detectable difference" in same
    expected = (bimodal["target"] == bimodal["predicted"]).mean() - (
        (late["target"] == late["predicted"]).mean()
    )
    assert f"{expected:+.3f}" in rows["bimodal - bimodal_late"]
    assert "not in this report" in rows["bimodal - unimodal_ensemble"]


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
    assert list(histories.columns) == ["phase", "fold", "seed", *HISTORY_COLUMNS]
    assert (histories["fold"] == 0).all() and (histories["seed"] == 0).all()
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
    assert len(curves.axes) == 2  # no per-sense accuracies recorded: no third panel


def test_training_curves_show_each_senses_validation_accuracy_of_two_modality_phases(
    phase_histories,
) -> None:
    two_modality = ["bimodal", "baseline"]
    histories = dict(phase_histories)
    for phase in two_modality:
        histories[phase] = histories[phase].assign(
            val_accuracy_audio=np.linspace(0.2, 0.5, len(histories[phase])),
            val_accuracy_video=np.linspace(0.2, 0.7, len(histories[phase])),
        )
    stacked = collect_training_histories(**histories)
    assert stacked.loc[stacked["phase"] == "audio", "val_accuracy_video"].isna().all()

    curves = plot_training_curves(stacked, DEMO_LABEL)

    sense_axis = curves.axes[2]
    assert "each sense alone" in sense_axis.get_title()
    labels = [line.get_label() for line in sense_axis.get_lines()]
    assert labels == [f"{p} {s} only" for p in two_modality for s in ("audio", "video")]
    video_line = sense_axis.get_lines()[1]
    assert video_line.get_linestyle() == "-." and list(video_line.get_ydata()) == list(
        histories["bimodal"]["val_accuracy_video"]
    )


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


# ---------------------------------------------------------------- folds and paired comparisons


def _two_folds(split: pd.DataFrame) -> pd.DataFrame:
    """Fold 0: the world's split; fold 1: the test actors train and two train actors test."""
    swap = {1001: "test", 1002: "test", 1007: "train", 1008: "train"}
    fold_1 = split.assign(split=split["actor"].map(swap).fillna(split["split"]))
    return pd.concat([split.assign(fold=0), fold_1.assign(fold=1)], ignore_index=True)


def test_a_report_mixing_fold_and_single_split_results_is_refused(split, phase_metrics) -> None:
    kfold = _two_folds(split)
    with pytest.raises(ValueError, match=r"refusing to report: the split has 2 fold\(s\).*video"):
        check_split_protocol(kfold, phase_metrics)  # every phase trained on a single split
    trained = {phase: {**metrics, "folds": 2} for phase, metrics in phase_metrics.items()}
    trained["audio"]["folds"] = 1
    with pytest.raises(ValueError, match=r"\{'audio': 1\}.*mixing fold and single-split"):
        check_split_protocol(kfold, trained)
    trained["audio"]["folds"] = 2
    assert check_split_protocol(kfold, trained)["folds"] == 2
    assert check_split_protocol(split, phase_metrics) == SINGLE_SPLIT


def test_k_fold_reports_resample_actors(reporting_params) -> None:
    bootstrap = reporting_params["bootstrap"]
    assert resolve_bootstrap(bootstrap, {"folds": 5, "name": ""})["unit"] == "actor"
    assert resolve_bootstrap(bootstrap, SINGLE_SPLIT) == bootstrap


def test_references_and_humans_follow_each_folds_split(split, clip_manifest, crowd_labels) -> None:
    kfold = _two_folds(split)
    references = predict_reference_baselines(kfold, clip_manifest, chance_seed=0)
    majority = references.loc[references["system"].str.startswith("majority")]
    tested = kfold.loc[kfold["split"] == "test"]
    assert sorted(majority["clip_id"]) == sorted(tested["clip_id"])  # every test clip once
    fold_of = tested.set_index("clip_id")["fold"]
    assert (majority["fold"].to_numpy() == fold_of.loc[majority["clip_id"]].to_numpy()).all()
    # Fold 0's train clips lack four DFA clips of 1001/1002 (SAD most frequent); fold 1 trains on
    # full actors instead, where the six emotions tie and the lowest index (ANG) wins.
    by_fold = majority.groupby("fold")["predicted"].unique()
    assert list(by_fold[0]) == [EMOTIONS.index("SAD")] and list(by_fold[1]) == [0]
    assert majority["system"].iloc[0] == "majority class (ANG/SAD)"
    humans = human_rater_predictions(crowd_labels, kfold)
    assert set(humans["clip_id"]) == set(tested["clip_id"])
    assert (humans["fold"].to_numpy() == fold_of.loc[humans["clip_id"]].to_numpy()).all()


def test_fold_scores_score_each_folds_test_clips(all_predictions) -> None:
    folds = score_folds(all_predictions)
    assert set(folds["fold"]) == {0}
    video = all_predictions.loc[all_predictions["system"] == "video"]
    row = folds.set_index("system").loc["video"]
    assert row["accuracy"] == pytest.approx((video["target"] == video["predicted"]).mean())
    assert row["test_clips"] == video["clip_id"].nunique()


def test_paired_comparisons_on_known_cases(all_predictions, reporting_params) -> None:
    bootstrap = reporting_params["bootstrap"]
    bimodal = all_predictions.loc[all_predictions["system"] == "bimodal"]
    twin = bimodal.assign(system="twin")
    oracle = bimodal.assign(system="oracle", predicted=bimodal["target"])
    predictions = pd.concat([all_predictions, twin, oracle], ignore_index=True)
    pairs = {
        **PAIRED,
        "pairs": [["bimodal", "twin"], ["oracle", "bimodal"], ["video", "oracle"], ["x", "video"]],
    }
    table = compare_pairs(predictions, bootstrap, pairs).set_index(["system_a", "system_b"])
    assert len(table) == 3  # the pair naming a system this report lacks is left out
    same = table.loc[("bimodal", "twin")]
    assert same["p_value"] == 1.0 and same["difference_low"] <= 0 <= same["difference_high"]
    assert same["verdict"] == "no detectable difference at 95%"
    assert same["test"] == "exact McNemar" and same["unit"] == "clip"
    assert table.loc[("oracle", "bimodal"), "verdict"] == "better"
    assert table.loc[("video", "oracle"), "verdict"] == "worse"
    assert (table["p_holm"] >= table["p_value"]).all()
    accuracy = (bimodal["target"] == bimodal["predicted"]).mean()
    assert table.loc[("oracle", "bimodal"), "difference"] == pytest.approx(1 - accuracy)


def test_models_are_compared_with_human_raters_clip_by_clip(all_predictions, reporting_params):
    actor_bootstrap = {**reporting_params["bootstrap"], "unit": "actor"}
    table = compare_pairs(all_predictions, actor_bootstrap, PAIRED)
    human = table.loc[table["system_b"] == "human raters (face)"].iloc[0]
    assert human["test"] == "exact sign-flip" and human["unit"] == "actor"
    assert human["units"] == 2  # the two test actors
    raters = all_predictions.loc[all_predictions["system"] == "human raters (face)"]
    hit = raters.assign(h=(raters["target"] == raters["predicted"]) * raters["weight"])
    per_clip = hit.groupby("clip_id")["h"].sum() / hit.groupby("clip_id")["weight"].sum()
    assert human["accuracy_b"] == pytest.approx(per_clip.mean())


def test_the_k_fold_table_gives_mean_and_sd_over_folds(
    scores, phase_metrics, reporting_params, budgets
):
    fold_scores = pd.DataFrame(
        {"system": np.repeat(scores["system"].to_numpy(), 2), "accuracy": [0.5, 0.7] * len(scores)}
    )
    table, markdown = format_comparison_table(
        scores,
        phase_metrics,
        bootstrap={**reporting_params["bootstrap"], "unit": "actor"},
        data_label=REAL_LABEL,
        protocol={"folds": 2, "name": "speaker-independent 2-fold cross-validation by actor"},
        fold_scores=fold_scores,
        paired=compare_pairs(
            pd.DataFrame(columns=SYSTEM_PREDICTION_COLUMNS),
            reporting_params["bootstrap"],
            {**PAIRED, "pairs": []},
        ),
        budgets=budgets,
    )
    assert (table["accuracy_over_folds"] == "0.600 ± 0.141").all()
    assert "Pooled predictions of the 2 folds" in markdown and "over test actors" in markdown


# ---------------------------------------------------------------- seeds


@pytest.fixture
def seeded_predictions(phase_predictions) -> dict[str, pd.DataFrame]:
    """Every phase's test predictions by two seeds: seed 0 the world's, seed 1 right on the first
    half of the rows and as seed 0 on the rest."""
    seeded = {}
    for phase, predictions in phase_predictions.items():
        better = predictions.copy()
        half = np.arange(len(better)) < len(better) // 2
        better.loc[half, "predicted"] = better.loc[half, "target"]
        seeded[phase] = pd.concat(
            [predictions.assign(seed=0), better.assign(seed=1)], ignore_index=True
        )
    return seeded


@pytest.fixture
def seeded_all(seeded_predictions, phase_metrics, split, clip_manifest, crowd_labels):
    return stack_predictions(
        gather_model_predictions(phase_metrics, **seeded_predictions),
        predict_reference_baselines(split, clip_manifest, chance_seed=0),
        human_rater_predictions(crowd_labels, split),
    )


def test_a_row_of_several_seeds_gives_its_pooled_score_and_mean_and_sd_over_seeds(
    seeded_all, crowd_labels, reporting_params, phase_metrics, budgets
):
    scores = score_systems(seeded_all, crowd_labels, reporting_params["bootstrap"])
    video = seeded_all.loc[seeded_all["system"] == "video"]
    per_seed = [(rows["target"] == rows["predicted"]).mean() for _, rows in video.groupby("seed")]
    assert per_seed[1] > per_seed[0]
    row = scores.set_index("system").loc["video"]
    assert row["seeds"] == 2 and row["test_clips"] == video["clip_id"].nunique()
    assert row["accuracy"] == pytest.approx(np.mean(per_seed))  # the seeds pooled
    assert row["accuracy_seed_mean"] == pytest.approx(np.mean(per_seed))
    assert row["accuracy_seed_sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert row["accuracy_low"] < row["accuracy"] < row["accuracy_high"]
    humans = scores.loc[scores["kind"] == "human"]
    assert (humans["seeds"] == 0).all() and humans["accuracy_seed_mean"].isna().all()

    table, markdown = format_comparison_table(
        scores,
        phase_metrics,
        bootstrap=reporting_params["bootstrap"],
        data_label=DEMO_LABEL,
        protocol=SINGLE_SPLIT,
        fold_scores=score_folds(seeded_all),
        paired=compare_pairs(seeded_all, reporting_params["bootstrap"], PAIRED),
        budgets=budgets,
    )
    by_system = table.set_index("system")
    mean, sd = np.mean(per_seed), np.std(per_seed, ddof=1)
    assert by_system.loc["video", "accuracy_over_seeds"] == f"{mean:.3f} ± {sd:.3f}"
    assert INTERVAL.match(by_system.loc["video", "accuracy"])
    assert by_system.loc["human raters (face)", "accuracy_over_seeds"] == "—"
    assert "pools its 2 seeds" in markdown and "matched on clip and seed" in markdown


def test_paired_rows_match_clip_and_seed_and_give_seedless_rows_to_every_seed():
    def rows(system, kind, seed, predicted, weight=1.0):
        return pd.DataFrame(
            {
                "system": system,
                "kind": kind,
                "clip_id": ["c1", "c2", "c3", "c4"],
                "actor": [1, 1, 2, 2],
                "target": 0,
                "predicted": predicted,
                "weight": weight,
                "seed": pd.array([seed] * 4, dtype="Int64"),
            }
        )

    predictions = pd.concat(
        [
            rows("A", "model", 0, [0, 0, 0, 1]),
            rows("A", "model", 1, [0, 1, 1, 1]),
            rows("B", "model", 0, [1, 1, 1, 1]),
            rows("B", "model", 1, [0, 0, 1, 1]),
            # Human raters: two responses per clip, the first right on c1 and c2 only.
            rows("H", "human", None, [0, 0, 1, 1], 1.0),
            rows("H", "human", None, [1, 0, 1, 1], 1.0),
        ],
        ignore_index=True,
    )
    correctness = _correctness(predictions)
    pairs = _paired_rows(correctness, "A", "B")
    assert list(zip(pairs["clip_id"], pairs["seed"], strict=True)) == [
        (clip, seed) for clip in ("c1", "c2", "c3", "c4") for seed in (0, 1)
    ]
    # Seed i of A against seed i of B, clip by clip.
    assert list(pairs["a"]) == [1, 1, 1, 0, 1, 0, 0, 0]
    assert list(pairs["b"]) == [0, 1, 0, 1, 0, 0, 0, 0]
    with_humans = _paired_rows(correctness, "A", "H")
    assert list(with_humans["seed"]) == [0, 1] * 4  # each seed against the same human rows
    assert list(with_humans["b"]) == [0.5, 0.5, 1, 1, 0, 0, 0, 0]

    bootstrap = {"n_boot": 200, "seed": 0, "confidence": 0.95, "unit": "clip"}
    table = compare_pairs(
        predictions, bootstrap, {**PAIRED, "pairs": [["A", "B"], ["A", "H"]]}
    ).set_index("system_b")
    # Both seeds of a clip are one unit: four clips, tested by sign flips of their sums.
    assert (table["clips"] == 4).all() and (table["seeds"] == 2).all()
    assert (table["units"] == 4).all() and (table["test"] == "exact sign-flip").all()
    assert table.loc["B", "accuracy_a"] == pytest.approx(4 / 8)
    assert table.loc["B", "accuracy_b"] == pytest.approx(2 / 8)
    assert table.loc["H", "accuracy_b"] == pytest.approx(3 / 8)
