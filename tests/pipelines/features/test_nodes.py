"""Features nodes on a tiny corpus: storage by clip id, training-only stats, report, figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from avshared.crema_d import DEMO_MARKER_FILE
from avshared.datasets.feature_store import FeatureStore, FeatureStoreDataset
from avshared.features.audio import LogMelConfig, extract_clip_log_mel
from avshared.features.parallel import FeatureStream
from avshared.pipelines.features.nodes import (
    build_features_report,
    compute_spectrogram_stats,
    extract_face_frames,
    extract_log_mel_spectrograms,
    plot_features_example,
)

AUDIO = {"n_mels": 32, "duration_s": 2.0, "dtype": "float32"}
# The tiny corpus's faces are skin-coloured ellipses: only the skin rule takes them for faces.
VIDEO = {"num_frames": 4, "size": 48, "face_detector": "skin"}
#: The clips without a decodable ellipse; every other is reported as ("face_found", "skin").
WITHOUT_FACE = {"1005_DFA_ANG_XX", "1006_DFA_ANG_XX"}
IN_PROCESS = {"workers": 0, "audio_workers": 0, "prefetch_per_worker": 2}


def store(stream: FeatureStream, path) -> FeatureStore:
    dataset = FeatureStoreDataset(filepath=str(path))
    dataset.save(stream)
    return dataset.load()


def test_spectrograms_are_stored_by_clip_id(corpus, tmp_path):
    stream = extract_log_mel_spectrograms(corpus, AUDIO, IN_PROCESS)
    assert isinstance(stream, FeatureStream) and len(stream) == len(corpus)
    spectrograms = store(stream, tmp_path / "audio")

    assert spectrograms.shape == (len(corpus) - 1, 1, 32, 200)
    assert "1006_DFA_HAP_XX" not in spectrograms
    assert spectrograms.attrs["modality"] == "audio" and spectrograms.attrs["n_mels"] == 32
    config = LogMelConfig(**AUDIO)
    for clip_id, path in corpus[["clip_id", "audio_path"]].sample(frac=1, random_state=0).values:
        if clip_id in spectrograms:
            expected = extract_clip_log_mel((clip_id, path), config).array
            np.testing.assert_array_equal(spectrograms.get(clip_id), expected)


def test_face_frames_apply_the_defect_policies(corpus, tmp_path):
    frames = store(
        extract_face_frames(corpus, {**VIDEO, "on_no_face": "reject"}, IN_PROCESS),
        tmp_path / "video",
    )
    assert frames.shape == (len(corpus) - 2, 4, 3, 48, 48)
    assert frames.dtype == np.uint8
    issues = {(row.clip_id, row.issue, row.action) for row in frames.issues.itertuples()}
    found = {(clip_id, "face_found", "skin") for clip_id in set(corpus["clip_id"]) - WITHOUT_FACE}
    assert issues == found | {
        ("1005_DFA_ANG_XX", "undecodable", "rejected"),
        ("1005_DFA_HAP_XX", "short_video", "repeated_frames"),
        ("1006_DFA_ANG_XX", "no_face", "rejected"),
    }


def test_a_manifest_without_media_paths_is_refused_with_a_hint(corpus):
    with pytest.raises(KeyError, match="re-run the ingestion pipeline"):
        extract_face_frames(corpus.drop(columns="video_path"), VIDEO, IN_PROCESS)


def test_stats_use_training_clips_only(corpus, actor_split, speech_writer, tmp_path):
    before = compute_spectrogram_stats(
        store(extract_log_mel_spectrograms(corpus, AUDIO, IN_PROCESS), tmp_path / "a"),
        actor_split,
        {"mode": "per_band"},
    )
    train = actor_split["split"] == "train"
    assert before["clips"] == train.sum() - 1  # 1006_DFA_HAP_XX's audio is undecodable
    assert len(before["mean"]) == 32 and before["split"] == "train"

    # The test and val actors' voices change beyond recognition: the statistics must not move.
    for clip in corpus[corpus["actor"].isin([1003, 1004])].itertuples():
        speech_writer(clip.audio_path, clip.actor + 7, loudness=0.9)
    after_held_out_change = compute_spectrogram_stats(
        store(extract_log_mel_spectrograms(corpus, AUDIO, IN_PROCESS), tmp_path / "b"),
        actor_split,
        {"mode": "per_band"},
    )
    assert after_held_out_change == before

    # A training actor's change does move them (so the check above can fail).
    for clip in corpus[corpus["actor"] == 1001].itertuples():
        speech_writer(clip.audio_path, clip.actor + 7, loudness=0.9)
    after_train_change = compute_spectrogram_stats(
        store(extract_log_mel_spectrograms(corpus, AUDIO, IN_PROCESS), tmp_path / "c"),
        actor_split,
        {"mode": "per_band"},
    )
    assert after_train_change["mean"] != before["mean"]


def test_the_report_lists_every_defect_of_both_modalities(corpus, tmp_path):
    spectrograms = store(extract_log_mel_spectrograms(corpus, AUDIO, IN_PROCESS), tmp_path / "a")
    frames = store(extract_face_frames(corpus, VIDEO, IN_PROCESS), tmp_path / "v")
    report = build_features_report(corpus, spectrograms, frames)

    assert list(report.columns) == ["clip_id", "modality", "issue", "action"]
    found = {(c, "video", "face_found", "skin") for c in set(corpus["clip_id"]) - WITHOUT_FACE}
    assert set(map(tuple, report.values)) == found | {
        ("1005_DFA_ANG_XX", "video", "undecodable", "rejected"),
        ("1005_DFA_HAP_XX", "video", "short_video", "repeated_frames"),
        ("1006_DFA_ANG_XX", "video", "no_face", "centre_crop"),
        ("1006_DFA_HAP_XX", "audio", "undecodable", "rejected"),
    }


def test_the_report_refuses_clips_missing_without_a_recorded_rejection(corpus, tmp_path):
    spectrograms = store(extract_log_mel_spectrograms(corpus, AUDIO, IN_PROCESS), tmp_path / "a")
    frames = store(extract_face_frames(corpus, VIDEO, IN_PROCESS), tmp_path / "v")
    extra = pd.DataFrame({"clip_id": ["1007_DFA_ANG_XX"]})
    with pytest.raises(RuntimeError, match="1 manifest clips have no audio features"):
        build_features_report(pd.concat([corpus, extra]), spectrograms, frames)


def test_the_example_figure_shows_one_spectrogram_and_its_frames(corpus, tmp_path):
    spectrograms = store(extract_log_mel_spectrograms(corpus, AUDIO, IN_PROCESS), tmp_path / "a")
    frames = store(extract_face_frames(corpus, VIDEO, IN_PROCESS), tmp_path / "v")
    example = {"clip_id": "1002_DFA_HAP_XX"}
    figure = plot_features_example(spectrograms, frames, example, str(tmp_path))
    assert isinstance(figure, Figure)
    assert not figure.get_suptitle()
    titles = [axes.get_title() for axes in figure.axes]
    assert "1002_DFA_HAP_XX: log-mel (dB)" in titles
    assert sum(title.startswith("frame ") for title in titles) == 4
    spectrogram_axes = figure.axes[titles.index("1002_DFA_HAP_XX: log-mel (dB)")]
    np.testing.assert_array_equal(
        spectrogram_axes.images[0].get_array(), spectrograms.get("1002_DFA_HAP_XX")[0]
    )
    (tmp_path / DEMO_MARKER_FILE).write_text("{}")
    default = plot_features_example(spectrograms, frames, {"clip_id": None}, str(tmp_path))
    assert default.axes[0].get_title().startswith(spectrograms.clip_ids[0])
    assert "DEMO DATA" in default.get_suptitle()
