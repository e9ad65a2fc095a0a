"""Fixtures of the training tests: a small synthetic corpus of learnable features and a tiny config.

Each clip's spectrogram has extra energy in a band that depends on its emotion, and its face frames
a bright square whose position depends on its emotion, plus noise and a per-actor offset; a tiny
model learns both in a few epochs. Features are stored with avshared's FeatureStore, in a SHUFFLED
row order, so that anything joining by position instead of by clip id fails.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from avshared.crema_d import EMOTIONS, SENTENCES
from avshared.features.audio import LogMelConfig
from avshared.features.audio import spectrogram_stats as measure_spectrogram_stats
from avshared.features.store import FeatureStore, write_feature_store
from avshared.features.video import FaceFramesConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
N_MELS, FRAMES = 16, 32
VIDEO_FRAMES, IMAGE_SIZE = 4, 32
#: Actors per split: train actors never appear in val or test.
SPLIT_ACTORS = {"train": range(1001, 1007), "val": range(1007, 1009), "test": range(1009, 1011)}
SENTENCE_CODES = list(SENTENCES)[1:3]


@dataclass
class Corpus:
    clip_manifest: pd.DataFrame
    split: pd.DataFrame
    crowd_labels: pd.DataFrame
    log_mel_spectrograms: FeatureStore
    face_frames: FeatureStore
    spectrogram_stats: dict[str, Any]


def _spectrogram(emotion: int, actor: int, rng: np.random.Generator) -> np.ndarray:
    values = rng.normal(-40.0, 4.0, (1, N_MELS, FRAMES)) + (actor % 3)
    band = 2 + 2 * emotion
    values[0, band : band + 2] += 12.0
    return values.astype(np.float16)


def _frames(emotion: int, rng: np.random.Generator) -> np.ndarray:
    frames = rng.integers(0, 60, (VIDEO_FRAMES, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.uint8)
    row, col = divmod(emotion, 3)
    top, left = 4 + 12 * row, 2 + 10 * col
    frames[:, :, top : top + 8, left : left + 8] = 230
    return frames


def _crowd_labels(manifest: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for clip_id, emotion in zip(manifest["clip_id"], manifest["emotion"], strict=True):
        for modality in ("voice", "face", "audiovisual"):
            counts = rng.integers(0, 3, len(EMOTIONS))
            counts[EMOTIONS.index(emotion)] += 4
            if rng.random() < 0.15:  # a tied vote: the acted emotion and another
                counts[(EMOTIONS.index(emotion) + 1) % len(EMOTIONS)] = counts.max()
            winners = np.flatnonzero(counts == counts.max())
            rows.append(
                {
                    "clip_id": clip_id,
                    "modality": modality,
                    **{f"p_{e}": c / counts.sum() for e, c in zip(EMOTIONS, counts, strict=True)},
                    "majority_emotion": EMOTIONS[winners[0]] if len(winners) == 1 else None,
                }
            )
    return pd.DataFrame(rows)


def make_corpus(directory: Path, seed: int = 0) -> Corpus:
    """Write the synthetic corpus's feature stores under ``directory`` and return its tables."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, actors in SPLIT_ACTORS.items():
        for actor in actors:
            for sentence in SENTENCE_CODES:
                for label, emotion in enumerate(EMOTIONS):
                    rows.append(
                        {
                            "clip_id": f"{actor}_{sentence}_{emotion}_XX",
                            "actor": actor,
                            "sentence": sentence,
                            "emotion": emotion,
                            "level": "XX",
                            "label": label,
                            "split": split,
                        }
                    )
    table = pd.DataFrame(rows).sort_values("clip_id", ignore_index=True)
    spectrograms = {
        c: _spectrogram(lab, a, rng)
        for c, lab, a in zip(table["clip_id"], table["label"], table["actor"], strict=True)
    }
    frames = {c: _frames(lab, rng) for c, lab in zip(table["clip_id"], table["label"], strict=True)}
    shuffled = list(rng.permutation(table["clip_id"].to_numpy()))
    # The extraction parameters these shapes would come from, as the features pipeline records
    # them (a phase's model specification reads them back).
    audio = asdict(LogMelConfig(n_mels=N_MELS, duration_s=FRAMES * 160 / 16_000))
    video = asdict(FaceFramesConfig(num_frames=VIDEO_FRAMES, size=IMAGE_SIZE))
    write_feature_store(
        directory / "log_mel", [(c, spectrograms[c]) for c in shuffled], attrs=audio
    )
    write_feature_store(directory / "faces", [(c, frames[c]) for c in shuffled[::-1]], attrs=video)
    train = table.loc[table["split"] == "train", "clip_id"]
    return Corpus(
        clip_manifest=table.drop(columns="split"),
        split=table.loc[:, ["clip_id", "actor", "split"]],
        crowd_labels=_crowd_labels(table, rng),
        log_mel_spectrograms=FeatureStore(directory / "log_mel"),
        face_frames=FeatureStore(directory / "faces"),
        spectrogram_stats=measure_spectrogram_stats((spectrograms[c] for c in train), "per_band"),
    )


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("training_corpus"))


@pytest.fixture(scope="session")
def training_parameters() -> dict[str, Any]:
    """conf/base/parameters_training.yml's `training` block, as Kedro reads it."""
    text = (PROJECT_ROOT / "conf" / "base" / "parameters_training.yml").read_text()
    return yaml.safe_load(text)["training"]


@pytest.fixture
def phase_overrides(training_parameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The project's per-phase parameters (training.phases)."""
    return copy.deepcopy(training_parameters["phases"])


@pytest.fixture
def tiny_defaults(tmp_path: Path, training_parameters: dict[str, Any]) -> dict[str, Any]:
    """The project's training defaults with a tiny model and short training, for fast tests."""
    defaults = copy.deepcopy(training_parameters["defaults"])
    defaults["model"] = {
        "kind": "shared",
        "preset": "tiny",
        "dim": 32,
        "depth": 1,
        "heads": 2,
        "dropout": 0.1,
        "audio_patch": [8, 8],
        "video_tubelet": [2, 16, 16],
    }
    defaults["optimiser"] |= {"learning_rate": 3.0e-3, "warmup_epochs": 0}
    defaults["trainer"] |= {"max_epochs": 3, "min_epochs": 1, "progress_bar": False}
    defaults["trainer"]["early_stopping"] = {"monitor": "val_loss", "patience": 10}
    defaults["trainer"] |= {"accelerator": "cpu"}
    defaults["data"] |= {"batch_size": 16, "num_workers": 0}
    defaults["checkpoint_dir"] = str(tmp_path / "checkpoints")
    return defaults


@pytest.fixture
def mlflow_phase_run(tmp_path: Path) -> tuple[MlflowClient, dict[str, str]]:
    """A phase run as PhaseRunsHook puts it in the catalog, in a throwaway SQLite store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("phase", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment)
    return client, {"run_id": run.info.run_id, "tracking_uri": uri}
