"""The pretrain pipeline's own nodes: the extra recordings and the reconstruction figure."""

from __future__ import annotations

import numpy as np

from avshared import media
from avshared.pipelines.pretrain.nodes import (
    RECORDING_COLUMNS,
    find_extra_recordings,
    plot_reconstructions,
)


def test_extra_recordings_are_the_files_with_a_picture(tmp_path):
    frames = [np.full((32, 32, 3), 100, dtype=np.uint8)] * 10
    media.write_container(tmp_path / "talk.mp4", frames, 25.0, np.zeros(8_000), 16_000)
    media.write_container(tmp_path / "nested" / "film.mkv", frames, 25.0)
    media.write_audio(tmp_path / "voice_only.wav", np.zeros(8_000, dtype=np.float32), 16_000)
    (tmp_path / "notes.txt").write_text("not a recording")

    table = find_extra_recordings(str(tmp_path))

    assert list(table.columns) == RECORDING_COLUMNS
    # A single file is named by its path (unique), as the predict pipeline names it.
    assert sorted(table["clip_id"]) == [
        str(tmp_path / "nested/film.mkv"),
        str(tmp_path / "talk.mp4"),
    ]
    talk = table.set_index("clip_id").loc[str(tmp_path / "talk.mp4")]
    assert talk["audio_path"] == talk["video_path"] == str(tmp_path / "talk.mp4")


def test_no_extra_inputs_give_an_empty_manifest():
    table = find_extra_recordings(None)

    assert table.empty and list(table.columns) == RECORDING_COLUMNS


def test_the_figure_shows_each_autoencoder_clip_and_sense_and_says_demo():
    picture = {
        "audio": {
            k: np.random.default_rng(0).normal(size=(2, 1, 16, 32))
            for k in ("original", "masked", "reconstructed")
        },
        "video": {
            k: np.random.default_rng(1).random((2, 4, 3, 32, 32))
            for k in ("original", "masked", "reconstructed")
        },
    }
    examples = {
        "clip_ids": ["1001_DFA_ANG_XX", "1001_DFA_SAD_XX"],
        "autoencoders": {"shared": picture, "separate_audio": {"audio": picture["audio"]}},
        "data_source": "demo",
    }

    figure = plot_reconstructions(examples)

    assert len(figure.axes) == (2 * 2 + 2) * 3
    assert "DEMO DATA" in figure._suptitle.get_text()
    assert figure.axes[-1].get_title() == "separate_audio: 1001_DFA_SAD_XX audio, reconstructed"
