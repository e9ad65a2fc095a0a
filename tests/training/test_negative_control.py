"""A negative control of the whole engine: trained on shuffled labels, a model scores at chance.

The training and validation clips' labels are permuted among those clips (the features keep no
relation to them); the test clips keep their true labels. Whatever the engine does, the model can
then only guess on the test clips, so its test accuracy must lie in the chance interval. Test
labels that reach training by any route (a leak between splits, a join by position, a label column
read by mistake) push it above; the companion case shows that this setup can score above it: the
same models trained on the true labels do.

The chance interval is not the binomial one around 1/6: a model trained on shuffled labels does
not guess clip by clip, it maps whole emotions (the clusters of the features) to whichever label
their training clips happened to carry most, so its clips' guesses hang together and its accuracy
spreads wider than independent guesses would (of twelve such models on a corpus like this one with
144 test clips, one scored 6.2%, outside the 99.9% binomial interval, 7.6% to 27.8%). What is
random is which label each emotion is mapped to: the shuffle and the initial weights are the same
in distribution under any renaming of the classes. So the interval is the central 99% of the
accuracies the model's own predictions reach under every renaming of the classes (all 720
permutations of six), a test whose level holds whatever the dependence between clips (99.9% of
720 renamings would be their whole range, which no accuracy can leave).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from avshared.crema_d import EMOTIONS
from avshared.pipelines.training import PHASE_MODALITIES
from avshared.training.cells import Cell, cell_config
from avshared.training.data import TARGET_COLUMNS
from avshared.training.phase import build_targets, evaluate_model, phase_config, train_model

#: The chance interval's coverage: a model that learnt nothing leaves it 1% of the time at most.
COVERAGE = 0.99


def chance_interval(predicted: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """The central ``COVERAGE`` of the accuracies of ``predicted`` (class indices) against
    ``target`` under every permutation of the class names; under the null (the model's naming of
    the classes is arbitrary) its accuracy falls below or above with probability (1 - COVERAGE) / 2
    at most each."""
    renamings = np.array(list(itertools.permutations(range(len(EMOTIONS)))))
    accuracies = np.sort((renamings[:, predicted] == target).mean(axis=1))
    outside = int((1 - COVERAGE) / 2 * len(accuracies))  # values allowed beyond each end
    return float(accuracies[outside]), float(accuracies[-1 - outside])


def _shuffled(targets: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The training and validation rows' labels permuted among those rows; test rows untouched."""
    shuffled = targets.copy()
    learnt = np.flatnonzero(targets["split"].isin(["train", "val"]).to_numpy())
    order = np.random.default_rng(seed).permutation(learnt)
    columns = ["target", *TARGET_COLUMNS]
    shuffled.loc[shuffled.index[learnt], columns] = targets.iloc[order][columns].to_numpy()
    return shuffled


def test_the_chance_interval_holds_renamed_guesses_and_excludes_a_right_answer():
    target = np.repeat(np.arange(6), 4)
    low, high = chance_interval(target, target)  # every prediction right
    assert high < 1.0
    derangement = (target + 1) % 6
    assert chance_interval(derangement, target) == (low, high)  # the same predictions renamed
    assert 0.0 == low < 1 / 6 < high


@pytest.fixture
def make_config(tiny_defaults, phase_overrides, training_parameters, tmp_path):
    """The config of a phase's one cell from the tiny defaults and the project's phase overrides."""

    def make(phase):
        config = phase_config(
            tiny_defaults,
            phase_overrides[phase],
            str(tmp_path),
            phase=phase,
            modalities=PHASE_MODALITIES[phase],
            seeds=training_parameters["seeds"],
        )
        return cell_config(config, Cell(fold=0, seed=0))

    return make


@pytest.mark.parametrize("phase", ["bimodal", "baseline"])
@pytest.mark.parametrize("labels", ["shuffled", "true"])
def test_shuffled_labels_score_at_chance_and_true_labels_above(corpus, make_config, labels, phase):
    config = make_config(phase)
    targets, summary = build_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split, config
    )
    trained_on = {
        "shuffled": _shuffled(targets, seed=0),
        "true": targets,
    }
    features = {
        "log_mel_spectrograms": corpus.log_mel_spectrograms,
        "face_frames": corpus.face_frames,
    }
    model, _, training_summary = train_model(
        targets=trained_on[labels],
        target_summary=summary,
        config=config,
        spectrogram_stats=corpus.spectrogram_stats,
        **features,
    )
    predictions, metrics = evaluate_model(
        model_weights=model.state_dict(),
        targets=targets,  # scored against the true labels
        training_summary=json.loads(json.dumps(training_summary)),
        **features,
    )

    scored = predictions.loc[predictions["condition"] == metrics["condition"]]
    low, high = chance_interval(scored["predicted"].to_numpy(), scored["target"].to_numpy())
    if labels == "shuffled":
        assert low <= metrics["test_accuracy"] <= high, (metrics["test_accuracy"], low, high)
    else:
        assert metrics["test_accuracy"] > high, (metrics["test_accuracy"], low, high)
