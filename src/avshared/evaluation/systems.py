"""The systems the report compares, as one long table of weighted predictions: every trained
phase under each input condition, the trivial reference baselines and the human raters.

Every system is turned into the same rows (``SYSTEM_PREDICTION_COLUMNS``: one row per clip for a
model, one row per clip and voted emotion for the crowd), which ``tables`` scores with
``scoring`` and compares with ``statistics``; bootstrap intervals resample test clips (or actors),
the same draws for every system, so the intervals of two systems on the same clips are comparable.
No Kedro, no plotting.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from avshared.crema_d import EMOTIONS, LETTER_EMOTIONS, is_demo_root, parse_clip_id
from avshared.evaluation.grid import check_cells_complete
from avshared.splits import fold_splits

logger = logging.getLogger(__name__)

#: Title suffix of everything computed on the generated corpus, so it is never taken for CREMA-D.
DEMO_LABEL = "DEMO DATA (generated)"
REAL_LABEL = "CREMA-D"

#: The long prediction table every system is scored from.
SYSTEM_PREDICTION_COLUMNS: tuple[str, ...] = (
    "system",  # row label of the comparison table, e.g. "bimodal (audio only)"
    "kind",  # model | reference | human
    "phase",  # training phase for models, else missing
    "condition",  # what the system was given: audiovisual | audio_only | video_only | none
    "clip_id",
    "actor",
    "level",
    "target",  # acted emotion, index into crema_d.EMOTIONS
    "predicted",  # index into crema_d.EMOTIONS
    "weight",  # 1 per clip for models; votes (or a share of a tied majority) for the crowd
    "fold",  # the fold whose test set the clip is in (0 for a single split)
    # the model's seed (index into training.seeds); missing for references and humans, who have
    # none: the paired tests compare each seed's predictions with the same rows of theirs
    "seed",
)
#: Columns of `{phase}.test_predictions` that reporting reads (`emotion` is the acted one).
MODEL_PREDICTION_COLUMNS: tuple[str, ...] = (
    "condition",
    "clip_id",
    "actor",
    "emotion",
    "level",
    "predicted",
)
#: What each condition shows the system, for the table's `inputs` column.
CONDITION_INPUTS: dict[str, str] = {
    "audiovisual": "audio+video",
    "audio_only": "audio",
    "video_only": "video",
    "none": "none",
}
#: The crowd rating modality presenting the same inputs as a condition: a model's predictions
#: are compared with the majority vote of raters who were given what the model was given.
CONDITION_OF_MODALITY: dict[str, str] = {
    "voice": "audio_only",
    "face": "video_only",
    "audiovisual": "audiovisual",
}
MODALITY_OF_CONDITION: dict[str, str] = {c: m for m, c in CONDITION_OF_MODALITY.items()}


def detect_data_label(crema_d_root: str, phase_metrics: dict[str, dict]) -> str:
    """``DEMO_LABEL`` when the models were trained on, or the root holds, the generated corpus.

    Args:
        crema_d_root: the CREMA-D root of this run; the demo generator leaves its marker file
            (``crema_d.DEMO_MARKER_FILE``) in the roots it writes.
        phase_metrics: each phase's metrics; a true ``demo`` entry marks a model trained on the
            generated corpus.

    Returns:
        ``DEMO_LABEL`` or ``REAL_LABEL``, used in every title and caption of the report.
    """
    demo_phases = sorted(phase for phase, metrics in phase_metrics.items() if metrics.get("demo"))
    if demo_phases or is_demo_root(crema_d_root):
        logger.info("Reporting on generated data (phases %s, root %s)", demo_phases, crema_d_root)
        return DEMO_LABEL
    return REAL_LABEL


def collect_phase_metrics(**metrics_by_phase: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each phase's metrics JSON, keyed by phase, in the order of the pipeline's phases; refuses
    phases with missing or stale cells (``grid.check_cells_complete``)."""
    check_cells_complete(metrics_by_phase)
    return dict(metrics_by_phase)


