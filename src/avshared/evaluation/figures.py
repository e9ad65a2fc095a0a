"""Every figure of the project: the confusion matrix (one drawing, used for a phase's MLflow run and
for the report), the per-emotion F1 bars and the training curves. No Kedro."""

from __future__ import annotations

import logging
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import MaxNLocator

from avshared.crema_d import EMOTIONS
from avshared.evaluation.scoring import confusion_matrices
from avshared.evaluation.systems import DEMO_LABEL
from avshared.evaluation.tables import _ALL_LEVELS

logger = logging.getLogger(__name__)


def plot_confusion_matrices(confusion: pd.DataFrame, data_label: str) -> dict[str, Figure]:
    """One figure per phase, one panel per condition: row shares as colour, counts written in.

    Returns:
        ``{"<phase>.png": figure}``, for a MatplotlibDataset that writes a folder of images.
    """
    models = confusion.loc[confusion["kind"] == "model"]
    figures = {}
    for phase, rows in models.groupby("phase", sort=False):
        systems = list(dict.fromkeys(rows["system"]))
        figure = Figure(figsize=(4.6 * len(systems) + 0.8, 4.6), layout="constrained")
        axes = figure.subplots(1, len(systems), squeeze=False)[0]
        for axis, system in zip(axes, systems, strict=True):
            matrix = rows.loc[rows["system"] == system]
            counts = matrix["count"].to_numpy().reshape(len(EMOTIONS), len(EMOTIONS))
            shares = matrix["row_share"].to_numpy().reshape(len(EMOTIONS), len(EMOTIONS))
            image = draw_confusion_matrix(
                axis,
                counts,
                shares,
                title=f"{system} ({int(counts.sum())} clips)",
                ylabel="acted emotion",
            )
        figure.colorbar(image, ax=axes, shrink=0.8, label="share of the acted emotion's clips")
        figure.suptitle(f"Confusion matrix on the test clips: {phase} — {data_label}")
        figures[f"{phase}.png"] = figure
    return figures


def plot_per_emotion_f1(per_emotion: pd.DataFrame, data_label: str) -> Figure:
    """Grouped bars of each emotion's F1, one bar per model system and per human-rater modality."""
    rows = per_emotion.loc[
        (per_emotion["level"] == _ALL_LEVELS)
        & (
            (per_emotion["kind"] == "model")
            | per_emotion["system"].str.startswith("human raters", na=False)
        )
    ]
    systems = list(dict.fromkeys(rows["system"]))
    figure = Figure(figsize=(11, 4.8), layout="constrained")
    axis = figure.subplots()
    width = 0.8 / len(systems)
    positions = np.arange(len(EMOTIONS))
    colours = _system_colours(systems)
    for index, system in enumerate(systems):
        f1 = rows.loc[rows["system"] == system].set_index("emotion").reindex(EMOTIONS)["f1"]
        axis.bar(
            positions + (index - (len(systems) - 1) / 2) * width,
            f1.to_numpy(dtype=float),
            width,
            label=system,
            color=colours[system],
            hatch="//" if system.startswith("human") else None,
            edgecolor="white",
        )
    axis.axhline(1 / len(EMOTIONS), color="grey", linestyle=":", label="chance (1/6)")
    axis.set(
        xticks=positions,
        xticklabels=EMOTIONS,
        ylim=(0, 1),
        ylabel="F1 on the test clips",
        title=f"Per-emotion F1 by system — {data_label}",
    )
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return figure


#: Line style of each sense's validation accuracy alone, in the training curves.
SENSE_LINE_STYLES: dict[str, str] = {"audio": ":", "video": "-."}


