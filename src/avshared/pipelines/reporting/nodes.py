"""Nodes of the reporting pipeline: every trained phase, trivial baselines and human raters, scored
on the same test clips and compared in one table, with paired tests and figures. The catalog logs
the tables and figures to MLflow (kedro-mlflow's MlflowArtifactDataset): no node calls MLflow.

Every system is turned into the same long table of weighted predictions (``PREDICTION_COLUMNS``:
one row per clip for a model, one row per clip and voted emotion for the crowd) and scored by
``avshared.evaluation``; bootstrap intervals resample test clips (or actors), the same draws for
every system, so the intervals of two systems on the same clips are comparable.
"""

from __future__ import annotations

import logging
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from avshared.crema_d import EMOTIONS, LETTER_EMOTIONS, LEVELS, is_demo_root, parse_clip_id
from avshared.evaluation import (
    SCORE_NAMES,
    classification_scores,
    confusion_matrices,
    format_estimate,
    holm_adjust,
    paired_difference,
    per_class_scores,
    scores_with_intervals,
)
from avshared.pipelines.split.nodes import fold_splits

logger = logging.getLogger(__name__)

#: Title suffix of everything computed on the generated corpus, so it is never taken for CREMA-D.
DEMO_LABEL = "DEMO DATA (generated)"
REAL_LABEL = "CREMA-D"

#: The long prediction table every system is scored from.
PREDICTION_COLUMNS: tuple[str, ...] = (
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
#: Columns of ``paired_comparisons``, one row per pair of systems.
PAIRED_COLUMNS: tuple[str, ...] = (
    "system_a",
    "system_b",
    "clips",
    "unit",
    "units",
    "accuracy_a",
    "accuracy_b",
    "difference",
    "difference_low",
    "difference_high",
    "test",
    "p_value",
    "p_holm",
    "verdict",
)
#: Columns of ``fold_scores``: one row per system and fold.
FOLD_SCORE_COLUMNS: tuple[str, ...] = ("system", "kind", "fold", "test_clips", *SCORE_NAMES)
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
#: Scores of the comparison table: the classification scores and the agreement with the crowd.
TABLE_SCORES: tuple[str, ...] = (*SCORE_NAMES, "crowd_agreement")
#: Columns each `{phase}.training_history` must have, one row per epoch.
HISTORY_COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "val_loss",
    "train_accuracy",
    "val_accuracy",
)
REQUIRED_HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "train_accuracy")
_ALL_LEVELS = "all"


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
    """Each phase's metrics JSON, keyed by phase, in the order of the pipeline's phases."""
    return dict(metrics_by_phase)


def gather_model_predictions(
    phase_metrics: dict[str, dict[str, Any]], **predictions_by_phase: pd.DataFrame
) -> pd.DataFrame:
    """The phases' test predictions as ``PREDICTION_COLUMNS`` rows, a system per phase and input.

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
                # Written before folds existed: a single split.
                "fold": predictions.get("fold", 0),
            }
        )
        own_first = frame.sort_values("condition", key=lambda c: c != own, kind="stable")
        frames.append(own_first)
    stacked = pd.concat(frames, ignore_index=True)
    return _check_predictions(stacked.loc[:, list(PREDICTION_COLUMNS)])


def predict_reference_baselines(
    split: pd.DataFrame, clip_manifest: pd.DataFrame, chance_seed: int
) -> pd.DataFrame:
    """Majority-class and chance predictions for the test clips, as ``PREDICTION_COLUMNS`` rows.

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
        }
    )
    majorities = sorted(set(test["majority"]))
    name = "majority class (" + "/".join(EMOTIONS[m] for m in majorities) + ")"
    majority_rows = base.assign(system=name, predicted=test["majority"].to_numpy())
    chance_rows = base.assign(system="chance (uniform)", predicted=chance)
    stacked = pd.concat([majority_rows, chance_rows], ignore_index=True)
    return _check_predictions(stacked.loc[:, list(PREDICTION_COLUMNS)])


