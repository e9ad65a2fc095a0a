"""The comparison's tables: each system scored (with bootstrap intervals), per fold, per emotion and
level, the paired comparisons with Holm's adjustment, confusion matrices in long form, the tables
for people (CSV and Markdown) and the phases' training histories in one table. No Kedro, no
plotting."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from avshared.crema_d import EMOTIONS, LEVELS
from avshared.evaluation.grid import still_rising, summarise_endings
from avshared.evaluation.scoring import (
    SCORE_NAMES,
    classification_scores,
    confusion_matrices,
    format_estimate,
    per_class_scores,
    scores_with_intervals,
)
from avshared.evaluation.statistics import holm_adjust, paired_difference
from avshared.evaluation.systems import (
    CONDITION_INPUTS,
    MODALITY_OF_CONDITION,
    _require_columns,
    _untied_majorities,
)

logger = logging.getLogger(__name__)


#: Columns of ``paired_comparisons``, one row per pair of systems.
PAIRED_COLUMNS: tuple[str, ...] = (
    "system_a",
    "system_b",
    "clips",
    "seeds",
    "unit",
    "units",
    "accuracy_a",
    "accuracy_b",
    "difference",
    "difference_low",
    "difference_high",
    "test",
    "p_value",
    "p_min",
    "p_holm",
    "verdict",
)


#: Columns of ``fold_scores``: one row per system and fold.
FOLD_SCORE_COLUMNS: tuple[str, ...] = ("system", "kind", "fold", "test_clips", *SCORE_NAMES)


#: Scores of the comparison table: the classification scores and the agreement with the crowd.
TABLE_SCORES: tuple[str, ...] = (*SCORE_NAMES, "crowd_agreement")


#: Columns of the stacked training histories, one row per epoch: each phase's own (a phase trained
#: without a validation split lacks the val columns, a one-modality phase the per-sense ones).
HISTORY_COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "val_loss",
    "train_accuracy",
    "val_accuracy",
    "val_accuracy_audio",
    "val_accuracy_video",
)


REQUIRED_HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "train_accuracy")


_ALL_LEVELS = "all"


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
    models of one seed resampled by clip; a sign-flip permutation test by clip with several seeds,
    by actor, or where human raters are scored by their share of correct responses per clip).
    p-values are Holm-adjusted across the table; the verdict reads the adjusted p-value against
    ``paired["alpha"]``.

    Rows are paired on clip x seed (``_paired_rows``): seed i of A against seed i of B, and a
    system without seeds (human raters, references) against each seed of the other with the same
    rows. With several seeds the resampled and permuted unit stays the clip (or actor), all its
    seeds together, so that the seeds of one clip never count as independent clips.

    Human raters are compared on each clip's share of correct responses (every clip counts once),
    which can differ slightly from their per-response accuracy in the comparison table.
    """
    alpha = float(paired["alpha"])
    correctness = _correctness(predictions)
    present = set(correctness["system"])
    pairs = [tuple(pair) for pair in paired["pairs"]]
    skipped = [pair for pair in pairs if not set(pair) <= present]
    if skipped:
        logger.info("Paired comparisons not in this report (systems not run): %s", skipped)
    by_actor = bootstrap["unit"] == "actor"
    rows = []
    for system_a, system_b in (pair for pair in pairs if pair not in skipped):
        both = _paired_rows(correctness, system_a, system_b)
        seeds = int(both["seed"].nunique())
        groups = "actor" if by_actor else "clip_id" if seeds > 1 else None
        result = paired_difference(
            both["a"].to_numpy(),
            both["b"].to_numpy(),
            groups=both[groups].to_numpy() if groups else None,
            n_boot=int(bootstrap["n_boot"]),
            seed=int(bootstrap["seed"]),
            confidence=float(bootstrap["confidence"]),
            n_permutations=int(paired["n_permutations"]),
        )
        rows.append(
            {
                "system_a": system_a,
                "system_b": system_b,
                "clips": int(both["clip_id"].nunique()),
                "seeds": seeds,
                "unit": "actor" if by_actor else "clip",
                "units": result.units,
                "accuracy_a": float(both["a"].mean()),
                "accuracy_b": float(both["b"].mean()),
                "difference": result.difference,
                "difference_low": result.low,
                "difference_high": result.high,
                "test": result.test,
                "p_value": result.p_value,
                "p_min": result.p_min,
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


def _correctness(predictions: pd.DataFrame) -> pd.DataFrame:
    """system, clip_id, actor, seed (missing for systems without seeds) and ``correct``: how right
    each system (each seed of it) is on each test clip, in [0, 1]."""
    hit = predictions.assign(hit=(predictions["target"] == predictions["predicted"]).astype(float))
    hit["weighted"] = hit["hit"] * hit["weight"]
    keys = ["system", "clip_id", "actor", "seed"]
    sums = hit.groupby(keys, sort=True, dropna=False)[["weighted", "weight"]].sum()
    return (sums["weighted"] / sums["weight"]).rename("correct").reset_index()


def _paired_rows(correctness: pd.DataFrame, system_a: str, system_b: str) -> pd.DataFrame:
    """clip_id, actor, seed, ``a`` and ``b``: the two systems' correctness on the clips both were
    tested on, paired on clip x seed; a system without seeds is paired with every seed of the
    other (each seed's predictions against the same human or reference rows). Sorted by clip."""
    frames = [
        correctness.loc[correctness["system"] == system, ["clip_id", "actor", "seed", "correct"]]
        .rename(columns={"correct": side})
        .reset_index(drop=True)
        for system, side in ((system_a, "a"), (system_b, "b"))
    ]
    seeded = [frame["seed"].notna().any() for frame in frames]
    keys = ["clip_id", "actor"]
    if all(seeded):
        keys.append("seed")
    else:
        frames = [
            frame if has_seeds else frame.drop(columns="seed")
            for frame, has_seeds in zip(frames, seeded, strict=True)
        ]
    both = frames[0].merge(frames[1], on=keys, how="inner")
    if "seed" not in both:
        both["seed"] = pd.NA
    return both.sort_values(["clip_id", "seed"], kind="stable", ignore_index=True)


def _system_order(predictions: pd.DataFrame):
    order = {system: index for index, system in enumerate(dict.fromkeys(predictions["system"]))}
    return lambda column: column.map(order) if column.name == "system" else column


def score_systems(
    predictions: pd.DataFrame, crowd_labels: pd.DataFrame, bootstrap: dict[str, Any]
) -> pd.DataFrame:
    """One row per system: each score of ``TABLE_SCORES`` with its bootstrap interval.

    Args:
        predictions: ``SYSTEM_PREDICTION_COLUMNS`` rows of every system.
        crowd_labels: the labels pipeline's crowd labels (for the agreement with the crowd).
        bootstrap: ``n_boot``, ``seed``, ``confidence`` and ``unit`` (``clip`` or ``actor``: what
            is resampled).

    Returns:
        system, kind, phase, condition, inputs, test_clips, then ``<score>``, ``<score>_low`` and
        ``<score>_high`` for every score, crowd_modality and crowd_agreement_clips, ``seeds``
        (a model's seeds, 0 for references and humans) and, for the scores of ``SCORE_NAMES``,
        ``<score>_seed_mean`` and ``<score>_seed_sd``: the mean and sd over the seeds of each
        seed's score (its predictions of every test clip, pooled over the folds), NaN with fewer
        than two seeds. ``<score>`` itself pools every seed's predictions (each test clip counts
        once per seed) and its interval resamples clips (or actors) with all their seeds.
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
        rows.append(row | _spread_over_seeds(rows_of_system))
    return pd.DataFrame(rows)


def _spread_over_seeds(rows: pd.DataFrame) -> dict[str, float]:
    """``seeds`` and each score's mean and sd over the seeds (NaN with fewer than two)."""
    per_seed = [
        classification_scores(part["target"], part["predicted"], part["weight"])
        for _, part in rows.groupby("seed", sort=True)
    ]
    spread: dict[str, float] = {"seeds": len(per_seed)}
    for name in SCORE_NAMES:
        values = [scores[name] for scores in per_seed]
        several = len(values) > 1
        spread[f"{name}_seed_mean"] = float(np.mean(values)) if several else np.nan
        spread[f"{name}_seed_sd"] = float(np.std(values, ddof=1)) if several else np.nan
    return spread


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
    budgets: pd.DataFrame,
) -> tuple[pd.DataFrame, str]:
    """The comparison table for people: each score as ``0.512 [0.471, 0.553]``, as CSV, and a
    Markdown document with the table, the paired comparisons and the training budgets.

    Args:
        scores: ``score_systems`` output.
        phase_metrics: each phase's metrics (``param_count`` fills the ``parameters`` column).
        bootstrap: the bootstrap settings, quoted in the caption.
        data_label: ``DEMO_LABEL`` or ``REAL_LABEL``, in the Markdown title.
        protocol: ``check_split_protocol`` output; under k-fold the table has the accuracy's
            mean +- sd over the folds (``accuracy_over_folds``).
        fold_scores: ``score_folds`` output.
        paired: ``compare_pairs`` output.
        budgets: ``grid.assess_training_budgets`` output: how each cell's training ended, summed
            up per row in ``ended_by``; the Markdown lists the cells still learning at the cap.

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
    seeds = int(scores["seeds"].max())
    if seeds > 1:
        table["accuracy_over_seeds"] = [
            f"{mean:.3f} ± {sd:.3f}" if np.isfinite(mean) else "—"
            for mean, sd in zip(
                scores["accuracy_seed_mean"], scores["accuracy_seed_sd"], strict=True
            )
        ]
    table["crowd_reference"] = [
        f"{modality} majority, {clips} untied clips" if isinstance(modality, str) else "—"
        for modality, clips in zip(
            scores["crowd_modality"], scores["crowd_agreement_clips"], strict=True
        )
    ]
    endings = summarise_endings(budgets)
    table["ended_by"] = [
        endings.get(phase, "—") if kind == "model" else "—"
        for phase, kind in zip(scores["phase"], scores["kind"], strict=True)
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
        else single_split_caveat(protocol, bootstrap)
    )
    seeds_caption = (
        f" Each model row pools its {seeds} seeds' predictions (every test clip counts once per "
        "seed; the intervals resample clips or actors with all their seeds), and "
        "`accuracy_over_seeds` is the mean ± sd of the seeds' accuracies; human and reference "
        "rows have no seeds."
        if seeds > 1
        else ""
    )
    pairing = (
        " Pairs are matched on clip and seed (seed i of A against seed i of B; human raters and "
        "references, who have no seeds, against every seed with the same rows), tested and "
        f"resampled by {bootstrap['unit']} with all its seeds."
        if seeds > 1
        else ""
    )
    markdown = "\n".join(
        [
            f"# Emotion recognition on the test clips — {data_label}",
            "",
            f"Protocol: {protocol['name']}. Scores on the held-out test clips with {interval}."
            f"{folds}{seeds_caption} `ended_by`: what ended each row's trainings (one per fold "
            "and seed), see below. Column meanings: docs/results.md.",
            "",
            markdown_table(table),
            "",
            "## Paired comparisons",
            "",
            "Accuracy of A minus accuracy of B on the clips both were tested on, with a paired "
            "bootstrap interval on the same resamples as above; p-values Holm-adjusted over the "
            f"table (docs/results.md).{pairing}",
            "",
            markdown_table(format_paired_comparisons(paired)),
            "",
            sharing_fusion_section(table, paired),
            "## Training budgets",
            "",
            budget_note(budgets),
            "",
        ]
    )
    return table, markdown


#: The sharing-and-fusion design: (encoder, where the senses meet) -> the row that fills the cell.
#: Separate encoders cannot meet before encoding, so their early and mid cells stay empty.
SHARING_FUSION_CELLS: dict[tuple[str, str], str] = {
    ("shared", "early"): "bimodal",
    ("shared", "mid"): "bimodal_mid",
    ("shared", "late"): "bimodal_late",
    ("separate", "late"): "baseline",
}
FUSION_POINTS: dict[str, str] = {
    "early": "early (tokens joined before the encoder)",
    "mid": "mid (lower layers per sense, upper layers shared)",
    "late": "late (per-sense logits averaged)",
}
#: The contrasts that say which of the two matters, and the bar fusion must clear: (A, B, question).
SHARING_FUSION_CONTRASTS: tuple[tuple[str, str, str], ...] = (
    ("bimodal_late", "baseline", "sharing: one shared encoder vs one per sense, both fused late"),
    ("bimodal", "bimodal_late", "fusion point: early vs late, both with one shared encoder"),
    ("bimodal", "unimodal_ensemble", "fusion at all: the proposal vs the unimodal ensemble"),
)


def sharing_fusion_section(table: pd.DataFrame, paired: pd.DataFrame) -> str:
    """The report's "Sharing and fusion" section: the accuracy of each cell of the design (encoder
    shared or separate x where the senses meet) and the paired verdicts of the contrasts that
    separate the two (``SHARING_FUSION_CONTRASTS``), as Markdown.

    Args:
        table: ``format_comparison_table``'s table (``system``, formatted ``accuracy``).
        paired: ``compare_pairs`` output.
    """
    accuracy = dict(zip(table["system"], table["accuracy"], strict=True))
    grid = pd.DataFrame(
        {
            "encoder": ["shared", "separate"],
            **{
                label: [
                    _cell(accuracy, SHARING_FUSION_CELLS.get((encoder, point)))
                    for encoder in ("shared", "separate")
                ]
                for point, label in FUSION_POINTS.items()
            },
        }
    )
    verdicts = []
    for system_a, system_b, question in SHARING_FUSION_CONTRASTS:
        found = paired.loc[(paired["system_a"] == system_a) & (paired["system_b"] == system_b)]
        if found.empty:
            verdict = (
                "not in this report (run `kedro run --pipelines=comparison`; the pair must be in "
                "reporting.paired_comparisons.pairs)"
            )
            verdicts.append({"question": question, "A - B": f"{system_a} - {system_b}"})
            verdicts[-1] |= {"difference [95% CI]": "—", "p (Holm)": "—", "verdict": verdict}
            continue
        row = found.iloc[0]
        verdicts.append(
            {
                "question": question,
                "A - B": f"{system_a} - {system_b}",
                "difference [95% CI]": (
                    f"{row['difference']:+.3f} "
                    f"[{row['difference_low']:+.3f}, {row['difference_high']:+.3f}]"
                ),
                "p (Holm)": f"{row['p_holm']:.2g}",
                "verdict": row["verdict"],
            }
        )
    return "\n".join(
        [
            "## Sharing and fusion",
            "",
            "`bimodal` differs from `baseline` in two things at once: its encoder is shared AND "
            "the senses meet before it. The cells below take the two apart (accuracy with its "
            "interval; — where no such model exists or was not run), and the contrasts give the "
            "paired verdicts (from the paired comparisons above).",
            "",
            markdown_table(grid),
            "",
            markdown_table(pd.DataFrame(verdicts)),
            "",
        ]
    )


def _cell(accuracy: dict[str, str], system: str | None) -> str:
    if system is None:
        return "— (no such model)"
    if system not in accuracy:
        return f"{system}: not run"
    return f"{system}: {accuracy[system]}"


def budget_note(budgets: pd.DataFrame) -> str:
    """The report's word on the epoch budget: which rows had cells still learning at the cap."""
    definition = (
        "`early stop`: early stopping ended the training; `cap`: it reached `max_epochs` after "
        "its validation accuracy had levelled off; `cap, still rising`: it reached `max_epochs` "
        "with its best validation accuracy in the last `patience` epochs, so more epochs might "
        "have helped (docs/results.md)."
    )
    flagged = still_rising(budgets)
    if not flagged:
        return f"No row was still learning at the epoch cap. {definition}"
    rows = "; ".join(f"{phase} ({', '.join(cells)})" for phase, cells in flagged.items())
    return (
        f"**Still learning at the epoch cap**: {rows}. Raise `trainer.max_epochs` until no row "
        f"is flagged. {definition}"
    )


