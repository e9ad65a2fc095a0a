"""The figures' numbers (not their pixels), and the DEMO DATA label in every title."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from avshared.analysis.disagreement import Correlation
from avshared.analysis.figures import (
    DEMO_LABEL,
    disagreement_figure,
    embedding_map_figure,
    rollout_figure,
    shares_by_layer_figure,
)
from avshared.analysis.shares import cross_modal_shares, shares_by_group, token_groups


def _summary() -> pd.DataFrame:
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 4, 2, 8, 8, generator=generator).softmax(-1)
    groups = token_groups({"audio": slice(0, 3), "video": slice(3, 7)}, 7)
    return shares_by_group(cross_modal_shares(maps, groups), per_head=False)


@pytest.mark.parametrize("demo", [True, False])
def test_share_lines_are_the_computed_shares(demo):
    summary = _summary()

    figure = shares_by_layer_figure(summary, demo=demo, model="bimodal")

    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    np.testing.assert_allclose(lines["audio → video"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(lines["audio → video"].get_ydata(), summary["audio_to_video"])
    np.testing.assert_allclose(lines["video → audio"].get_ydata(), summary["video_to_audio"])
    np.testing.assert_allclose(lines["video's token share"].get_ydata(), 4 / 8)
    np.testing.assert_allclose(lines["audio's token share"].get_ydata(), 3 / 8)
    assert (DEMO_LABEL in axes.get_title()) is demo


def test_share_figure_wants_one_row_per_layer():
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 1, 2, 8, 8, generator=generator).softmax(-1)
    groups = token_groups({"audio": slice(0, 3), "video": slice(3, 7)}, 7)
    per_head = shares_by_group(cross_modal_shares(maps, groups), per_head=True)

    with pytest.raises(ValueError, match="per_head=False"):
        shares_by_layer_figure(per_head, demo=True)


def test_rollout_figure_draws_the_inputs_under_their_heat_maps():
    rng = np.random.default_rng(0)
    spectrogram = rng.normal(size=(1, 16, 32))
    frames = rng.integers(0, 256, size=(4, 3, 16, 16), dtype=np.uint8)
    audio_heat, video_heat = rng.random((16, 32)), rng.random((4, 16, 16))

    figure = rollout_figure(
        spectrogram,
        frames,
        audio_heat,
        video_heat,
        truth="ANG",
        prediction="SAD",
        clip_id="1001_DFA_ANG_XX",
        demo=True,
    )

    assert len(figure.axes) == 1 + 4
    voice = figure.axes[0].get_images()
    np.testing.assert_allclose(voice[0].get_array(), spectrogram[0])
    np.testing.assert_allclose(voice[1].get_array(), audio_heat)
    for index, axes in enumerate(figure.axes[1:]):
        frame, heat = axes.get_images()
        np.testing.assert_allclose(frame.get_array(), frames[index].transpose(1, 2, 0) / 255)
        np.testing.assert_allclose(heat.get_array(), video_heat[index])
    title = figure.get_suptitle()
    assert DEMO_LABEL in title and "truth ANG" in title and "predicted SAD" in title


def test_the_map_draws_one_point_per_clip_and_sense_for_each_model():
    rng = np.random.default_rng(0)
    n = 10
    table = pd.DataFrame(
        {
            "clip_id": np.tile([f"c{i}" for i in range(n)], 3),
            "emotion": np.tile(["ANG", "SAD"] * (n // 2), 3),
            "sense": np.repeat(["audio", "video", "audiovisual"], n),
            "x": rng.normal(size=3 * n),
            "y": rng.normal(size=3 * n),
        }
    )

    figure = embedding_map_figure({"shared": table, "separate": table.iloc[::-1]}, demo=False)

    assert [a.get_title() for a in figure.axes] == ["shared", "separate"]
    for axes in figure.axes:
        offsets = np.concatenate([c.get_offsets() for c in axes.collections])
        assert len(offsets) == 3 * n
        np.testing.assert_allclose(
            np.sort(offsets, axis=0), np.sort(table[["x", "y"]].to_numpy(), axis=0)
        )
    assert DEMO_LABEL not in figure.get_suptitle()


def test_every_figure_renders():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "clip_id": ["a", "a", "a"],
            "emotion": ["ANG"] * 3,
            "sense": ["audio", "video", "audiovisual"],
            "x": rng.normal(size=3),
            "y": rng.normal(size=3),
        }
    )
    figures = [
        shares_by_layer_figure(_summary(), demo=True),
        rollout_figure(
            rng.normal(size=(8, 16)),
            rng.random((2, 3, 8, 8)),
            rng.random((8, 16)),
            rng.random((2, 8, 8)),
            truth="ANG",
            prediction="ANG",
            clip_id="x",
            demo=False,
        ),
        embedding_map_figure({"shared": table}, demo=True),
    ]
    for figure in figures:
        FigureCanvasAgg(figure).draw()


def test_the_disagreement_scatter_holds_every_clip_and_the_correlation():
    rng = np.random.default_rng(0)
    similarity, disagreement = rng.uniform(-1, 1, 20), rng.uniform(0, 1, 20)
    correlation = Correlation(rho=-0.31, low=-0.6, high=0.05, p_value=0.2, clips=20)

    figure = disagreement_figure(similarity, disagreement, correlation, demo=True, model="bimodal")

    axes = figure.axes[0]
    np.testing.assert_allclose(
        axes.collections[0].get_offsets(), np.column_stack([similarity, disagreement])
    )
    title = axes.get_title()
    assert DEMO_LABEL in title and "-0.31 [-0.60, 0.05]" in title and "20 clips" in title
    FigureCanvasAgg(figure).draw()
