"""A tiny corpus of random features split into two actor folds, for the pretrain pipeline's runs.
Masked autoencoding needs no learnable structure: random spectrograms and frames will do."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from avshared.crema_d import EMOTIONS
from avshared.features.audio import LogMelConfig, spectrogram_stats
from avshared.features.store import FeatureStore, write_feature_store
from avshared.features.video import FaceFramesConfig

ACTORS = range(1001, 1009)
#: Per fold: its test actors and its validation actor; the others train.
FOLDS = {0: ((1001, 1002), 1003), 1: ((1003, 1004), 1005)}


@dataclass
class TinyCorpus:
    clip_manifest: pd.DataFrame
    split: pd.DataFrame
    log_mel_spectrograms: FeatureStore
    face_frames: FeatureStore
    empty_store: FeatureStore
    spectrogram_stats: dict[str, Any]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> TinyCorpus:
    folder: Path = tmp_path_factory.mktemp("pretrain_corpus")
    rng = np.random.default_rng(0)
    manifest = pd.DataFrame(
        [
            {
                "clip_id": f"{a}_DFA_{e}_XX",
                "actor": a,
                "sentence": "DFA",
                "emotion": e,
                "level": "XX",
            }
            for a in ACTORS
            for e in EMOTIONS
        ]
    )
    spectrograms = {
        c: rng.normal(-40, 5, (1, 16, 32)).astype(np.float16) for c in manifest["clip_id"]
    }
    # The extraction parameters these shapes come from, as the features pipeline records them.
    audio = asdict(LogMelConfig(n_mels=16, duration_s=32 * 160 / 16_000))
    video = asdict(FaceFramesConfig(num_frames=4, size=32))
    write_feature_store(folder / "log_mel", spectrograms, attrs=audio)
    write_feature_store(
        folder / "faces",
        {c: rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8) for c in manifest["clip_id"]},
        attrs=video,
    )
    write_feature_store(folder / "empty", [], allow_empty=True)
    rows = []
    for fold, (test, val) in FOLDS.items():
        roles = {a: "test" for a in test} | {val: "val"}
        rows += [
            {"fold": fold, "clip_id": c, "actor": a, "split": roles.get(a, "train")}
            for c, a in zip(manifest["clip_id"], manifest["actor"], strict=True)
        ]
    split = pd.DataFrame(rows)
    first_train = split.loc[(split["fold"] == 0) & (split["split"] == "train"), "clip_id"]
    return TinyCorpus(
        clip_manifest=manifest,
        split=split,
        log_mel_spectrograms=FeatureStore(folder / "log_mel"),
        face_frames=FeatureStore(folder / "faces"),
        empty_store=FeatureStore(folder / "empty"),
        spectrogram_stats={
            **spectrogram_stats((spectrograms[c] for c in first_train), "per_band"),
            "split": "train",
        },
    )
