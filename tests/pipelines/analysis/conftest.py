"""The analysis pipeline's tests: two tiny models trained for a few epochs on the synthetic corpus
of the training tests (tests/training/conftest.py, loaded from that file), a shared-encoder phase
(bimodal) and a separate-encoders phase (baseline), trained and evaluated by the training engine
as their template does; the corpus root is marked as the generated demo corpus."""

from __future__ import annotations

import copy
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from avshared.crema_d import DEMO_MARKER_FILE, EMOTIONS
from avshared.training import folds
from avshared.training.cells import Cell, cell_config
from avshared.training.phase import evaluate_model, phase_config, train_model
from avshared.training.phases import PHASE_MODALITIES

_spec = importlib.util.spec_from_file_location(
    "training_conftest", Path(__file__).resolve().parents[2] / "training" / "conftest.py"
)
_training = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _training  # its dataclass looks its module up there
_spec.loader.exec_module(_training)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: The analysed phases and their model kinds.
PHASE_KINDS = {"bimodal": "shared", "baseline": "separate"}


@dataclass(frozen=True)
class TrainedPhase:
    """What the training template leaves in the catalog for one phase."""

    model_weights: dict[str, Any]
    training_summary: dict[str, Any]
    targets: pd.DataFrame
    test_predictions: pd.DataFrame


@pytest.fixture(scope="session")
def analysis_corpus(tmp_path_factory):
    return _training.make_corpus(tmp_path_factory.mktemp("analysis_corpus"))


@pytest.fixture(scope="session")
def analysis_parameters() -> dict[str, Any]:
    """conf/base/parameters_analysis.yml's `analysis` block, with fewer bootstrap resamples."""
    text = (PROJECT_ROOT / "conf" / "base" / "parameters_analysis.yml").read_text()
    parameters = yaml.safe_load(text)["analysis"]
    parameters["bootstrap"] |= {"n_boot": 50, "cka_n_boot": 20}
    return parameters


@pytest.fixture(scope="session")
def crowd_votes(analysis_corpus) -> pd.DataFrame:
    """crowd_labels' vote counts per clip and rating modality: ten votes, mostly for the acted
    emotion, the face's more often than the voice's."""
    rng = np.random.default_rng(5)
    rows = []
    for clip_id, emotion in analysis_corpus.clip_manifest[["clip_id", "emotion"]].itertuples(
        index=False
    ):
        for modality, right in (("voice", 0.5), ("face", 0.8), ("audiovisual", 0.8)):
            acted = rng.random(10) < right
            votes = np.where(acted, EMOTIONS.index(emotion), rng.integers(0, len(EMOTIONS), 10))
            counts = np.bincount(votes, minlength=len(EMOTIONS))
            rows.append(
                {"clip_id": clip_id, "modality": modality, "num_responses": 10}
                | {f"count_{e}": int(c) for e, c in zip(EMOTIONS, counts, strict=True)}
            )
    return pd.DataFrame(rows)


def _tiny_config(phase: str, root: Path, checkpoints: Path) -> dict[str, Any]:
    """The project's training parameters for ``phase``, with a tiny two-layer model trained for
    two epochs on the CPU."""
    training = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())
    defaults = copy.deepcopy(training["training"]["defaults"])
    defaults["model"] = {
        "kind": PHASE_KINDS[phase],
        "preset": "tiny",
        "dim": 32,
        "depth": 2,
        "heads": 2,
        "audio_patch": [8, 8],
        "video_tubelet": [2, 16, 16],
    }
    defaults["optimiser"] |= {"learning_rate": 3.0e-3, "warmup_epochs": 0}
    defaults["trainer"] |= {"max_epochs": 2, "min_epochs": 1, "progress_bar": False}
    defaults["trainer"] |= {"accelerator": "cpu"}
    defaults["data"] |= {"num_workers": 0}
    defaults["checkpoint_dir"] = str(checkpoints)
    config = phase_config(
        defaults,
        {},
        str(root),
        phase=phase,
        modalities=PHASE_MODALITIES[phase],
        seeds=training["training"]["seeds"],
    )
    return cell_config(config, Cell(fold=0, seed=0))


@pytest.fixture(scope="session")
def trained_phases(analysis_corpus, tmp_path_factory) -> dict[str, TrainedPhase]:
    root = tmp_path_factory.mktemp("crema_d_demo")
    (root / DEMO_MARKER_FILE).write_text("")
    corpus, phases = analysis_corpus, {}
    features = {
        "log_mel_spectrograms": corpus.log_mel_spectrograms,
        "face_frames": corpus.face_frames,
    }
    for phase in PHASE_KINDS:
        config = _tiny_config(phase, root, tmp_path_factory.mktemp("checkpoints"))
        targets, target_summary = folds.build_fold_targets(
            corpus.clip_manifest, corpus.crowd_labels, corpus.split, config
        )
        model, _, summary = train_model(
            targets=targets,
            target_summary=target_summary,
            config=config,
            spectrogram_stats=corpus.spectrogram_stats,
            **features,
        )
        weights = model.state_dict()
        predictions, _ = evaluate_model(
            model_weights=weights, targets=targets, training_summary=summary, **features
        )
        # As the phase's gathered predictions: the cell's fold and seed beside each clip.
        predictions = predictions.assign(fold=0, seed=0)
        phases[phase] = TrainedPhase(weights, summary, targets, predictions)
    return phases
