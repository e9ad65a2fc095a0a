"""The split and features pipelines end to end, with the project's own parameters and catalog."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from avshared.datasets.feature_store import FeatureStoreDataset
from avshared.features.audio import LogMelConfig
from avshared.features.video import FaceFramesConfig
from avshared.pipelines.features import create_pipeline as create_features_pipeline
from avshared.pipelines.split import create_pipeline as create_split_pipeline
from avshared.settings import CONFIG_LOADER_ARGS

PROJECT_ROOT = Path(__file__).resolve().parents[3]
OUTPUTS = {
    "split",
    "split_unmatched_clips",
    "log_mel_spectrograms",
    "face_frames",
    "spectrogram_stats",
    "features_report",
    "features_example",
}


def project_config() -> OmegaConfigLoader:
    return OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)


def test_project_parameters_build_valid_configurations():
    parameters = project_config()["parameters"]
    audio = LogMelConfig(**parameters["features"]["audio"])
    assert (audio.n_mels, audio.frames, audio.sample_rate) == (64, 300, 16_000)
    video = FaceFramesConfig(**parameters["features"]["video"])
    assert (video.num_frames, video.size) == (8, 112)
    assert parameters["split"]["strategy"] == "actor"


def test_project_catalog_defines_every_dataset_of_the_two_pipelines():
    catalog_config = project_config()["catalog"]
    pipeline = create_split_pipeline() + create_features_pipeline()
    assert OUTPUTS | {"clip_manifest"} == pipeline.datasets() - {
        name for name in pipeline.datasets() if name.startswith("params:")
    }
    catalog = DataCatalog.from_config({name: catalog_config[name] for name in OUTPUTS})
    for name in ("log_mel_spectrograms", "face_frames"):
        assert isinstance(catalog.get(name), FeatureStoreDataset)
        assert catalog_config[name]["versioned"] is True
    assert catalog_config["split"]["versioned"] is True
    assert "clip_manifest" in catalog_config, "the ingestion pipeline's output must be catalogued"


def test_split_and_features_pipelines_run_with_the_project_catalog_and_parameters(corpus, tmp_path):
    config = project_config()
    parameters = config["parameters"]
    # The project's own catalog entries, moved under tmp_path.
    entries = {
        name: {**config["catalog"][name], "filepath": str(tmp_path / Path(entry["filepath"]).name)}
        for name, entry in config["catalog"].items()
        if name in OUTPUTS
    }
    catalog = DataCatalog.from_config(entries)
    catalog["clip_manifest"] = corpus
    # Six actors: half of them in train leaves one or two for each of val and test.
    halves = {"train": 0.5, "val": 0.25, "test": 0.25}
    catalog["params:split"] = {**parameters["split"], "actor": {"fractions": halves}}
    for key in ("audio", "video", "extraction", "normalisation", "example"):
        catalog[f"params:features.{key}"] = parameters["features"][key]
    catalog["params:crema_d_root"] = str(tmp_path)

    SequentialRunner().run(create_split_pipeline() + create_features_pipeline(), catalog)

    split = catalog.load("split")
    assert set(split["split"]) == {"train", "val", "test"}
    spectrograms = catalog.load("log_mel_spectrograms")
    faces = catalog.load("face_frames")
    assert spectrograms.shape == (11, 1, 64, 300)
    assert spectrograms.dtype == "float16"
    assert faces.shape == (11, 8, 3, 112, 112)
    stats = catalog.load("spectrogram_stats")
    train_clips = set(split.loc[split["split"] == "train", "clip_id"]) & set(spectrograms.clip_ids)
    assert stats["clips"] == len(train_clips) and len(stats["mean"]) == 64
    report = catalog.load("features_report")
    assert isinstance(report, pd.DataFrame)
    # BlazeFace, the project's detector, sees no face in the corpus's skin-coloured ellipses: the
    # 11 decodable videos are centre-cropped and reported so, beside the 3 other defects.
    no_face = report[report["issue"] == "no_face"]
    assert len(no_face) == 11 and set(no_face["action"]) == {"centre_crop"}
    assert len(report) == 3 + 11
    assert (tmp_path / "features_example.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((tmp_path / "log_mel_spectrograms").iterdir())) == 1  # one version