def gather_model_predictions(
    phase_metrics: dict[str, dict[str, Any]], **predictions_by_phase: pd.DataFrame
) -> pd.DataFrame:
    """The phases' test predictions as ``SYSTEM_PREDICTION_COLUMNS`` rows, a system per phase
    and input.

    The target is the ACTED emotion (the ``emotion`` column), whatever the phase was trained on,
    so that every row of the table answers the same question; agreement with the perceived
    (crowd) labels is scored separately (``score_systems``).

    Args:
        phase_metrics: each phase's metrics; ``condition`` names the phase's own inputs (e.g.
            ``audio_only`` for the audio phase). Its other conditions (the bimodal model asked
            with one modality) become systems named ``<phase> (<condition>)``.
        **predictions_by_phase: ``{phase}.test_predictions`` frames (``MODEL_PREDICTION_COLUMNS``).

    Returns:
        The stacked predictions, phases in the given order, each phase's own condition first.
    """
    frames = []
    for phase, predictions in predictions_by_phase.items():
        _require_columns(predictions, MODEL_PREDICTION_COLUMNS, f"{phase}.test_predictions")
        own = phase_metrics.get(phase, {}).get("condition")
        if own is None:
            raise KeyError(
                f"{phase}.metrics has no 'condition' (the inputs of the phase's own test): re-run "
                f"the training pipeline with `kedro run --pipelines={phase}`"
            )
        conditions = predictions["condition"].astype("str")
        unknown = sorted(set(conditions) - set(CONDITION_INPUTS))
        if unknown:
            raise ValueError(
                f"{phase}.test_predictions has unknown conditions {unknown}; "
                f"expected some of {sorted(CONDITION_INPUTS)}"
            )
        frame = pd.DataFrame(
            {
                "system": [_model_system_name(phase, c, own) for c in conditions],
                "kind": "model",
                "phase": phase,
                "condition": conditions,
                "clip_id": predictions["clip_id"],
                "actor": predictions["actor"],
                "level": predictions["level"],
                "target": _emotion_indices(predictions["emotion"], f"{phase}.test_predictions"),
                "predicted": predictions["predicted"],
                "weight": 1.0,
                # Written before folds (seeds) existed: a single split (one seed).
                "fold": predictions.get("fold", 0),
                "seed": predictions.get("seed", 0),
            }
        )
        own_first = frame.sort_values("condition", key=lambda c: c != own, kind="stable")
        frames.append(own_first)
    stacked = pd.concat(frames, ignore_index=True)
    return _check_predictions(stacked.loc[:, list(SYSTEM_PREDICTION_COLUMNS)])


def predict_reference_baselines(
    split: pd.DataFrame, clip_manifest: pd.DataFrame, chance_seed: int
) -> pd.DataFrame:
    """Majority-class and chance predictions for the test clips, as ``SYSTEM_PREDICTION_COLUMNS``
    rows.

    ``majority class`` predicts, for every test clip, the emotion most frequent among the TRAIN
    clips of its fold (the lowest class index on a tie). ``chance`` draws each prediction uniformly
    from the six emotions with a fixed seed: one realisation of a guesser, whose interval shows how
    far luck alone moves the scores (its expected accuracy is 1/6).
    """
    frames = []
    for fold, fold_split in fold_splits(split).items():
        clips = _split_with_labels(fold_split, clip_manifest)
        train_labels = clips.loc[clips["split"] == "train", "label"]
        if train_labels.empty:
            raise ValueError(
                f"the split has no train clips in fold {fold}: cannot find the majority class"
            )
        majority = int(np.bincount(train_labels, minlength=len(EMOTIONS)).argmax())
        test = clips.loc[clips["split"] == "test"]
        frames.append(test.assign(fold=fold, majority=majority))
    test = pd.concat(frames, ignore_index=True).sort_values("clip_id", ignore_index=True)
    chance = np.random.default_rng(chance_seed).integers(0, len(EMOTIONS), size=len(test))
    base = pd.DataFrame(
        {
            "kind": "reference",
            "phase": None,
            "condition": "none",
            "clip_id": test["clip_id"].to_numpy(),
            "actor": test["actor"].to_numpy(),
            "level": test["level"].to_numpy(),
            "target": test["label"].to_numpy(),
            "weight": 1.0,
            "fold": test["fold"].to_numpy(),
            "seed": pd.NA,
        }
    )
    majorities = sorted(set(test["majority"]))
    name = "majority class (" + "/".join(EMOTIONS[m] for m in majorities) + ")"
    majority_rows = base.assign(system=name, predicted=test["majority"].to_numpy())
    chance_rows = base.assign(system="chance (uniform)", predicted=chance)
    stacked = pd.concat([majority_rows, chance_rows], ignore_index=True)
    return _check_predictions(stacked.loc[:, list(SYSTEM_PREDICTION_COLUMNS)])