def format_paired_comparisons(paired: pd.DataFrame) -> pd.DataFrame:
    """The paired comparisons for people: accuracies, difference with interval, p-values."""
    return pd.DataFrame(
        {
            "A": paired["system_a"],
            "B": paired["system_b"],
            "clips": paired["clips"],
            "seeds": paired["seeds"],
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
            "smallest possible p": paired["p_min"].map("{:.2g}".format),
            "verdict": paired["verdict"],
        }
    )


def single_split_caveat(protocol: dict[str, Any], bootstrap: dict[str, Any]) -> str:
    """What a single split's verdicts describe: its few test actors, not unseen speakers."""
    actors = protocol.get("test_actors")
    held_out = f"the {actors} test actors" if actors else "the test actors"
    return (
        f" With a single split every test clip comes from {held_out}: intervals and tests over "
        f"{bootstrap['unit']}s describe those actors' clips, not speakers the models have never "
        "heard or seen; for verdicts about new speakers, train and report under "
        "`split.strategy=actor_kfold` (every actor tested once, intervals over actors)."
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
    """The phases' per-epoch histories in one long table: phase, fold, seed (index into
    ``training.seeds``), then ``HISTORY_COLUMNS``; one run of epochs per phase and cell.

    Validation columns are NaN for a phase trained without a validation split, the per-sense
    validation accuracies (``val_accuracy_audio``, ``val_accuracy_video``) for a one-modality phase.
    """
    frames = []
    for phase, history in history_by_phase.items():
        _require_columns(history, REQUIRED_HISTORY_COLUMNS, f"{phase}.training_history")
        # Written before folds (seeds) existed: a single split (one seed).
        cell = {"fold": history.get("fold", 0), "seed": history.get("seed", 0)}
        frames.append(history.reindex(columns=list(HISTORY_COLUMNS)).assign(phase=phase, **cell))
    histories = pd.concat(frames, ignore_index=True)
    return histories.loc[:, ["phase", "fold", "seed", *HISTORY_COLUMNS]]


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