def plot_training_curves(histories: pd.DataFrame, data_label: str) -> Figure:
    """Train (solid) and validation (dashed) loss and accuracy per epoch, one colour per phase;
    under k-fold, the mean over the folds still training at each epoch. When two-modality phases
    recorded the validation accuracy of each sense alone (``val_accuracy_audio``/``_video``), a
    third panel shows it, audio dotted and video dash-dotted: where one sense lags."""
    if "fold" in histories:
        histories = histories.groupby(["phase", "epoch"], sort=False, as_index=False).mean(
            numeric_only=True
        )
    senses = [
        sense
        for sense in SENSE_LINE_STYLES
        if histories.get(f"val_accuracy_{sense}", pd.Series(dtype=float)).notna().any()
    ]
    figure = Figure(figsize=(16 if senses else 11, 4.4), layout="constrained")
    axes = figure.subplots(1, 3 if senses else 2)
    loss_axis, accuracy_axis = axes[:2]
    phases = list(dict.fromkeys(histories["phase"]))
    colours = _system_colours(phases)
    for phase in phases:
        history = histories.loc[histories["phase"] == phase]
        for axis, quantity in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
            for part, style in (("train", "-"), ("val", "--")):
                axis.plot(
                    history["epoch"],
                    history[f"{part}_{quantity}"],
                    style,
                    color=colours[phase],
                    marker="o",
                    markersize=3,
                    label=f"{phase} {part}",
                )
        for sense in senses:
            accuracy = history[f"val_accuracy_{sense}"]
            if accuracy.notna().any():
                axes[2].plot(
                    history["epoch"],
                    accuracy,
                    SENSE_LINE_STYLES[sense],
                    color=colours[phase],
                    marker="o",
                    markersize=3,
                    label=f"{phase} {sense} only",
                )
    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="Accuracy")
    accuracy_axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    if senses:
        axes[2].set(
            xlabel="epoch",
            ylabel="validation accuracy",
            ylim=(0, 1),
            title="Validation accuracy, each sense alone",
        )
        axes[2].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    figure.suptitle(f"Training curves (validation = held-out val split) — {data_label}")
    return figure


def _system_colours(names: list[str]) -> dict[str, Any]:
    palette = matplotlib.colormaps["tab10"]
    return {name: palette(index % palette.N) for index, name in enumerate(names)}


def draw_confusion_matrix(
    axis: Axes, counts: np.ndarray, shares: np.ndarray, *, title: str, ylabel: str
) -> AxesImage:
    """The project's one confusion-matrix drawing, on ``axis``: row shares as colour (rows: true
    class, columns: predicted, both in ``crema_d.EMOTIONS`` order), counts written in."""
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (true, predicted), count in np.ndenumerate(counts):
        colour = "white" if shares[true, predicted] > 0.55 else "black"
        axis.text(predicted, true, f"{count:g}", ha="center", va="center", color=colour)
    axis.set(
        title=title,
        xlabel="predicted emotion",
        ylabel=ylabel,
        xticks=range(len(EMOTIONS)),
        yticks=range(len(EMOTIONS)),
        xticklabels=EMOTIONS,
        yticklabels=EMOTIONS,
    )
    return image


def plot_phase_confusion_matrix(test_predictions: pd.DataFrame, metrics: dict[str, Any]) -> Figure:
    """A phase's confusion matrix (target x predicted) of its full input condition, for its MLflow
    run, titled with its accuracy and UAR."""
    rows = test_predictions.loc[test_predictions["condition"] == metrics["condition"]]
    counts, shares = confusion_matrices(rows["target"], rows["predicted"])
    figure = Figure(figsize=(5.2, 4.6), layout="constrained")
    axis = figure.subplots()
    demo = f" - {DEMO_LABEL}" if metrics["demo"] else ""
    image = draw_confusion_matrix(
        axis,
        counts,
        shares,
        title=(
            f"{metrics['phase']} ({metrics['condition']}){demo}\n"
            f"accuracy {metrics['test_accuracy']:.3f}, UAR {metrics['test_uar']:.3f}"
        ),
        ylabel=f"target ({metrics['target']})",
    )
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of target row")
    return figure
