"""The analysis nodes on two tiny trained phases: a shared-encoder bimodal model and the
separate-encoders baseline, with the catalog's datasets as the training template leaves them."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from avshared.analysis.figures import DEMO_LABEL
from avshared.analysis.retrieval import recall_at, retrieval_ranks
from avshared.analysis.shares import SHARE_COLUMNS
from avshared.crema_d import EMOTIONS
from avshared.models import ModelConfig, build_model
from avshared.pipelines.analysis import nodes


def _inputs_of(phase, corpus, parameters: dict[str, Any]) -> dict[str, Any]:
    """The keyword inputs of the node that loads the model and the test clips."""
    return {
        "model_weights": phase.model_weights,
        "training_summary": phase.training_summary,
        "targets": phase.targets,
        "log_mel_spectrograms": corpus.log_mel_spectrograms,
        "face_frames": corpus.face_frames,
        "clips": parameters["clips"],
    }


def _titles(figure) -> str:
    texts = [figure.get_suptitle()] + [axes.get_title() for axes in figure.axes]
    return " | ".join(texts)


@pytest.fixture(scope="module")
def analysed(trained_phases, analysis_corpus, analysis_parameters) -> dict[str, Any]:
    """Each phase's model and test clips (analysed_inputs)."""
    return {
        name: nodes.analysed_inputs(**_inputs_of(phase, analysis_corpus, analysis_parameters))
        for name, phase in trained_phases.items()
    }


@pytest.fixture(scope="module")
def embedded(analysed, analysis_parameters) -> dict[str, tuple]:
    """Each phase's embeddings and analysed clips (embed_test_clips)."""
    return {
        name: nodes.embed_test_clips(
            inputs, analysis_parameters["clips"], analysis_parameters["alignment"]
        )
        for name, inputs in analysed.items()
    }