def human_rater_predictions(crowd_labels: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """The crowd's ratings of the test clips as weighted ``PREDICTION_COLUMNS`` rows, per modality.

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
        kind="human", phase=None, condition=lambda frame: frame["modality"].map(_human_condition)
    )
    order = {f"{name} ({m})": i for i, (name, m) in enumerate(_human_systems())}
    stacked = stacked.sort_values("system", key=lambda s: s.map(order), kind="stable")
    return _check_predictions(stacked.loc[:, list(PREDICTION_COLUMNS)].reset_index(drop=True))


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
    return {"folds": folds, "name": name or "a single train/val/test split"}


def resolve_bootstrap(bootstrap: dict[str, Any], protocol: dict[str, Any]) -> dict[str, Any]:
    """The bootstrap settings of the report: under k-fold the actor is the resampled unit (the
    pooled predictions of a fold share its model, and clips of one speaker are alike)."""
    if protocol["folds"] > 1 and bootstrap["unit"] != "actor":
        logger.info("k-fold report: bootstrap resamples actors, not %ss", bootstrap["unit"])
        return {**bootstrap, "unit": "actor"}
    return bootstrap


def score_folds(predictions: pd.DataFrame) -> pd.DataFrame:
    """Each system's scores on each fold's test clips (``FOLD_SCORE_COLUMNS``)."""
    rows = []
    for (system, fold), part in predictions.groupby(["system", "fold"], sort=False):
        rows.append(
            {
                "system": system,
                "kind": part["kind"].iloc[0],
                "fold": int(fold),
                "test_clips": part["clip_id"].nunique(),
                **classification_scores(part["target"], part["predicted"], part["weight"]),
            }
        )
    return pd.DataFrame(rows, columns=list(FOLD_SCORE_COLUMNS)).sort_values(
        ["system", "fold"], key=_system_order(predictions), kind="stable", ignore_index=True
    )


def compare_pairs(
    predictions: pd.DataFrame, bootstrap: dict[str, Any], paired: dict[str, Any]
) -> pd.DataFrame:
    """Paired comparisons of accuracy on the clips both systems were tested on (``PAIRED_COLUMNS``).

    For each pair of ``paired["pairs"]`` present in this report: accuracy of A minus accuracy of B,
    with a percentile bootstrap interval on the resamples every score of the report uses (same
    seed, same unit: clips, or actors under k-fold), and a two-sided p-value (exact McNemar for two
    models resampled by clip; a sign-flip permutation test by actor, or where human raters are
    scored by their share of correct responses per clip). p-values are Holm-adjusted across the
    table; the verdict reads the adjusted p-value against ``paired["alpha"]``.

    Human raters are compared on each clip's share of correct responses (every clip counts once),
    which can differ slightly from their per-response accuracy in the comparison table.
    """
    alpha = float(paired["alpha"])
    correctness = _clip_correctness(predictions)
    present = set(correctness.columns)
    pairs = [tuple(pair) for pair in paired["pairs"]]
    skipped = [pair for pair in pairs if not set(pair) <= present]
    if skipped:
        logger.info("Paired comparisons not in this report (systems not run): %s", skipped)
    by_actor = bootstrap["unit"] == "actor"
    rows = []
    for system_a, system_b in (pair for pair in pairs if pair not in skipped):
        both = correctness.loc[:, [system_a, system_b]].dropna()
        result = paired_difference(
            both[system_a].to_numpy(),
            both[system_b].to_numpy(),
            groups=both.index.get_level_values("actor").to_numpy() if by_actor else None,
            n_boot=int(bootstrap["n_boot"]),
            seed=int(bootstrap["seed"]),
            confidence=float(bootstrap["confidence"]),
            n_permutations=int(paired["n_permutations"]),
        )
        rows.append(
            {
                "system_a": system_a,
                "system_b": system_b,
                "clips": result.clips,
                "unit": "actor" if by_actor else "clip",
                "units": result.units,
                "accuracy_a": float(both[system_a].mean()),
                "accuracy_b": float(both[system_b].mean()),
                "difference": result.difference,
                "difference_low": result.low,
                "difference_high": result.high,
                "test": result.test,
                "p_value": result.p_value,
            }
        )
    table = pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
    table["p_holm"] = holm_adjust(table["p_value"]) if len(table) else []
    table["verdict"] = [
        _verdict(difference, p, alpha)
        for difference, p in zip(table["difference"], table["p_holm"], strict=True)
    ]
    return table


def _verdict(difference: float, p_holm: float, alpha: float) -> str:
    if p_holm < alpha:
        return "better" if difference > 0 else "worse"
    return f"no detectable difference at {1 - alpha:.0%}"


def _clip_correctness(predictions: pd.DataFrame) -> pd.DataFrame:
    """(clip_id, actor) x system: how right each system is on each test clip, in [0, 1]."""
    hit = predictions.assign(hit=(predictions["target"] == predictions["predicted"]).astype(float))
    hit["weighted"] = hit["hit"] * hit["weight"]
    sums = hit.groupby(["clip_id", "actor", "system"], sort=True)[["weighted", "weight"]].sum()
    return (sums["weighted"] / sums["weight"]).unstack("system")


def _system_order(predictions: pd.DataFrame):
    order = {system: index for index, system in enumerate(dict.fromkeys(predictions["system"]))}
    return lambda column: column.map(order) if column.name == "system" else column


def score_systems(
    predictions: pd.DataFrame, crowd_labels: pd.DataFrame, bootstrap: dict[str, Any]
) -> pd.DataFrame:
    """One row per system: each score of ``TABLE_SCORES`` with its bootstrap interval.

    Args:
        predictions: ``PREDICTION_COLUMNS`` rows of every system.
        crowd_labels: the labels pipeline's crowd labels (for the agreement with the crowd).
        bootstrap: ``n_boot``, ``seed``, ``confidence`` and ``unit`` (``clip`` or ``actor``: what
            is resampled).

    Returns:
        system, kind, phase, condition, inputs, test_clips, then ``<score>``, ``<score>_low`` and
        ``<score>_high`` for every score, crowd_modality and crowd_agreement_clips.
        ``crowd_agreement`` (models only) is the share of test clips whose prediction equals the
        crowd's majority vote in the modality presenting the model's inputs (voice for audio,
        face for video, audiovisual for both), over the clips without a tied majority.
    """
    groups_column = _bootstrap_groups_column(bootstrap)
    majorities = _untied_majorities(crowd_labels)
    rows = []
    for system, rows_of_system in predictions.groupby("system", sort=False):
        first = rows_of_system.iloc[0]
        row = {
            "system": system,
            "kind": first["kind"],
            "phase": first["phase"],
            "condition": first["condition"],
            "inputs": CONDITION_INPUTS[first["condition"]],
            "test_clips": rows_of_system["clip_id"].nunique(),
        }
        estimates = _estimates(rows_of_system, "target", groups_column, bootstrap)
        modality = MODALITY_OF_CONDITION[first["condition"]] if first["kind"] == "model" else None
        agreement_clips = 0
        if modality is not None:
            perceived = rows_of_system.merge(
                majorities.loc[majorities["modality"] == modality, ["clip_id", "perceived"]],
                on="clip_id",
                how="inner",
            )
            agreement_clips = len(perceived)
            if agreement_clips:
                estimates["crowd_agreement"] = _estimates(
                    perceived, "perceived", groups_column, bootstrap
                )["accuracy"]
        for name in TABLE_SCORES:
            value, low, high = estimates.get(name, (np.nan, np.nan, np.nan))
            row |= {name: value, f"{name}_low": low, f"{name}_high": high}
        row |= {"crowd_modality": modality, "crowd_agreement_clips": agreement_clips}
        rows.append(row)
    return pd.DataFrame(rows)


def score_per_emotion_and_level(predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-emotion precision/recall/F1 and per-level scores of every system.

    Returns:
        ``per_emotion``: system, kind, level (``all`` or LO/MD/HI/XX), emotion, precision, recall,
        f1, support (clips for models, responses for human raters); undefined scores are NaN.
        ``per_level``: system, level, clips, then the scores of ``SCORE_NAMES`` on that level's
        clips.
    """
    per_emotion, per_level = [], []
    for system, rows in predictions.groupby("system", sort=False):
        for level in (_ALL_LEVELS, *LEVELS):
            subset = rows if level == _ALL_LEVELS else rows.loc[rows["level"] == level]
            if subset.empty:
                continue
            args = (subset["target"], subset["predicted"], subset["weight"])
            labels = {"system": system, "kind": rows["kind"].iloc[0], "level": level}
            per_emotion.append(per_class_scores(*args).assign(**labels))
            per_level.append(
                {
                    "system": system,
                    "level": level,
                    "clips": subset["clip_id"].nunique(),
                    **classification_scores(*args),
                }
            )
    per_emotion_frame = pd.concat(per_emotion, ignore_index=True)
    leading = ["system", "kind", "level"]
    columns = leading + [c for c in per_emotion_frame.columns if c not in leading]
    return per_emotion_frame.loc[:, columns], pd.DataFrame(per_level)


def confusion_matrix_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Confusion matrices of every system in long form.

    Returns:
        system, kind, phase, condition, true_emotion, predicted_emotion, count (clips, or responses
        for human raters) and row_share (count over the true emotion's total).
    """
    frames = []
    for system, rows in predictions.groupby("system", sort=False):
        counts, shares = confusion_matrices(rows["target"], rows["predicted"], rows["weight"])
        first = rows.iloc[0]
        frames.append(
            pd.DataFrame(
                {
                    "system": system,
                    "kind": first["kind"],
                    "phase": first["phase"],
                    "condition": first["condition"],
                    "true_emotion": np.repeat(EMOTIONS, len(EMOTIONS)),
                    "predicted_emotion": np.tile(EMOTIONS, len(EMOTIONS)),
                    "count": counts.ravel(),
                    "row_share": shares.ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def format_comparison_table(
    scores: pd.DataFrame,
    phase_metrics: dict[str, dict[str, Any]],
    *,
    bootstrap: dict[str, Any],
    data_label: str,
    protocol: dict[str, Any],
    fold_scores: pd.DataFrame,
    paired: pd.DataFrame,
) -> tuple[pd.DataFrame, str]:
    """The comparison table for people: each score as ``0.512 [0.471, 0.553]``, as CSV, and a
    Markdown document with the table and the paired comparisons.

    Args:
        scores: ``score_systems`` output.
        phase_metrics: each phase's metrics (``param_count`` fills the ``parameters`` column).
        bootstrap: the bootstrap settings, quoted in the caption.
        data_label: ``DEMO_LABEL`` or ``REAL_LABEL``, in the Markdown title.
        protocol: ``check_split_protocol`` output; under k-fold the table has the accuracy's
            mean +- sd over the folds (``accuracy_over_folds``).
        fold_scores: ``score_folds`` output.
        paired: ``compare_pairs`` output.

    Returns:
        The formatted table and the Markdown document.
    """
    table = pd.DataFrame(
        {
            "system": scores["system"],
            "kind": scores["kind"],
            "inputs": scores["inputs"],
            "test_clips": scores["test_clips"].astype(int),
            "parameters": [
                _parameter_count(phase_metrics, phase) if kind == "model" else "—"
                for phase, kind in zip(scores["phase"], scores["kind"], strict=True)
            ],
        }
    )
    for name in TABLE_SCORES:
        table[name] = [
            format_estimate(value, low, high)
            for value, low, high in zip(
                scores[name], scores[f"{name}_low"], scores[f"{name}_high"], strict=True
            )
        ]
    if protocol["folds"] > 1:
        spread = fold_scores.groupby("system", sort=False)["accuracy"].agg(["mean", "std"])
        table["accuracy_over_folds"] = [
            f"{spread.loc[system, 'mean']:.3f} ± {spread.loc[system, 'std']:.3f}"
            for system in table["system"]
        ]
    table["crowd_reference"] = [
        f"{modality} majority, {clips} untied clips" if isinstance(modality, str) else "—"
        for modality, clips in zip(
            scores["crowd_modality"], scores["crowd_agreement_clips"], strict=True
        )
    ]
    interval = (
        f"{bootstrap['confidence']:.0%} percentile bootstrap intervals over test "
        f"{bootstrap['unit']}s ({bootstrap['n_boot']} resamples, seed {bootstrap['seed']})"
    )
    folds = (
        f" Pooled predictions of the {protocol['folds']} folds (every clip tested once, by the "
        "model whose training never saw its actor); `accuracy_over_folds` is the mean ± sd of "
        "the per-fold accuracies."
        if protocol["folds"] > 1
        else ""
    )
    markdown = "\n".join(
        [
            f"# Emotion recognition on the test clips — {data_label}",
            "",
            f"Protocol: {protocol['name']}. Scores on the held-out test clips with {interval}."
            f"{folds} Column meanings: docs/results.md.",
            "",
            markdown_table(table),
            "",
            "## Paired comparisons",
            "",
            "Accuracy of A minus accuracy of B on the clips both were tested on, with a paired "
            "bootstrap interval on the same resamples as above; p-values Holm-adjusted over the "
            "table (docs/results.md).",
            "",
            markdown_table(format_paired_comparisons(paired)),
            "",
        ]
    )
    return table, markdown


def format_paired_comparisons(paired: pd.DataFrame) -> pd.DataFrame:
    """The paired comparisons for people: accuracies, difference with interval, p-values."""
    return pd.DataFrame(
        {
            "A": paired["system_a"],
            "B": paired["system_b"],
            "clips": paired["clips"],
            "accuracy A": paired["accuracy_a"].map("{:.3f}".format),
            "accuracy B": paired["accuracy_b"].map("{:.3f}".format),
            "A - B [95% CI]": [
                f"{d:+.3f} [{low:+.3f}, {high:+.3f}]"
                for d, low, high in zip(
                    paired["difference"],
                    paired["difference_low"],
                    paired["difference_high"],
                    strict=True,
                )
            ],
            "test": paired["test"],
            "p": paired["p_value"].map("{:.2g}".format),
            "p (Holm)": paired["p_holm"].map("{:.2g}".format),
            "verdict": paired["verdict"],
        }
    )


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (missing cells shown as an em dash)."""

    def cell(value: Any) -> str:
        missing = value is None or (np.ndim(value) == 0 and pd.isna(value))
        return "—" if missing else str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(cell(c) for c in frame.columns) + " |",
        "| " + " | ".join("---" for _ in frame.columns) + " |",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def collect_training_histories(**history_by_phase: pd.DataFrame) -> pd.DataFrame:
    """The phases' per-epoch histories in one long table: phase, fold, then ``HISTORY_COLUMNS``.

    Validation columns are NaN for a phase trained without a validation split.
    """
    frames = []
    for phase, history in history_by_phase.items():
        _require_columns(history, REQUIRED_HISTORY_COLUMNS, f"{phase}.training_history")
        fold = history.get("fold", 0)
        frames.append(history.reindex(columns=list(HISTORY_COLUMNS)).assign(phase=phase, fold=fold))
    histories = pd.concat(frames, ignore_index=True)
    return histories.loc[:, ["phase", "fold", *HISTORY_COLUMNS]]


def plot_confusion_matrices(confusion: pd.DataFrame, data_label: str) -> dict[str, Figure]:
    """One figure per phase, one panel per condition: row shares as colour, counts written in.

    Returns:
        ``{"<phase>.png": figure}``, for a MatplotlibDataset that writes a folder of images.
    """
    models = confusion.loc[confusion["kind"] == "model"]
    figures = {}
    for phase, rows in models.groupby("phase", sort=False):
        systems = list(dict.fromkeys(rows["system"]))
        figure = Figure(figsize=(4.6 * len(systems) + 0.8, 4.6), layout="constrained")
        axes = figure.subplots(1, len(systems), squeeze=False)[0]
        for axis, system in zip(axes, systems, strict=True):
            matrix = rows.loc[rows["system"] == system]
            counts = matrix["count"].to_numpy().reshape(len(EMOTIONS), len(EMOTIONS))
            shares = matrix["row_share"].to_numpy().reshape(len(EMOTIONS), len(EMOTIONS))
            image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
            for (true, predicted), count in np.ndenumerate(counts):
                colour = "white" if shares[true, predicted] > 0.55 else "black"
                axis.text(predicted, true, f"{count:g}", ha="center", va="center", color=colour)
            axis.set(
                title=f"{system} ({int(counts.sum())} clips)",
                xlabel="predicted emotion",
                ylabel="acted emotion",
                xticks=range(len(EMOTIONS)),
                yticks=range(len(EMOTIONS)),
                xticklabels=EMOTIONS,
                yticklabels=EMOTIONS,
            )
        figure.colorbar(image, ax=axes, shrink=0.8, label="share of the acted emotion's clips")
        figure.suptitle(f"Confusion matrix on the test clips: {phase} — {data_label}")
        figures[f"{phase}.png"] = figure
    return figures


def plot_per_emotion_f1(per_emotion: pd.DataFrame, data_label: str) -> Figure:
    """Grouped bars of each emotion's F1, one bar per model system and per human-rater modality."""
    rows = per_emotion.loc[
        (per_emotion["level"] == _ALL_LEVELS)
        & (
            (per_emotion["kind"] == "model")
            | per_emotion["system"].str.startswith("human raters", na=False)
        )
    ]
    systems = list(dict.fromkeys(rows["system"]))
    figure = Figure(figsize=(11, 4.8), layout="constrained")
    axis = figure.subplots()
    width = 0.8 / len(systems)
    positions = np.arange(len(EMOTIONS))
    colours = _system_colours(systems)
    for index, system in enumerate(systems):
        f1 = rows.loc[rows["system"] == system].set_index("emotion").reindex(EMOTIONS)["f1"]
        axis.bar(
            positions + (index - (len(systems) - 1) / 2) * width,
            f1.to_numpy(dtype=float),
            width,
            label=system,
            color=colours[system],
            hatch="//" if system.startswith("human") else None,
            edgecolor="white",
        )
    axis.axhline(1 / len(EMOTIONS), color="grey", linestyle=":", label="chance (1/6)")
    axis.set(
        xticks=positions,
        xticklabels=EMOTIONS,
        ylim=(0, 1),
        ylabel="F1 on the test clips",
        title=f"Per-emotion F1 by system — {data_label}",
    )
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return figure


def plot_training_curves(histories: pd.DataFrame, data_label: str) -> Figure:
    """Train (solid) and validation (dashed) loss and accuracy per epoch, one colour per phase;
    under k-fold, the mean over the folds still training at each epoch."""
    if "fold" in histories:
        histories = histories.groupby(["phase", "epoch"], sort=False, as_index=False).mean(
            numeric_only=True
        )
    figure = Figure(figsize=(11, 4.4), layout="constrained")
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    phases = list(dict.fromkeys(histories["phase"]))
    colours = _system_colours(phases)
    for phase in phases:
        history = histories.loc[histories["phase"] == phase]
        for axis, quantity in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
            for part, style in (("train", "-"), ("val", "--")):
                axis.plot(
                    history["epoch"],
                    history[f"{part}_{quantity}"],
                    style,
                    color=colours[phase],
                    marker="o",
                    markersize=3,
                    label=f"{phase} {part}",
                )
    for axis in (loss_axis, accuracy_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="Accuracy")
    accuracy_axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    figure.suptitle(f"Training curves (validation = held-out val split) — {data_label}")
    return figure


def _system_colours(names: list[str]) -> dict[str, Any]:
    palette = matplotlib.colormaps["tab10"]
    return {name: palette(index % palette.N) for index, name in enumerate(names)}


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
    return predictions.astype({"target": "int64", "predicted": "int64", "weight": "float64"})


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


def _count_columns() -> tuple[str, ...]:
    return tuple(f"count_{emotion}" for emotion in EMOTIONS)


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


def _bootstrap_groups_column(bootstrap: dict[str, Any]) -> str:
    units = {"clip": "clip_id", "actor": "actor"}
    if bootstrap["unit"] not in units:
        raise ValueError(
            f"reporting.bootstrap.unit must be one of {sorted(units)}, got {bootstrap['unit']!r}"
        )
    return units[bootstrap["unit"]]


def _estimates(
    rows: pd.DataFrame, target_column: str, groups_column: str, bootstrap: dict[str, Any]
) -> dict[str, tuple[float, float, float]]:
    # Sorting by clip makes every system on the same clips draw the same bootstrap resamples.
    rows = rows.sort_values(["clip_id", "predicted"], kind="stable")
    estimates = scores_with_intervals(
        rows[target_column],
        rows["predicted"],
        sample_weight=rows["weight"],
        groups=rows[groups_column].to_numpy(),
        n_boot=int(bootstrap["n_boot"]),
        seed=int(bootstrap["seed"]),
        confidence=float(bootstrap["confidence"]),
    )
    return {name: (e.value, e.low, e.high) for name, e in estimates.items()}


def _parameter_count(phase_metrics: dict[str, dict[str, Any]], phase: str) -> str:
    """The phase's trainable parameter count as ``1,234,567``, or an em dash if not reported."""
    count = phase_metrics.get(phase, {}).get("param_count")
    return "—" if count is None else f"{int(count):,}"
