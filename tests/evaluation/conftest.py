"""A small synthetic world for the reporting pipeline: manifest, split, crowd labels and the
outputs of four training phases, shaped as their pipelines write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avshared.crema_d import EMOTION_LETTERS, EMOTIONS
from avshared.pipelines.reporting.pipeline import PHASES

REPORTING_PARAMETERS = Path(__file__).parents[2] / "conf" / "base" / "parameters_reporting.yml"
TRAIN_ACTORS, VAL_ACTORS, TEST_ACTORS = range(1001, 1006), (1006,), (1007, 1008)
PARAM_COUNTS = {"video": 1000, "audio": 1100, "bimodal": 1200, "baseline": 2300}
PARAM_COUNTS["baseline_matched"] = 1210
#: Each phase's own input condition, as its metrics report it.
OWN_CONDITION = {
    "video": "video_only",
    "audio": "audio_only",
    "bimodal": "audiovisual",
    "baseline": "audiovisual",
    "baseline_matched": "audiovisual",
}


def _clip_ids(actor: int) -> list[str]:
    levelled = [e for e in EMOTIONS if e != "NEU"]
    ieo = [f"{actor}_IEO_{e}_{level}" for e in levelled for level in ("LO", "MD", "HI")]
    return [*ieo, f"{actor}_IEO_NEU_XX", *(f"{actor}_DFA_{e}_XX" for e in EMOTIONS)]


@pytest.fixture
def clip_manifest() -> pd.DataFrame:
    clip_ids = [c for actor in (*TRAIN_ACTORS, *VAL_ACTORS, *TEST_ACTORS) for c in _clip_ids(actor)]
    # Drop the DFA ANG..HAP clips of two train actors: SAD becomes the most frequent train class.
    dropped = {f"{a}_DFA_{e}_XX" for a in (1001, 1002) for e in ("ANG", "DIS", "FEA", "HAP")}
    parts = [c.split("_") for c in clip_ids if c not in dropped]
    return pd.DataFrame(
        {
            "clip_id": ["_".join(p) for p in parts],
            "actor": [int(p[0]) for p in parts],
            "sentence": [p[1] for p in parts],
            "emotion": [p[2] for p in parts],
            "level": [p[3] for p in parts],
            "label": [EMOTIONS.index(p[2]) for p in parts],
        }
    )


@pytest.fixture
def split(clip_manifest: pd.DataFrame) -> pd.DataFrame:
    part = {a: "train" for a in TRAIN_ACTORS} | {a: "val" for a in VAL_ACTORS}
    part |= {a: "test" for a in TEST_ACTORS}
    return pd.DataFrame(
        {
            "clip_id": clip_manifest["clip_id"],
            "actor": clip_manifest["actor"],
            "split": clip_manifest["actor"].map(part),
        }
    )


@pytest.fixture
def test_clips(clip_manifest: pd.DataFrame) -> pd.DataFrame:
    return clip_manifest.loc[clip_manifest["actor"].isin(TEST_ACTORS)].reset_index(drop=True)


@pytest.fixture
def crowd_labels(clip_manifest: pd.DataFrame) -> pd.DataFrame:
    """Crowd labels as the labels pipeline writes them; one test clip's voice vote is a tie."""
    rng = np.random.default_rng(7)
    rows = []
    for clip_id, label in zip(clip_manifest["clip_id"], clip_manifest["label"], strict=True):
        for modality, accuracy in (("voice", 0.4), ("face", 0.55), ("audiovisual", 0.65)):
            responses = rng.integers(6, 12)
            counts = rng.multinomial(responses, np.full(6, (1 - accuracy) / 5))
            counts[label] += rng.binomial(responses, accuracy)
            rows.append((clip_id, modality, label, counts))
    first_test = f"{TEST_ACTORS[0]}_IEO_ANG_LO"
    rows = [
        (c, m, label, np.array([4, 4, 1, 0, 0, 1]) if (c, m) == (first_test, "voice") else k)
        for c, m, label, k in rows
    ]
    counts = np.stack([r[3] for r in rows])
    top = counts.max(axis=1, keepdims=True)
    votes = [
        ":".join(EMOTION_LETTERS[e] for e, is_top in zip(EMOTIONS, row, strict=True) if is_top)
        for row in counts == top
    ]
    frame = pd.DataFrame(
        {
            "clip_id": [r[0] for r in rows],
            "modality": [r[1] for r in rows],
            "acted_emotion": [EMOTIONS[r[2]] for r in rows],
        }
    )
    frame[[f"count_{e}" for e in EMOTIONS]] = counts
    frame["num_responses"] = counts.sum(axis=1)
    frame[[f"p_{e}" for e in EMOTIONS]] = counts / counts.sum(axis=1, keepdims=True)
    frame["majority_vote"] = votes
    frame["majority_emotion"] = pd.array(
        [None if ":" in v else EMOTIONS[list(EMOTION_LETTERS.values()).index(v)] for v in votes],
        dtype="str",
    )
    frame["num_correct"] = counts[np.arange(len(rows)), [r[2] for r in rows]]
    return frame


