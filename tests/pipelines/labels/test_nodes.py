"""Tests of the labels pipeline's nodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avshared.crema_d import RATING_MODALITIES, SUMMARY_TABLE_FILE, TABULATED_VOTES_FILE
from avshared.crowd_ratings import (
    R_CSV_LOAD_ARGS,
    SUMMARY_PREFIXES,
    SUMMARY_TABLE_LOAD_ARGS,
    tabulate_votes,
)
from avshared.pipelines.labels.nodes import (
    COUNT_COLUMNS,
    CROWD_LABEL_COLUMNS,
    PROBABILITY_COLUMNS,
    build_crowd_labels,
    select_tabulated_votes,
    summarise_human_accuracy,
)


def test_select_tabulated_votes_prefers_the_individual_ratings(synthetic_finished_responses):
    from_file = tabulate_votes(synthetic_finished_responses).head(3)
    votes, source = select_tabulated_votes(synthetic_finished_responses, from_file, "root")
    assert source == "finishedResponses"
    pd.testing.assert_frame_equal(votes, tabulate_votes(synthetic_finished_responses))

    votes, source = select_tabulated_votes(None, from_file, "root")
    assert source == "tabulatedVotes"
    assert votes is from_file


def test_select_tabulated_votes_says_what_to_do_without_ratings():
    with pytest.raises(FileNotFoundError, match=r"crema_d_root='/nowhere'.*demo_data"):
        select_tabulated_votes(None, None, "/nowhere")
    with pytest.raises(ValueError, match="lacks the columns \\['fileName', 'meanEmoResp'"):
        select_tabulated_votes(None, pd.DataFrame({c: [1] for c in "ADFHNS"}), "/root")


def test_build_crowd_labels_one_row_per_clip_and_modality(synthetic_finished_responses):
    tabulated = tabulate_votes(synthetic_finished_responses)
    labels = build_crowd_labels(tabulated, "finishedResponses", soft_label_pseudocount=0.0)

    assert list(labels.columns) == list(CROWD_LABEL_COLUMNS)
    assert len(labels) == 24 * 3
    assert labels["modality"].unique().tolist() == list(RATING_MODALITIES)
    assert (labels["clip_id"].str[9:12] == labels["acted_emotion"]).all()
    assert (labels[list(COUNT_COLUMNS)].sum(axis=1) == labels["num_responses"]).all()
    np.testing.assert_allclose(labels[list(PROBABILITY_COLUMNS)].sum(axis=1), 1.0)
    np.testing.assert_allclose(
        labels[list(PROBABILITY_COLUMNS)].to_numpy(),
        labels[list(COUNT_COLUMNS)].to_numpy() / labels[["num_responses"]].to_numpy(),
    )
    assert (labels["source"] == "finishedResponses").all()

    ties = labels["majority_vote"].str.contains(":")
    assert ties.any() and (~ties).any()
    assert labels.loc[ties, "majority_emotion"].isna().all()
    untied = labels.loc[~ties]
    assert (untied["majority_vote"] == untied["majority_emotion"].str[0]).all()
    top_counts = labels[list(COUNT_COLUMNS)].max(axis=1)
    np.testing.assert_allclose(labels["agreement"], top_counts / labels["num_responses"])

    acted_counts = [row[f"count_{row['acted_emotion']}"] for _, row in labels.iterrows()]
    assert labels["num_correct"].tolist() == acted_counts
    # The 'steady' rater rated every voice clip at one level: no range, no normalised level.
    voice = labels["modality"] == "voice"
    assert labels.loc[voice, "mean_level_norm"].isna().all()
    assert labels.loc[~voice, "mean_level_norm"].between(0, 100).all()


def test_build_crowd_labels_smooths_the_soft_label_with_the_pseudocount():
    tabulated = pd.DataFrame(
        {
            "A": [3],
            "D": [1],
            "F": [0],
            "H": [0],
            "N": [0],
            "S": [0],
            "fileName": ["1001_DFA_ANG_XX"],
        },
        index=[100001],
    ).assign(meanEmoResp=50.0, meanEmoRespNorm=np.nan)
    labels = build_crowd_labels(tabulated, "tabulatedVotes", soft_label_pseudocount=1.0)
    np.testing.assert_allclose(
        labels.loc[0, list(PROBABILITY_COLUMNS)], [0.4, 0.2, 0.1, 0.1, 0.1, 0.1]
    )
    assert labels.loc[0, "majority_emotion"] == "ANG" and labels.loc[0, "num_correct"] == 3
    with pytest.raises(ValueError, match="soft_label_pseudocount must be >= 0"):
        build_crowd_labels(tabulated, "tabulatedVotes", soft_label_pseudocount=-1.0)


def test_build_crowd_labels_skips_practice_clips(synthetic_finished_responses, caplog):
    practice = synthetic_finished_responses.head(2).assign(clipNum=7443, clipName="ANG_HI_practice")
    tabulated = tabulate_votes(pd.concat([synthetic_finished_responses, practice]))
    labels = build_crowd_labels(tabulated, "finishedResponses", soft_label_pseudocount=0.0)
    assert "ANG_HI_practice" not in set(labels["clip_id"])
    assert len(labels) == 24 * 3
    assert "ANG_HI_practice" in caplog.text


def test_summarise_human_accuracy_pools_responses(synthetic_finished_responses):
    labels = build_crowd_labels(
        tabulate_votes(synthetic_finished_responses),
        "finishedResponses",
        soft_label_pseudocount=0.0,
    )
    report = summarise_human_accuracy(labels)
    voice = labels[labels["modality"] == "voice"]
    assert report["overall"]["voice"] == voice["num_correct"].sum() / voice["num_responses"].sum()
    assert report["responses"]["voice"] == {
        "correct": int(voice["num_correct"].sum()),
        "total": int(voice["num_responses"].sum()),
        "clips": 24,
    }
    sad_face = labels[(labels["modality"] == "face") & (labels["acted_emotion"] == "SAD")]
    assert report["per_emotion"]["face"]["SAD"] == (
        sad_face["num_correct"].sum() / sad_face["num_responses"].sum()
    )
    assert list(report["overall"]) == list(RATING_MODALITIES)
    assert report["source"] == "finishedResponses"


# ---- the real CREMA-D ratings (tabulatedVotes.csv: the real root has no finishedResponses.csv)


@pytest.fixture(scope="module")
def real_crowd_labels(real_crema_d_metadata) -> pd.DataFrame:
    tabulated = pd.read_csv(real_crema_d_metadata / TABULATED_VOTES_FILE, **R_CSV_LOAD_ARGS)
    votes, source = select_tabulated_votes(None, tabulated, str(real_crema_d_metadata))
    return build_crowd_labels(votes, source, soft_label_pseudocount=0.0)


def test_real_majority_votes_equal_the_summary_table(real_crowd_labels, real_crema_d_metadata):
    summary = pd.read_csv(real_crema_d_metadata / SUMMARY_TABLE_FILE, **SUMMARY_TABLE_LOAD_ARGS)
    for modality, prefix in SUMMARY_PREFIXES.items():
        ours = real_crowd_labels[real_crowd_labels["modality"] == modality].set_index("clip_id")
        assert len(ours) == 7442
        expected = summary.set_index("FileName")[f"{prefix}Vote"]
        pd.testing.assert_series_equal(
            ours["majority_vote"].reindex(expected.index), expected, check_names=False
        )


def test_real_human_accuracy_matches_the_published_figures(real_crowd_labels):
    report = summarise_human_accuracy(real_crowd_labels)
    rounded = {modality: round(value, 3) for modality, value in report["overall"].items()}
    assert rounded == {"voice": 0.400, "face": 0.574, "audiovisual": 0.631}
    assert report["responses"]["voice"] == {"correct": 27429, "total": 68568, "clips": 7442}
    assert report["source"] == "tabulatedVotes"