def test_the_analysed_model_and_clips_are_the_phases_own_test_clips_as_trained(
    trained_phases, analysis_corpus, analysed
):
    phase = trained_phases["bimodal"]

    inputs = analysed["bimodal"]

    test = phase.targets.loc[phase.targets["split"] == "test"].sort_values("clip_id")
    assert inputs.clips["clip_id"].tolist() == test["clip_id"].tolist()
    assert set(inputs.clips["fold"]) == {0}
    assert inputs.summary["phase"] == "bimodal" and inputs.summary["model_kind"] == "shared"
    first = test["clip_id"].iloc[0]
    stats = phase.training_summary["spectrogram_stats"]
    raw = analysis_corpus.log_mel_spectrograms.get(first).astype(np.float32)
    expected = (raw - np.reshape(stats["mean"], (1, -1, 1))) / np.reshape(stats["std"], (1, -1, 1))
    np.testing.assert_allclose(inputs.audio[0].numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(inputs.video[0].numpy(), analysis_corpus.face_frames.get(first))
    # The model is the trained one: the same predictions as the phase's evaluation.
    device = next(inputs.model.parameters()).device  # a GPU when there is one
    with torch.no_grad():
        logits = inputs.model(inputs.audio.to(device), inputs.video.to(device))
    probabilities = logits.softmax(-1).cpu().numpy()
    evaluated = phase.test_predictions.loc[phase.test_predictions["condition"] == "audiovisual"]
    evaluated = evaluated.set_index("clip_id").loc[inputs.clips["clip_id"]]
    np.testing.assert_allclose(probabilities[:, 0], evaluated["p_ANG"], atol=1e-4)


def test_at_most_max_clips_are_analysed_the_same_ones_every_time(
    trained_phases, analysis_corpus, analysis_parameters
):
    parameters = analysis_parameters | {"clips": analysis_parameters["clips"] | {"max_clips": 7}}
    inputs = _inputs_of(trained_phases["bimodal"], analysis_corpus, parameters)

    first = nodes.analysed_inputs(**inputs).clips["clip_id"].tolist()
    again = nodes.analysed_inputs(**inputs).clips["clip_id"].tolist()

    assert len(first) == 7 and first == again == sorted(first)


def test_under_actor_kfold_the_first_folds_model_statistics_and_test_clips_are_analysed(
    trained_phases, analysis_corpus, analysis_parameters
):
    """A k-fold phase stores one model per fold (``fold_<k>.`` prefixes of one state_dict), one
    training summary per fold (each with its own log-mel statistics) and targets per fold."""
    phase = trained_phases["bimodal"]
    summary = phase.training_summary
    models = {}
    for fold in (1, 0):
        torch.manual_seed(fold)
        config = ModelConfig(**summary["model_config"])
        models[f"fold_{fold}"] = nn.ModuleDict(
            {"seed_0": build_model("shared", ["audio", "video"], config)}
        )
    n_mels = len(summary["spectrogram_stats"]["mean"])
    per_cell = [
        {
            **summary,
            "fold": fold,
            "seed": 0,
            "spectrogram_stats": {"mean": [-fold] * n_mels, "std": [2.0]},
        }
        for fold in (1, 0)
    ]
    # Fold 1 tests other clips: the first fold's validation clips.
    swapped = phase.targets["split"].map({"test": "val", "val": "test", "train": "train"})
    targets = pd.concat([phase.targets.assign(fold=1, split=swapped), phase.targets])
    inputs = _inputs_of(phase, analysis_corpus, analysis_parameters) | {
        "model_weights": nn.ModuleDict(models).state_dict(),
        "training_summary": {**summary, "folds": 2, "per_cell": per_cell},
        "targets": targets,
    }

    analysed = nodes.analysed_inputs(**inputs)

    for name, tensor in analysed.model.state_dict().items():
        torch.testing.assert_close(tensor.cpu(), models["fold_0"]["seed_0"].state_dict()[name])
    test = phase.targets.loc[phase.targets["split"] == "test", "clip_id"]
    assert analysed.clips["clip_id"].tolist() == sorted(test)
    assert set(analysed.clips["fold"]) == {0}
    assert analysed.summary["fold"] == 0 and analysed.summary["spectrogram_stats"]["std"] == [2.0]
    first = analysis_corpus.log_mel_spectrograms.get(test.min()).astype(np.float32)
    np.testing.assert_allclose(analysed.audio[0].numpy(), first / 2.0, rtol=1e-5, atol=1e-4)


def test_alignment_has_retrieval_same_emotion_and_cka_per_layer_labelled_with_the_phase(
    embedded, trained_phases, analysis_parameters
):
    embeddings, clips = embedded["bimodal"]

    table = nodes.measure_alignment(
        embeddings,
        clips,
        trained_phases["bimodal"].training_summary,
        analysis_parameters["alignment"],
        analysis_parameters["bootstrap"],
    )

    labels = table[["phase", "fold", "data"]].drop_duplicates()
    assert labels.values.tolist() == [["bimodal", 0, "demo"]]
    k = analysis_parameters["alignment"]["same_emotion_k"]
    metrics = table["metric"].tolist()
    assert metrics[:4] == ["recall@1", "recall@5", "median_rank", f"same_emotion@{k}"]
    assert table.loc[table["metric"] == "cka", "layer"].tolist() == [0, 1]  # the model's 2 layers
    assert metrics[-1] == "cka_pooled"
    assert (table["clips"] == len(clips)).all()
    assert (table["low"] <= table["value"]).all() and (table["value"] <= table["high"]).all()
    chance = table.set_index("metric")["chance"]
    assert chance["recall@1"] == pytest.approx(1 / len(clips))


def test_shared_minus_separate_on_the_clips_both_were_analysed_on(
    embedded, trained_phases, analysis_parameters
):
    (shared, shared_clips), (separate, separate_clips) = embedded["bimodal"], embedded["baseline"]
    # The baseline analysed in another order and without its first clip: pairs meet by clip id.
    order = np.arange(len(separate_clips))[::-1][:-1]
    arguments = {
        "shared_embeddings": shared,
        "shared_clips": shared_clips,
        "shared_summary": trained_phases["bimodal"].training_summary,
        "separate_embeddings": separate.select(order),
        "separate_clips": separate_clips.iloc[order].reset_index(drop=True),
        "separate_summary": trained_phases["baseline"].training_summary,
        "alignment": analysis_parameters["alignment"],
        "bootstrap": analysis_parameters["bootstrap"],
    }

    table = nodes.compare_shared_and_separate(**arguments)

    assert set(table["model_a"]) == {"bimodal"} and set(table["model_b"]) == {"baseline"}
    assert set(table["clips"]) == {len(shared_clips) - 1}
    recall = table.set_index("metric").loc["recall@1"]
    # The shared model's recall on the common clips only (the baseline lacks the first clip).
    common = shared.select(np.arange(1, len(shared_clips)))
    own = recall_at(retrieval_ranks(common.audio, common.video), 1).mean()
    assert recall["value_a"] == pytest.approx(own)
    assert table["p_holm"].between(0, 1).all()

    shallow = replace(
        separate, audio_layers=separate.audio_layers[:1], video_layers=separate.video_layers[:1]
    )
    with pytest.raises(ValueError, match=r"same model\.depth"):
        nodes.compare_shared_and_separate(
            **arguments | {"separate_embeddings": shallow, "separate_clips": separate_clips}
        )


def test_the_map_places_each_clips_three_senses_and_its_figure_says_demo(
    embedded, trained_phases, analysis_parameters
):
    embeddings, clips = embedded["bimodal"]
    summary = trained_phases["bimodal"].training_summary

    coordinates = nodes.map_embeddings(embeddings, clips, analysis_parameters["projection"])
    figure = nodes.plot_embedding_map(coordinates, summary)
    side_by_side = nodes.plot_shared_and_separate_maps(
        coordinates, summary, coordinates, trained_phases["baseline"].training_summary
    )

    for sense in ("audio", "video", "audiovisual"):
        points = coordinates.loc[coordinates["sense"] == sense]
        assert points["clip_id"].tolist() == clips["clip_id"].tolist(), sense
        assert np.isfinite(points[["x", "y"]].to_numpy()).all()
    assert DEMO_LABEL in _titles(figure)
    assert "bimodal (shared)" in _titles(side_by_side) and "baseline (separate)" in _titles(
        side_by_side
    )


def test_the_disagreement_correlation_uses_the_clips_rated_from_voice_and_face(
    embedded, trained_phases, crowd_votes, analysis_parameters
):
    embeddings, clips = embedded["baseline"]
    # One test clip was never rated from the face: it has no disagreement.
    unrated = (crowd_votes["clip_id"] == clips["clip_id"].iloc[0]) & (
        crowd_votes["modality"] == "face"
    )
    votes = crowd_votes.loc[~unrated]

    summary, figure = nodes.correlate_vote_disagreement(
        embeddings,
        clips,
        votes,
        trained_phases["baseline"].training_summary,
        analysis_parameters["bootstrap"],
    )

    assert summary["clips"] == len(clips) - 1
    assert summary["phase"] == "baseline" and summary["data"] == "demo"
    assert -1 <= summary["low"] <= summary["spearman_rho"] <= summary["high"] <= 1
    assert 0 <= summary["p_value"] <= 1
    assert len(figure.axes[0].collections[0].get_offsets()) == len(clips) - 1
    assert DEMO_LABEL in _titles(figure)


def test_attention_shares_by_layer_and_head_and_by_emotion(
    trained_phases, analysed, analysis_parameters
):
    phase = trained_phases["bimodal"]
    per_clip = nodes.measure_attention_shares(analysed["bimodal"], analysis_parameters["clips"])

    by_head, by_emotion = nodes.summarise_attention_shares(per_clip, phase.training_summary)
    figure = nodes.plot_attention_by_layer(per_clip, phase.training_summary)

    clips = per_clip["clip_id"].nunique()
    assert clips == len(phase.targets.query("split == 'test'"))
    assert by_head[["layer", "head"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert (by_head["clips"] == clips).all()
    audio_rows = by_head[["audio_to_cls", "audio_to_audio", "audio_to_video"]].sum(axis=1)
    np.testing.assert_allclose(audio_rows, 1.0, rtol=1e-6)
    assert set(by_emotion["emotion"]) == set(EMOTIONS)
    assert by_emotion.groupby("layer")["clips"].sum().tolist() == [clips, clips]
    assert set(SHARE_COLUMNS) <= set(by_emotion.columns)
    assert (by_head["phase"] == "bimodal").all() and (by_emotion["data"] == "demo").all()
    assert DEMO_LABEL in _titles(figure) and "bimodal" in _titles(figure)


def test_a_separate_encoders_phase_has_no_attention_to_measure(analysed, analysis_parameters):
    with pytest.raises(ValueError, match=r"'separate' model.*training\.phases\.baseline\.model"):
        nodes.measure_attention_shares(analysed["baseline"], analysis_parameters["clips"])


def test_rollouts_draw_per_emotion_the_first_right_and_wrong_clips(
    trained_phases, analysed, analysis_parameters
):
    phase = trained_phases["bimodal"]

    figures = nodes.draw_attention_rollouts(
        analysed["bimodal"], phase.test_predictions, analysis_parameters["rollout"]
    )

    audiovisual = phase.test_predictions.query("condition == 'audiovisual'")
    expected = {}
    for row in audiovisual.sort_values("clip_id").itertuples():
        truth = EMOTIONS[row.target]
        outcome = "correct" if row.target == row.predicted else "wrong"
        expected.setdefault((truth, outcome), f"{truth}_{outcome}_{row.clip_id}.png")
    assert set(figures) == set(expected.values())
    for name, figure in figures.items():
        parts = re.fullmatch(r"([A-Z]{3})_(correct|wrong)_(.+)\.png", name)
        truth, outcome, clip_id = parts.groups()
        title = figure.get_suptitle()
        assert DEMO_LABEL in title and clip_id in title and f"truth {truth}" in title
        assert ("(right)" in title) == (outcome == "correct")