def human_rater_predictions(crowd_labels: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """The crowd's ratings of the test clips as weighted ``SYSTEM_PREDICTION_COLUMNS`` rows, per
    modality.

    Two systems per rating modality (voice, face, audiovisual):

    - ``human raters (<modality>)``: every individual response is a prediction (one row per clip and
      voted emotion, weighted by its vote count), so accuracy is the per-response accuracy: the
      acted emotion's votes over all responses of the test clips.
    - ``crowd majority (<modality>)``: the majority vote of each clip; a tie between m emotions
      is split, each getting weight 1/m (the expected score of breaking the tie at random).
    """
    _require_columns(
        crowd_labels,
        ("clip_id", "modality", "acted_emotion", "majority_vote", *_count_columns()),
        "crowd_labels",
    )
    tested = split.loc[split["split"] == "test"]
    fold_of_clip = (
        tested.set_index("clip_id")["fold"] if "fold" in tested else pd.Series(0, tested["clip_id"])
    )
    test_ids = set(tested["clip_id"])
    crowd = crowd_labels.loc[crowd_labels["clip_id"].isin(test_ids)].sort_values(
        ["modality", "clip_id"]
    )
    missing = test_ids - set(crowd["clip_id"])
    if missing:
        logger.warning(
            "%d test clips have no crowd ratings (e.g. %s); human rows use the others",
            len(missing),
            sorted(missing)[:3],
        )
    parsed = [parse_clip_id(clip_id) for clip_id in crowd["clip_id"]]
    clips = pd.DataFrame(
        {
            "modality": crowd["modality"].to_numpy(),
            "clip_id": crowd["clip_id"].to_numpy(),
            "actor": [clip.actor for clip in parsed],
            "level": [clip.level for clip in parsed],
            "target": _emotion_indices(crowd["acted_emotion"], "crowd_labels"),
            "fold": fold_of_clip.loc[crowd["clip_id"]].to_numpy(),
        }
    )

    counts = crowd.loc[:, list(_count_columns())].to_numpy(dtype=float)
    responses = _expand_votes(clips, counts)
    responses["system"] = "human raters (" + responses["modality"] + ")"

    tied_share = _majority_shares(crowd["majority_vote"])
    majority = _expand_votes(clips, tied_share)
    majority["system"] = "crowd majority (" + majority["modality"] + ")"

    stacked = pd.concat([responses, majority], ignore_index=True).assign(
        kind="human",
        phase=None,
        condition=lambda frame: frame["modality"].map(_human_condition),
        seed=pd.NA,
    )
    order = {f"{name} ({m})": i for i, (name, m) in enumerate(_human_systems())}
    stacked = stacked.sort_values("system", key=lambda s: s.map(order), kind="stable")
    return _check_predictions(
        stacked.loc[:, list(SYSTEM_PREDICTION_COLUMNS)].reset_index(drop=True)
    )


def stack_predictions(
    model_predictions: pd.DataFrame,
    reference_predictions: pd.DataFrame,
    human_predictions: pd.DataFrame,
) -> pd.DataFrame:
    """All systems' predictions in one table: models, then references, then humans."""
    return pd.concat(
        [model_predictions, reference_predictions, human_predictions], ignore_index=True
    )


def check_split_protocol(
    split: pd.DataFrame, phase_metrics: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The evaluation protocol of the report: ``folds`` and ``name``; refuses a mix.

    Every phase must have been trained and tested on the folds of this run's split: a phase
    trained on a single split (1 fold) next to phases trained under actor k-fold (or on another
    number of folds) would put scores of different test sets and protocols in one table.
    """
    folds = int(split["fold"].nunique()) if "fold" in split.columns else 1
    trained = {phase: int(metrics.get("folds", 1)) for phase, metrics in phase_metrics.items()}
    mixed = {phase: count for phase, count in trained.items() if count != folds}
    if mixed:
        raise ValueError(
            f"refusing to report: the split has {folds} fold(s) "
            f"({'actor k-fold' if folds > 1 else 'a single split'}) but the phases {mixed} were "
            "trained on another number of folds (1 = a single split); a table mixing fold and "
            "single-split results compares different test sets. Re-run those phases on this split "
            "(e.g. `kedro run --pipelines=training`) or report on the split they were trained on."
        )
    name = f"speaker-independent {folds}-fold cross-validation by actor" if folds > 1 else ""
    test_actors = int(split.loc[split["split"] == "test", "actor"].nunique())
    return {
        "folds": folds,
        "name": name or "a single train/val/test split",
        "test_actors": test_actors,
    }


def _model_system_name(phase: str, condition: str, own_condition: str) -> str:
    if condition == own_condition:
        return phase
    return f"{phase} ({condition.replace('_', ' ')})"


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} lacks the columns {missing} (it has {list(frame.columns)}): was it written by "
            "an older version of its pipeline? Re-run that pipeline."
        )


def _check_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    for column in ("target", "predicted"):
        values = predictions[column].to_numpy()
        if len(values) and (values.min() < 0 or values.max() >= len(EMOTIONS)):
            outside = (values < 0) | (values >= len(EMOTIONS))
            raise ValueError(
                f"{column} holds values outside 0..{len(EMOTIONS) - 1} (indices into "
                f"crema_d.EMOTIONS {EMOTIONS}) for systems "
                f"{sorted(set(predictions.loc[outside, 'system']))}"
            )
    return predictions.astype(
        {"target": "int64", "predicted": "int64", "weight": "float64", "seed": "Int64"}
    )


def _split_with_labels(split: pd.DataFrame, clip_manifest: pd.DataFrame) -> pd.DataFrame:
    _require_columns(split, ("clip_id", "actor", "split"), "split")
    _require_columns(clip_manifest, ("clip_id", "level", "label"), "clip_manifest")
    clips = split.merge(
        clip_manifest.loc[:, ["clip_id", "level", "label"]],
        on="clip_id",
        how="left",
        validate="one_to_one",
    )
    unknown = clips.loc[clips["label"].isna(), "clip_id"]
    if not unknown.empty:
        raise ValueError(
            f"{len(unknown)} clips of the split are not in clip_manifest (e.g. {unknown.iloc[0]}): "
            "the split is older than the manifest; re-run the split pipeline"
        )
    return clips.astype({"label": "int64"})


def _emotion_indices(emotions: pd.Series, source: str) -> np.ndarray:
    unknown = sorted(set(emotions) - set(EMOTIONS))
    if unknown:
        raise ValueError(f"{source} has unknown emotions {unknown}; expected {list(EMOTIONS)}")
    return emotions.map(EMOTIONS.index).to_numpy(dtype=np.int64)


def _human_systems() -> list[tuple[str, str]]:
    return [
        (name, modality)
        for name in ("human raters", "crowd majority")
        for modality in CONDITION_OF_MODALITY
    ]


def _human_condition(modality: str) -> str:
    return CONDITION_OF_MODALITY[modality]


def _majority_shares(majority_votes: pd.Series) -> np.ndarray:
    """(clips, emotions) weights of the majority vote: 1 for a winner, 1/m each in an m-way tie."""
    shares = np.zeros((len(majority_votes), len(EMOTIONS)))
    for row, vote in enumerate(majority_votes):
        winners = [EMOTIONS.index(LETTER_EMOTIONS[letter]) for letter in vote.split(":")]
        shares[row, winners] = 1 / len(winners)
    return shares


def _expand_votes(clips: pd.DataFrame, weights: np.ndarray) -> pd.DataFrame:
    """One row per clip and emotion with a positive weight: the emotion becomes the prediction."""
    clip_index, emotion = np.nonzero(weights > 0)
    return (
        clips.iloc[clip_index]
        .assign(predicted=emotion, weight=weights[clip_index, emotion])
        .reset_index(drop=True)
    )


def _untied_majorities(crowd_labels: pd.DataFrame) -> pd.DataFrame:
    """clip_id, modality and the crowd's majority emotion index (``perceived``) where not tied."""
    _require_columns(crowd_labels, ("clip_id", "modality", "majority_emotion"), "crowd_labels")
    untied = crowd_labels.loc[crowd_labels["majority_emotion"].notna()]
    return pd.DataFrame(
        {
            "clip_id": untied["clip_id"].to_numpy(),
            "modality": untied["modality"].to_numpy(),
            "perceived": _emotion_indices(untied["majority_emotion"], "crowd_labels"),
        }
    )


def _count_columns() -> tuple[str, ...]:
    return tuple(f"count_{emotion}" for emotion in EMOTIONS)
