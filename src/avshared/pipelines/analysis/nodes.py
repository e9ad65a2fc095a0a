"""Nodes of the analysis template, which runs once per two-modality phase (bimodal, baseline, ...),
and of the shared-versus-separate comparison beside the report.

Each node hands the catalog's datasets to the analysis library (``avshared.analysis``, whose
docstring shows the steps) and labels what comes back with the phase, the fold analysed and the
data it was trained on. ``analysed_inputs``, the one place that knows how a phase's trained model
and its test clips are found, loads them once per phase into memory (``AnalysedInputs``, never
written); the nodes that run the model (the embeddings, the attention shares, the rollouts) read
them from there, and after them only the embeddings and small tables travel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from avshared.analysis.alignment import alignment_comparison, alignment_table
from avshared.analysis.attention import has_joint_encoder
from avshared.analysis.disagreement import (
    pair_similarity,
    similarity_disagreement_correlation,
    voice_face_disagreement,
)
from avshared.analysis.figures import (
    disagreement_figure,
    embedding_map_figure,
    rollout_figure,
    shares_by_layer_figure,
)
from avshared.analysis.projection import embedding_map
from avshared.analysis.representations import ClipEmbeddings, clip_embeddings
from avshared.analysis.rollout import classifier_rollout
from avshared.analysis.selection import drawn_clips
from avshared.analysis.shares import attention_shares, clip_facts, shares_by_group
from avshared.features.store import FeatureStore
from avshared.training import folds
from avshared.training.data import select_clips_with_features
from avshared.training.module import spectrogram_standardiser
from avshared.training.phase import CONDITIONS, load_trained_model

#: What an analysed clip is described by (``analysed_clips``).
CLIP_COLUMNS: tuple[str, ...] = ("clip_id", "actor", "emotion", "level", "fold")


# ---------------------------------------------------------------- the model and its test clips
def analysed_model(
    model_weights: Mapping[str, Tensor], training_summary: Mapping[str, Any]
) -> tuple[nn.Module, Mapping[str, Any], int]:
    """The trained model the analysis looks at, the summary it was trained with (its spectrogram
    statistics) and its fold.

    A single split and one seed give one model. With a grid of cells (actor k-fold, several
    seeds) every cell trained its own model, tested on its fold's actors: the analysis takes the
    first cell's (lowest fold, then seed), one encoder on clips it never saw, rather than mixing
    the geometry of several encoders.
    """
    if "per_cell" not in training_summary:
        model = load_trained_model(model_weights, training_summary)
        return model, training_summary, int(training_summary.get("fold", 0))
    fold, seed = min((int(s["fold"]), int(s["seed"])) for s in training_summary["per_cell"])
    summary = folds.summary_of_cell(training_summary, fold, seed)
    return folds.load_fold_model(model_weights, training_summary, fold, seed), summary, fold


@dataclass(frozen=True)
class AnalysedInputs:
    """A phase's model and the test clips it is analysed on, as the model takes them.

    summary: the training summary of the model analysed (a grid's first cell's): its ``phase``,
    ``model_kind`` and ``data_source``; clips: one row per clip (``CLIP_COLUMNS``), sorted by clip
    id; audio: (n, 1, n_mels, T) spectrograms standardised as in training; video: (n, F, 3, H, W)
    uint8 frames.
    """

    model: nn.Module
    summary: Mapping[str, Any]
    clips: pd.DataFrame
    audio: Tensor
    video: Tensor


def analysed_inputs(
    *,
    model_weights: Mapping[str, Tensor],
    training_summary: Mapping[str, Any],
    targets: pd.DataFrame,
    log_mel_spectrograms: FeatureStore,
    face_frames: FeatureStore,
    clips: Mapping[str, Any],
) -> AnalysedInputs:
    """The phase's model (``analysed_model``, on a GPU when there is one) and its fold's test clips
    that have both features, at most ``clips["max_clips"]`` of them (a seeded sample): loaded once
    per phase, for every node that runs the model."""
    model, summary, fold = analysed_model(model_weights, training_summary)
    test = targets.loc[(targets["fold"] == fold) & (targets["split"] == "test")]
    test, _ = select_clips_with_features(test, [log_mel_spectrograms, face_frames])
    if test.empty:
        raise ValueError(
            f"phase {training_summary['phase']!r} has no test clips of fold {fold} with both "
            "spectrograms and face frames: check its targets and the features report"
        )
    test = test.sort_values("clip_id", ignore_index=True)
    if clips["max_clips"] is not None and len(test) > clips["max_clips"]:
        chosen = np.random.default_rng(clips["seed"]).choice(
            len(test), clips["max_clips"], replace=False
        )
        test = test.iloc[np.sort(chosen)].reset_index(drop=True)
    ids = test["clip_id"].tolist()
    mean, std = spectrogram_standardiser(summary["spectrogram_stats"])
    audio = torch.from_numpy(
        np.stack([log_mel_spectrograms.get(c) for c in ids]).astype(np.float32)
    )
    video = torch.from_numpy(np.stack([face_frames.get(c) for c in ids]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return AnalysedInputs(
        model=model.to(device),
        summary=summary,
        clips=test.assign(fold=fold).loc[:, list(CLIP_COLUMNS)],
        audio=(audio - mean) / std,
        video=video,
    )


def _with_joint_encoder(training_summary: Mapping[str, Any]) -> None:
    """Refuse a model whose senses do not attend to each other in one encoder, saying what to
    change."""
    kind, phase = training_summary["model_kind"], training_summary["phase"]
    if not has_joint_encoder(kind):
        raise ValueError(
            f"phase {phase!r} was trained as a {kind!r} model, whose senses do not attend to each "
            "other in one encoder: there is no cross-modal attention to measure "
            "(analysis.attention.has_joint_encoder). The analysis pipeline chose its "
            "attention phases from the model kinds in conf/ (Kedro builds pipelines before it "
            f"reads --params): set training.phases.{phase}.model.kind in "
            "conf/local/parameters_training.yml rather than with --params"
        )


def _labelled(table: pd.DataFrame, training_summary: Mapping[str, Any], fold: int) -> pd.DataFrame:
    """``table`` with the phase, the fold analysed and the data (demo | crema-d) in front."""
    labels = {
        "phase": training_summary["phase"],
        "fold": fold,
        "data": training_summary["data_source"],
    }
    return pd.concat([pd.DataFrame(labels, index=table.index), table], axis=1)


def _is_demo(training_summary: Mapping[str, Any]) -> bool:
    return training_summary["data_source"] == "demo"


# ---------------------------------------------------------------- embeddings and alignment
def embed_test_clips(
    inputs: AnalysedInputs, clips: Mapping[str, Any], alignment: Mapping[str, Any]
) -> tuple[ClipEmbeddings, pd.DataFrame]:
    """Each test clip's audio-only, video-only and audio-visual embeddings (pooled and per layer),
    and the clips they belong to (``CLIP_COLUMNS``, in the embeddings' order)."""
    embeddings = clip_embeddings(
        inputs.model,
        inputs.audio,
        inputs.video,
        batch_size=clips["batch_size"],
        pooling=alignment["pooling"],
    )
    return embeddings, inputs.clips


def measure_alignment(
    clip_embeddings: ClipEmbeddings,
    analysed_clips: pd.DataFrame,
    training_summary: dict[str, Any],
    alignment: dict[str, Any],
    bootstrap: dict[str, Any],
) -> pd.DataFrame:
    """Cross-modal retrieval (recall@1, @5, median rank), same-emotion retrieval and linear CKA per
    layer, each with its bootstrap interval and chance level (``alignment.alignment_table``)."""
    table = alignment_table(
        clip_embeddings,
        analysed_clips["emotion"].tolist(),
        k=alignment["same_emotion_k"],
        n_boot=bootstrap["n_boot"],
        cka_boot=bootstrap["cka_n_boot"],
        seed=bootstrap["seed"],
        confidence=bootstrap["confidence"],
    )
    return _labelled(table, training_summary, int(analysed_clips["fold"].iloc[0]))


def compare_shared_and_separate(
    *,
    shared_embeddings: ClipEmbeddings,
    shared_clips: pd.DataFrame,
    shared_summary: dict[str, Any],
    separate_embeddings: ClipEmbeddings,
    separate_clips: pd.DataFrame,
    separate_summary: dict[str, Any],
    alignment: dict[str, Any],
    bootstrap: dict[str, Any],
) -> pd.DataFrame:
    """The shared-encoder model (A) minus the separate-encoders model (B) on the test clips both
    were analysed on: each alignment metric's paired difference, interval and Holm-adjusted
    p-value (``alignment.alignment_comparison``), with ``model_a`` and ``model_b`` in front."""
    depths = (shared_embeddings.audio_layers.shape[0], separate_embeddings.audio_layers.shape[0])
    if depths[0] != depths[1]:
        raise ValueError(
            f"{shared_summary['phase']} has {depths[0]} encoder layers and "
            f"{separate_summary['phase']} {depths[1]}: CKA is compared layer by layer, so give "
            "both phases the same model.depth in parameters_training.yml"
        )
    position = {clip: row for row, clip in enumerate(separate_clips["clip_id"])}
    common = [row for row, clip in enumerate(shared_clips["clip_id"]) if clip in position]
    if len(common) < 3:
        raise ValueError(
            f"{shared_summary['phase']} and {separate_summary['phase']} share only {len(common)} "
            "analysed test clips: were they trained on the same split?"
        )
    in_separate = [position[clip] for clip in shared_clips["clip_id"].iloc[common]]
    table = alignment_comparison(
        shared_embeddings.select(common),
        separate_embeddings.select(in_separate),
        shared_clips["emotion"].iloc[common].tolist(),
        k=alignment["same_emotion_k"],
        n_boot=bootstrap["n_boot"],
        cka_boot=bootstrap["cka_n_boot"],
        seed=bootstrap["seed"],
        confidence=bootstrap["confidence"],
    )
    labels = {
        "model_a": shared_summary["phase"],
        "model_b": separate_summary["phase"],
        "fold": int(shared_clips["fold"].iloc[0]),
        "data": shared_summary["data_source"],
    }
    return pd.concat([pd.DataFrame(labels, index=table.index), table], axis=1)


# ---------------------------------------------------------------- the 2-D map
def map_embeddings(
    clip_embeddings: ClipEmbeddings, analysed_clips: pd.DataFrame, projection: dict[str, Any]
) -> pd.DataFrame:
    """t-SNE coordinates of every clip's audio, video and audio-visual embeddings, one map."""
    return embedding_map(
        clip_embeddings,
        analysed_clips["clip_id"].tolist(),
        analysed_clips["emotion"].tolist(),
        seed=projection["seed"],
        perplexity=projection["perplexity"],
        max_iter=projection["max_iter"],
    )


def _map_title(training_summary: Mapping[str, Any]) -> str:
    return f"{training_summary['phase']} ({training_summary['model_kind']})"


def plot_embedding_map(embedding_map: pd.DataFrame, training_summary: dict[str, Any]) -> Figure:
    """The phase's map: colour = emotion, marker = sense."""
    return embedding_map_figure(
        {_map_title(training_summary): embedding_map}, demo=_is_demo(training_summary)
    )


def plot_shared_and_separate_maps(
    shared_map: pd.DataFrame,
    shared_summary: dict[str, Any],
    separate_map: pd.DataFrame,
    separate_summary: dict[str, Any],
) -> Figure:
    """The shared-encoder and separate-encoders maps side by side."""
    return embedding_map_figure(
        {_map_title(shared_summary): shared_map, _map_title(separate_summary): separate_map},
        demo=_is_demo(shared_summary) or _is_demo(separate_summary),
    )


# ---------------------------------------------------------------- crowd-vote disagreement
def correlate_vote_disagreement(
    clip_embeddings: ClipEmbeddings,
    analysed_clips: pd.DataFrame,
    crowd_labels: pd.DataFrame,
    training_summary: dict[str, Any],
    bootstrap: dict[str, Any],
) -> tuple[dict[str, Any], Figure]:
    """Spearman's rho between each clip's audio/video embedding similarity and how differently
    the crowd voted from the voice alone and from the face alone, with its interval; and the
    scatter of the clips with both."""
    clip_ids = analysed_clips["clip_id"].tolist()
    similarity = pair_similarity(clip_embeddings.audio, clip_embeddings.video)
    disagreement = voice_face_disagreement(crowd_labels)
    correlation = similarity_disagreement_correlation(
        similarity,
        clip_ids,
        disagreement,
        n_boot=bootstrap["n_boot"],
        seed=bootstrap["seed"],
        confidence=bootstrap["confidence"],
    )
    points = pd.DataFrame({"similarity": similarity}, index=pd.Index(clip_ids)).join(
        disagreement, how="inner"
    )
    figure = disagreement_figure(
        points["similarity"].to_numpy(),
        points["disagreement"].to_numpy(),
        correlation,
        demo=_is_demo(training_summary),
        model=training_summary["phase"],
    )
    summary = {
        "phase": training_summary["phase"],
        "fold": int(analysed_clips["fold"].iloc[0]),
        "data": training_summary["data_source"],
        "similarity": "cosine of the clip's audio-only and video-only embeddings",
        "disagreement": "total variation between the clip's voice and face vote shares",
        "spearman_rho": correlation.rho,
        "low": correlation.low,
        "high": correlation.high,
        "confidence": bootstrap["confidence"],
        "p_value": correlation.p_value,
        "clips": correlation.clips,
    }
    return summary, figure


# ---------------------------------------------------------------- cross-modal attention
def measure_attention_shares(inputs: AnalysedInputs, clips: Mapping[str, Any]) -> pd.DataFrame:
    """Per test clip, layer and head, the share of each sense's attention that goes to the other
    sense, to itself and to [CLS], with the share token counts alone would give
    (``shares.attention_shares``)."""
    _with_joint_encoder(inputs.summary)
    return attention_shares(
        inputs.model,
        inputs.audio,
        inputs.video,
        inputs.clips["clip_id"].tolist(),
        batch_size=clips["batch_size"],
    ).assign(fold=int(inputs.clips["fold"].iloc[0]))


def summarise_attention_shares(
    clip_attention_shares: pd.DataFrame, training_summary: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mean shares over the test clips by layer and head, and by acted emotion, level and
    layer (heads averaged); every clip counts once."""
    fold = int(clip_attention_shares["fold"].iloc[0])
    facts = clip_facts(clip_attention_shares["clip_id"].unique().tolist())
    by_head = shares_by_group(clip_attention_shares, per_head=True)
    by_emotion = shares_by_group(
        clip_attention_shares, facts, by=["emotion", "level"], per_head=False
    )
    return _labelled(by_head, training_summary, fold), _labelled(by_emotion, training_summary, fold)


def plot_attention_by_layer(
    clip_attention_shares: pd.DataFrame, training_summary: dict[str, Any]
) -> Figure:
    """Audio→video and video→audio attention shares by layer, against their token shares."""
    by_layer = shares_by_group(clip_attention_shares, per_head=False)
    return shares_by_layer_figure(
        by_layer, demo=_is_demo(training_summary), model=training_summary["phase"]
    )


def draw_attention_rollouts(
    inputs: AnalysedInputs, test_predictions: pd.DataFrame, rollout: Mapping[str, Any]
) -> dict[str, Figure]:
    """One figure per drawn clip (``selection.drawn_clips``: per emotion the first test clips by id
    the phase got right, then wrong, in its audio-visual test predictions), its spectrogram and
    frames under their attention rollout: ``{"<emotion>_<outcome>_<clip_id>.png": figure}``."""
    _with_joint_encoder(inputs.summary)
    fold = int(inputs.clips["fold"].iloc[0])
    rows_of = {clip: row for row, clip in enumerate(inputs.clips["clip_id"])}
    predicted = test_predictions.loc[
        (test_predictions["condition"] == CONDITIONS[("audio", "video")])
        & (test_predictions["fold"] == fold)
        & test_predictions["clip_id"].isin(rows_of)
    ]
    chosen = drawn_clips(
        predicted.rename(columns={"target": "truth", "predicted": "prediction"}),
        per_outcome=rollout["clips_per_outcome"],
    )
    rows = [rows_of[clip] for clip in chosen["clip_id"]]
    maps = classifier_rollout(inputs.model, inputs.audio[rows], inputs.video[rows])
    return {
        f"{clip.truth}_{clip.outcome}_{clip.clip_id}.png": rollout_figure(
            inputs.audio[row].numpy(),
            inputs.video[row].numpy(),
            maps.audio[index],
            maps.video[index],
            truth=clip.truth,
            prediction=clip.prediction,
            clip_id=clip.clip_id,
            demo=_is_demo(inputs.summary),
        )
        for index, (row, clip) in enumerate(zip(rows, chosen.itertuples(), strict=True))
    }