def _predictions(test_clips: pd.DataFrame, accuracy: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    target = test_clips["label"].to_numpy()
    wrong = (target + rng.integers(1, 6, len(target))) % 6
    predicted = np.where(rng.random(len(target)) < accuracy, target, wrong)
    probabilities = rng.dirichlet(np.ones(6), len(target))
    frame = test_clips.loc[:, ["clip_id", "actor", "emotion", "level"]].assign(
        target=target, predicted=predicted
    )
    frame[[f"p_{e}" for e in EMOTIONS]] = probabilities
    return frame


@pytest.fixture
def phase_predictions(test_clips: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`{phase}.test_predictions`: the bimodal phase also answers with one modality."""
    bimodal = pd.concat(
        [
            _predictions(test_clips, accuracy, seed).assign(condition=condition)
            for condition, accuracy, seed in (
                ("audiovisual", 0.8, 3),
                ("audio_only", 0.5, 4),
                ("video_only", 0.6, 5),
            )
        ],
        ignore_index=True,
    )
    single = {"video": (0.6, 1), "audio": (0.45, 2), "baseline": (0.7, 6)}
    single["baseline_matched"] = (0.65, 8)
    predictions = {
        phase: _predictions(test_clips, accuracy, seed).assign(condition=OWN_CONDITION[phase])
        for phase, (accuracy, seed) in single.items()
    }
    return {phase: predictions.get(phase, bimodal) for phase in PHASES}


@pytest.fixture
def validation_clips(clip_manifest: pd.DataFrame) -> pd.DataFrame:
    return clip_manifest.loc[clip_manifest["actor"].isin(VAL_ACTORS)].reset_index(drop=True)


@pytest.fixture
def validation_predictions(validation_clips: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`{phase}.validation_predictions` of the two phases the unimodal ensembles combine."""
    return {
        phase: _predictions(validation_clips, accuracy, seed).assign(
            condition=OWN_CONDITION[phase], fold=0
        )
        for phase, accuracy, seed in (("audio", 0.45, 12), ("video", 0.6, 11))
    }


@pytest.fixture
def phase_metrics() -> dict[str, dict]:
    return {
        phase: {
            "phase": phase,
            "condition": OWN_CONDITION[phase],
            "param_count": PARAM_COUNTS[phase],
            "demo": True,
            "budget": {"max_epochs": 6, "min_epochs": 2, "patience": 2},
        }
        for phase in PHASES
    }


@pytest.fixture
def phase_histories() -> dict[str, pd.DataFrame]:
    epochs = np.arange(1, 5)
    return {
        phase: pd.DataFrame(
            {
                "epoch": epochs,
                "train_loss": 1.8 / epochs + offset,
                "val_loss": 1.9 / epochs + offset,
                "train_accuracy": 0.2 + 0.1 * epochs,
                "val_accuracy": 0.15 + 0.1 * epochs,
            }
        )
        for offset, phase in enumerate(PHASES)
    }


@pytest.fixture
def reporting_params() -> dict:
    """The project's reporting parameters, with fewer bootstrap resamples to keep tests fast."""
    params = yaml.safe_load(REPORTING_PARAMETERS.read_text())["reporting"]
    params["bootstrap"]["n_boot"] = 200
    return params
