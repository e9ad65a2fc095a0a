"""The model specification node: what prediction needs to rebuild a phase's model and inputs."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from avshared.crema_d import EMOTIONS
from avshared.features.audio import LogMelConfig
from avshared.features.store import FeatureStore, write_feature_store
from avshared.features.video import FaceFramesConfig
from avshared.training.specification import build_model_spec

CONFIG = {
    "phase": "bimodal",
    "data_source": "demo",
    "modalities": ["audio", "video"],
    "model": {"kind": "shared", "preset": "tiny"},
    "target": {"kind": "acted"},
}
STATS = {"mode": "per_band", "mean": [-40.0] * 64, "std": [9.0] * 64}
SUMMARY = {"model_config": {"dim": 32}, "mlflow_run_id": "abc123", "spectrogram_stats": STATS}


def _store(path, item, attrs) -> FeatureStore:
    write_feature_store(path, [("1001_DFA_ANG_XX", item)], attrs=attrs)
    return FeatureStore(path)


def test_specification_takes_feature_parameters_from_the_stores(tmp_path):
    audio = LogMelConfig(duration_s=2.0, n_mels=32)
    video = FaceFramesConfig(num_frames=4, size=64)
    spec = build_model_spec(
        config=CONFIG,
        training_summary=SUMMARY,
        log_mel_spectrograms=_store(
            tmp_path / "a", np.zeros((1, 32, 200), np.float16), {"layout": "x", **asdict(audio)}
        ),
        face_frames=_store(tmp_path / "v", np.zeros((4, 3, 64, 64), np.uint8), asdict(video)),
    )
    assert spec["features"] == {"audio": asdict(audio), "video": asdict(video)}
    assert (spec["window_s"], spec["spectrogram_stats"], spec["emotions"]) == (
        2.0,
        STATS,
        list(EMOTIONS),
    )
    assert (spec["mlflow_run_id"], spec["demo"], spec["model_kind"]) == ("abc123", True, "shared")
    assert (spec["folds"], spec["seeds"]) == (1, 1)


@pytest.mark.parametrize(("folds", "seeds"), [(3, 1), (1, 2)])
def test_a_phase_of_several_cells_is_described_but_not_deployable(tmp_path, folds, seeds):
    per_cell = [SUMMARY | {"fold": f, "seed": s} for f in range(folds) for s in range(seeds)]
    spec = build_model_spec(
        config=CONFIG | {"modalities": ["video"]},
        training_summary={**SUMMARY, "folds": folds, "seeds": seeds, "per_cell": per_cell},
        face_frames=_store(
            tmp_path / "v", np.zeros((4, 3, 64, 64), np.uint8), asdict(FaceFramesConfig())
        ),
    )
    assert (spec["folds"], spec["seeds"]) == (folds, seeds)
    assert spec["spectrogram_stats"] is None


def test_video_phase_has_no_audio_parameters_and_a_store_without_provenance_is_refused(tmp_path):
    video_only = CONFIG | {"modalities": ["video"]}
    frames = np.zeros((4, 3, 64, 64), np.uint8)
    spec = build_model_spec(
        config=video_only,
        training_summary=SUMMARY,
        face_frames=_store(tmp_path / "v", frames, asdict(FaceFramesConfig())),
    )
    assert list(spec["features"]) == ["video"] and spec["spectrogram_stats"] is None
    assert spec["window_s"] == LogMelConfig().duration_s
    with pytest.raises(ValueError, match="re-run the features pipeline"):
        build_model_spec(
            config=video_only,
            training_summary=SUMMARY,
            face_frames=_store(tmp_path / "bare", frames, {"num_frames": 4}),
        )
