"""Assign every clip of the manifest to train, val or test.

Four strategies (``split.strategy``):

- ``actor``: speaker-independent. Actors, not clips, are dealt to the splits, separately for each
  sex so that every split keeps the corpus's sex ratio; no test or val actor has a clip in train.
- ``random_clip``: the clip-level random split most CREMA-D papers use (OGM-GE's is 6,698/744, about
  10% test); the same actors appear on every side. Stratified by emotion.
- ``file``: the test clips are read from a list such as OGM-GE's test.csv (``clip,EMOTION`` per
  line, no header; ``ogm_ge/test``, shipped in ``avshared.splits``, by default); the other clips are
  train, less a validation share drawn from them.
- ``actor_kfold``: speaker-independent k-fold cross-validation (HiCMAE's protocol for CREMA-D):
  whole actors are dealt to ``folds`` test folds, per sex; every actor is tested in exactly one
  fold, and each fold's validation actors are drawn from its training actors.

The ``split`` dataset is long: one row per fold and clip (``fold``, clip_id, actor, split). The
single-split strategies have one fold, numbered 0. All strategies are seeded and deterministic for a
given manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avshared.crema_d import SPLITS
from avshared.splits import SHIPPED_LISTS, SPLIT_STRATEGIES, shipped_list_path

logger = logging.getLogger(__name__)

STRATEGIES = SPLIT_STRATEGIES
SPLIT_COLUMNS = ["fold", "clip_id", "actor", "split"]
#: Columns of the clips a split list names that the manifest does not have.
UNMATCHED_COLUMNS = ["clip_id", "listed_emotion", "reason"]


def _allocate(count: int, fractions: dict[str, float]) -> dict[str, int]:
    """Whole numbers per split summing to ``count``, by largest remainder.

    A split with a positive fraction gets at least one item when there are enough to go round.
    """
    exact = {name: count * fractions[name] for name in SPLITS}
    sizes = {name: int(np.floor(value)) for name, value in exact.items()}
    by_remainder = sorted(SPLITS, key=lambda name: exact[name] - sizes[name], reverse=True)
    for name in by_remainder[: count - sum(sizes.values())]:
        sizes[name] += 1
    for name in SPLITS:
        donor = max(SPLITS, key=lambda other: sizes[other])
        if fractions[name] > 0 and sizes[name] == 0 and sizes[donor] > 1:
            sizes[donor] -= 1
            sizes[name] += 1
    return sizes


def split_by_actor(manifest: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """The split of each clip when whole actors go to one split, dealt per sex.

    Within each sex the actors are shuffled (seeded) and cut by ``fractions``, so each split gets
    its share of male and of female actors.
    """
    rng = np.random.default_rng(seed)
    actors = manifest.drop_duplicates("actor")[["actor", "sex"]].sort_values("actor")
    actor_split: dict[int, str] = {}
    for _, group in actors.groupby("sex", sort=True, dropna=False):
        shuffled = rng.permutation(group["actor"].to_numpy())
        sizes = _allocate(len(shuffled), fractions)
        bounds = np.cumsum([0] + [sizes[name] for name in SPLITS])
        for name, start, stop in zip(SPLITS, bounds[:-1], bounds[1:], strict=True):
            actor_split.update((int(actor), name) for actor in shuffled[start:stop])
    return manifest["actor"].map(actor_split)


def _stratified_pick(labels: pd.Series, fraction: float, rng: np.random.Generator) -> pd.Index:
    """Index of a random ``fraction`` of the rows, drawn per label value (stratified)."""
    total = round(len(labels) * fraction)
    groups = {value: labels.index[labels == value] for value in sorted(labels.unique())}
    quotas = {value: len(index) * fraction for value, index in groups.items()}
    sizes = {value: int(np.floor(quota)) for value, quota in quotas.items()}
    by_remainder = sorted(quotas, key=lambda value: quotas[value] - sizes[value], reverse=True)
    for value in by_remainder[: total - sum(sizes.values())]:
        sizes[value] += 1
    picked = [rng.choice(groups[value], size=sizes[value], replace=False) for value in groups]
    return pd.Index(np.concatenate(picked)) if picked else pd.Index([])


def split_random_clips(
    manifest: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int
) -> pd.Series:
    """The split of each clip when clips are drawn at random, stratified by emotion.

    ``test_fraction`` of all clips are test; ``val_fraction`` of the remaining ones are val.
    """
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=manifest.index, dtype="str")
    test = _stratified_pick(manifest["emotion"], test_fraction, rng)
    split.loc[test] = "test"
    rest = manifest.loc[split == "train", "emotion"]
    split.loc[_stratified_pick(rest, val_fraction, rng)] = "val"
    return split


def read_clip_list(name_or_path: str | Path) -> pd.DataFrame:
    """A ``clip,EMOTION`` list without header (OGM-GE's train.csv / test.csv format).

    ``name_or_path`` is the name of a list shipped in ``avshared.splits`` (``ogm_ge/test``) or a
    path (relative to the project directory).
    """
    path = (
        shipped_list_path(str(name_or_path))
        if str(name_or_path) in SHIPPED_LISTS
        else Path(name_or_path)
    )
    if not path.is_file():
        raise FileNotFoundError(
            f"split list {path} not found: set split.file.test_list to a shipped list "
            f"({sorted(SHIPPED_LISTS)}) or to a clip,EMOTION file, in "
            "conf/local/parameters_split.yml (or --params=split.file.test_list=/path/test.csv), "
            "or use split.strategy=actor"
        )
    return pd.read_csv(path, header=None, names=["clip_id", "emotion"], dtype="str")


def split_from_list(
    manifest: pd.DataFrame, test_clips: pd.DataFrame, val_fraction: float, seed: int
) -> tuple[pd.Series, pd.DataFrame]:
    """The split of each clip when the test clips are given; val is drawn from the rest.

    Returns also the listed clips the manifest lacks (``UNMATCHED_COLUMNS``), every one of them
    logged: they are missing from the test set, which is then not the published one.
    """
    listed = test_clips.set_index("clip_id")["emotion"]
    known = listed.index.isin(manifest["clip_id"])
    unmatched = pd.DataFrame(
        {
            "clip_id": listed.index[~known],
            "listed_emotion": listed.to_numpy()[~known],
            "reason": "not in the clip manifest (absent from the corpus or rejected at ingestion)",
        },
        columns=UNMATCHED_COLUMNS,
    )
    if len(unmatched):
        logger.warning(
            "%d of the %d listed test clips are not in the manifest and are NOT tested "
            "(data/08_reporting/split_unmatched_clips.csv): %s",
            len(unmatched),
            len(listed),
            ", ".join(unmatched["clip_id"]),
        )
    emotions = manifest.set_index("clip_id")["emotion"]
    present = listed[known]
    disagree = present[present != emotions.loc[present.index]]
    if len(disagree):
        logger.warning("%d listed test clips disagree with the manifest's emotion", len(disagree))
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=manifest.index, dtype="str")
    split.loc[manifest["clip_id"].isin(present.index)] = "test"
    rest = manifest.loc[split == "train", "emotion"]
    split.loc[_stratified_pick(rest, val_fraction, rng)] = "val"
    return split, unmatched


def actor_folds(
    manifest: pd.DataFrame, folds: int, val_fraction: float, seed: int
) -> list[dict[int, str]]:
    """For each of ``folds`` folds, the split of every actor (``{actor: train | val | test}``).

    Within each sex the actors are shuffled (seeded) and dealt round-robin to the test folds, the
    dealing continuing from one sex to the next, so folds differ by at most one actor overall and
    per sex. Each fold's validation actors are ``val_fraction`` of its training actors per sex
    (at least one), drawn with a seed of their own.
    """
    if folds < 2:
        raise ValueError(f"split.actor_kfold.folds must be at least 2, got {folds}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"split.actor_kfold.val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    actors = manifest.drop_duplicates("actor")[["actor", "sex"]].sort_values("actor")
    by_sex = {
        sex: rng.permutation(group["actor"].to_numpy())
        for sex, group in actors.groupby("sex", sort=True, dropna=False)
    }
    too_few = {str(sex): len(group) for sex, group in by_sex.items() if len(group) < folds}
    if too_few:
        raise ValueError(
            f"split.actor_kfold.folds is {folds} but there are only {too_few} actors of a sex: "
            "every fold needs at least one actor of each sex; lower split.actor_kfold.folds or "
            "use split.strategy=actor"
        )
    test_fold: dict[int, int] = {}
    dealt = 0
    for group in by_sex.values():
        for actor in group:
            test_fold[int(actor)] = dealt % folds
            dealt += 1
    assignments = []
    for fold in range(folds):
        fold_rng = np.random.default_rng([seed, fold])
        assignment = {actor: "test" for actor, f in test_fold.items() if f == fold}
        for group in by_sex.values():
            training = [int(a) for a in group if test_fold[int(a)] != fold]
            n_val = max(1, round(len(training) * val_fraction))
            val = set(fold_rng.choice(training, size=min(n_val, len(training) - 1), replace=False))
            assignment |= {a: "val" if a in val else "train" for a in training}
        assignments.append(assignment)
    return assignments


def _log_summary(result: pd.DataFrame, manifest: pd.DataFrame, strategy: str) -> None:
    sex = manifest.drop_duplicates("actor").set_index("actor")["sex"]
    for (fold, name), part in result.groupby(["fold", "split"], sort=True):
        actors = part["actor"].unique()
        logger.info(
            "split %s (%s, fold %d): %d clips, %d actors (%d female)",
            name,
            strategy,
            fold,
            len(part),
            len(actors),
            (sex.loc[actors] == "Female").sum(),
        )


def split_clips(
    clip_manifest: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign each clip to train/val/test per ``params["strategy"]``, per fold.

    Returns the split (``SPLIT_COLUMNS``: one row per fold and clip; one fold, 0, except under
    ``actor_kfold``) and the clips a split list names that the manifest lacks (``file`` only;
    empty otherwise). Raises if, under an actor strategy, an actor would end up on two sides of a
    fold (which would leak speakers).
    """
    strategy = params["strategy"]
    seed = int(params["seed"])
    unmatched = pd.DataFrame(columns=UNMATCHED_COLUMNS)
    if strategy == "actor_kfold":
        kfold = params["actor_kfold"]
        assignments = actor_folds(
            clip_manifest, int(kfold["folds"]), float(kfold["val_fraction"]), seed
        )
        splits = [clip_manifest["actor"].map(assignment) for assignment in assignments]
    elif strategy == "actor":
        splits = [split_by_actor(clip_manifest, params["actor"]["fractions"], seed)]
    elif strategy == "random_clip":
        splits = [
            split_random_clips(
                clip_manifest, params["random_clip"]["test_fraction"], params["val_fraction"], seed
            )
        ]
    elif strategy == "file":
        test_clips = read_clip_list(params["file"]["test_list"])
        split, unmatched = split_from_list(clip_manifest, test_clips, params["val_fraction"], seed)
        splits = [split]
    else:
        raise ValueError(f"split.strategy {strategy!r} unknown; use one of {STRATEGIES}")

    result = pd.concat(
        [
            pd.DataFrame(
                {
                    "fold": fold,
                    "clip_id": clip_manifest["clip_id"].to_numpy(),
                    "actor": clip_manifest["actor"].to_numpy(),
                    "split": split.to_numpy(),
                }
            )
            for fold, split in enumerate(splits)
        ],
        ignore_index=True,
    ).astype({"fold": "int64"})
    if strategy in ("actor", "actor_kfold"):
        sides = result.groupby(["fold", "actor"])["split"].nunique()
        if (sides > 1).any():
            raise RuntimeError(f"actors on two sides of the split: {list(sides.index[sides > 1])}")
    _log_summary(result, clip_manifest, strategy)
    return result[SPLIT_COLUMNS], unmatched.reset_index(drop=True)
