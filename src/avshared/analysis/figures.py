"""The analysis figures, as matplotlib ``Figure`` objects (never saved here).

A pipeline hands them to kedro-datasets' ``matplotlib.MatplotlibDataset``. Figures are built with
``matplotlib.figure.Figure`` directly, not pyplot: no global state, no GUI backend, nothing left
open. Every title carries the data's provenance: ``demo=True`` puts "DEMO DATA" in it, so a figure
of the generated demo corpus cannot pass for a result.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from avshared.analysis.disagreement import Correlation
from avshared.analysis.projection import SENSES
from avshared.crema_d import EMOTIONS

DEMO_LABEL = "DEMO DATA"
#: One colour per emotion (matplotlib's tab10), one marker per sense.
EMOTION_COLOURS: dict[str, str] = dict(zip(EMOTIONS, [f"C{i}" for i in range(6)], strict=True))
SENSE_MARKERS: dict[str, str] = {"audio": "o", "video": "s", "audiovisual": "^"}


def titled(text: str, demo: bool) -> str:
    """``text``, prefixed with "DEMO DATA — " when the figure shows the demo corpus."""
    return f"{DEMO_LABEL} — {text}" if demo else text


def shares_by_layer_figure(summary: pd.DataFrame, *, demo: bool, model: str = "") -> Figure:
    """Cross-modal attention share by layer: audio→video and video→audio, with their token-count
    references (dashed).

    ``summary``: ``shares.shares_by_group(shares, per_head=False)`` (one row per layer). Layers are
    drawn 1-based.
    """
    if summary["layer"].duplicated().any():
        raise ValueError("one row per layer: summarise with shares_by_group(per_head=False)")
    summary = summary.sort_values("layer")
    layers = summary["layer"].to_numpy() + 1
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    for column, label, colour in (
        ("audio_to_video", "audio → video", "C0"),
        ("video_to_audio", "video → audio", "C1"),
    ):
        axes.plot(layers, summary[column], marker="o", color=colour, label=label)
    for column, label, colour in (
        ("uniform_video", "video's token share", "C0"),
        ("uniform_audio", "audio's token share", "C1"),
    ):
        axes.plot(layers, summary[column], linestyle="--", color=colour, label=label, alpha=0.6)
    axes.set_xlabel("layer")
    axes.set_ylabel("share of attention to the other sense")
    axes.set_xticks(layers)
    axes.set_ylim(0, 1)
    axes.legend(loc="best", fontsize="small")
    what = f"{model}: cross-modal attention by layer" if model else "cross-modal attention by layer"
    axes.set_title(titled(what, demo))
    return figure


def rollout_figure(
    spectrogram: np.ndarray,
    frames: np.ndarray,
    audio_heat: np.ndarray,
    video_heat: np.ndarray,
    *,
    truth: str,
    prediction: str,
    clip_id: str,
    demo: bool,
) -> Figure:
    """One clip: its log-mel spectrogram and face frames side by side, each under its rollout map.

    Args:
        spectrogram: (n_mels, T) or (1, n_mels, T).
        frames: (F, 3, H, W) uint8 or float in [0, 1].
        audio_heat: (n_mels, T), video_heat: (F, H, W), as ``rollout.classifier_rollout`` gives.
        truth, prediction, clip_id: for the title.

    The heat maps share one colour scale (from the smallest to the largest weight of either),
    drawn half transparent.
    """
    spectrogram = np.asarray(spectrogram).reshape(audio_heat.shape)
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        frames = frames / 255.0
    count = frames.shape[0]
    low = float(min(audio_heat.min(), video_heat.min()))
    top = float(max(audio_heat.max(), video_heat.max(), low + 1e-12))
    figure = Figure(figsize=(4 + 1.6 * count, 3.2), layout="constrained")
    grid = figure.add_gridspec(1, count + 1, width_ratios=[2.5, *[1] * count])
    audio_axes = figure.add_subplot(grid[0, 0])
    audio_axes.imshow(spectrogram, origin="lower", aspect="auto", cmap="gray")
    audio_axes.imshow(
        audio_heat, origin="lower", aspect="auto", cmap="inferno", alpha=0.5, vmin=low, vmax=top
    )
    audio_axes.set_xlabel("frame")
    audio_axes.set_ylabel("mel band")
    audio_axes.set_title("voice")
    for index in range(count):
        axes = figure.add_subplot(grid[0, index + 1])
        axes.imshow(np.clip(frames[index].transpose(1, 2, 0), 0, 1))
        axes.imshow(video_heat[index], cmap="inferno", alpha=0.5, vmin=low, vmax=top)
        axes.set_axis_off()
        axes.set_title(f"frame {index + 1}", fontsize="small")
    verdict = "right" if truth == prediction else "wrong"
    figure.suptitle(titled(f"{clip_id}: truth {truth}, predicted {prediction} ({verdict})", demo))
    return figure


def embedding_map_figure(maps: Mapping[str, pd.DataFrame], *, demo: bool) -> Figure:
    """The 2-D maps of two (or more) models side by side: colour = emotion, marker = sense.

    ``maps``: model name -> ``projection.embedding_map`` table. One scatter per (emotion, sense),
    so every point of the table is drawn exactly once.
    """
    figure = Figure(figsize=(5.5 * len(maps), 5), layout="constrained")
    for index, (model, table) in enumerate(maps.items()):
        axes = figure.add_subplot(1, len(maps), index + 1)
        for emotion in EMOTIONS:
            for sense in SENSES:
                points = table[(table["emotion"] == emotion) & (table["sense"] == sense)]
                if points.empty:
                    continue
                axes.scatter(
                    points["x"],
                    points["y"],
                    c=EMOTION_COLOURS[emotion],
                    marker=SENSE_MARKERS[sense],
                    s=14,
                    alpha=0.7,
                    label=f"{emotion} {sense}",
                )
        axes.set_title(model)
        axes.set_xticks([])
        axes.set_yticks([])
    # Legend entries not drawn on any axes: every scatter on an axes is a point of a table.
    handles = [
        Line2D([], [], color=colour, marker="o", linestyle="", label=emotion)
        for emotion, colour in EMOTION_COLOURS.items()
    ] + [
        Line2D([], [], color="gray", marker=marker, linestyle="", label=sense)
        for sense, marker in SENSE_MARKERS.items()
    ]
    figure.legend(handles=handles, loc="outside right center", fontsize="small")
    figure.suptitle(titled("embeddings of the test clips (t-SNE)", demo))
    return figure


def disagreement_figure(
    similarity: np.ndarray,
    disagreement: np.ndarray,
    correlation: Correlation,
    *,
    demo: bool,
    model: str = "",
) -> Figure:
    """Each clip's audio/video cosine similarity against its voice/face vote disagreement.

    ``similarity`` and ``disagreement``: (n,) of the same clips (those with both); ``correlation``:
    ``disagreement.similarity_disagreement_correlation`` of them, shown in the title.
    """
    figure = Figure(figsize=(5.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.scatter(similarity, disagreement, s=10, alpha=0.6)
    axes.set_xlabel("cosine similarity of the clip's audio and video embeddings")
    axes.set_ylabel("voice/face vote disagreement (total variation)")
    axes.set_ylim(0, 1)
    rho = (
        f"Spearman rho = {correlation.rho:.2f} [{correlation.low:.2f}, {correlation.high:.2f}], "
        f"{correlation.clips} clips"
    )
    prefix = f"{model}: " if model else ""
    axes.set_title(titled(f"{prefix}{rho}", demo), fontsize="medium")
    return figure
