"""Assign every clip of the manifest to train, val or test.

Three strategies (``split.strategy``):

- ``actor``: speaker-independent. Actors, not clips, are dealt to the splits, separately for each
  sex so that every split keeps the corpus's sex ratio; no test or val actor has a clip in train.
- ``random_clip``: the clip-level random split most CREMA-D papers use (OGM-GE's is 6,698/744, about
  10% test); the same actors appear on every side. Stratified by emotion.
- ``file``: the test clips are read from a list such as OGM-GE's test.csv (``clip,EMOTION`` per
  line, no header); the other clips are train, less a validation share drawn from them.

All of them are seeded and deterministic for a given manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
STRATEGIES = ("actor", "random_clip", "file")
SPLIT_COLUMNS = ["clip_id", "actor", "split"]


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


def _check_fractions(fractions: dict[str, float]) -> dict[str, float]:
    if set(fractions) != set(SPLITS) or any(value < 0 for value in fractions.values()):
        raise ValueError(f"split fractions must give {SPLITS} non-negative values, got {fractions}")
    if not np.isclose(sum(fractions.values()), 1.0):
        raise ValueError(
            f"split fractions must sum to 1, got {fractions} (sum {sum(fractions.values())})"
        )
    return fractions


def split_by_actor(manifest: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """The split of each clip when whole actors go to one split, dealt per sex.

    Within each sex the actors are shuffled (seeded) and cut by ``fractions``, so each split gets
    its share of male and of female actors.
    """
    _check_fractions(fractions)
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


def read_clip_list(path: str | Path) -> pd.DataFrame:
    """A ``clip,EMOTION`` list without header (OGM-GE's train.csv / test.csv format)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"split list {path} not found: set split.file.test_list in "
            "conf/local/parameters_split.yml (or --params=split.file.test_list=/path/test.csv), "
            "or use split.strategy=actor"
        )
    return pd.read_csv(path, header=None, names=["clip_id", "emotion"], dtype="str")


def split_from_list(
    manifest: pd.DataFrame, test_clips: pd.DataFrame, val_fraction: float, seed: int
) -> pd.Series:
    """The split of each clip when the test clips are given; val is drawn from the rest."""
    listed = test_clips.set_index("clip_id")["emotion"]
    known = listed.index.isin(manifest["clip_id"])
    if not known.all():
        logger.warning(
            "%d of the %d listed test clips are not in the manifest (rejected at ingestion?), "
            "e.g. %s",
            (~known).sum(),
            len(listed),
            list(listed.index[~known][:3]),
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
    return split


def _log_summary(result: pd.DataFrame, manifest: pd.DataFrame, strategy: str) -> None:
    sex = manifest.set_index("clip_id")["sex"]
    for name in SPLITS:
        part = result[result["split"] == name]
        actors = part.drop_duplicates("actor")
        females = (sex.loc[actors["clip_id"]] == "Female").sum()
        logger.info(
            "split %s (%s): %d clips, %d actors (%d female)",
            name,
            strategy,
            len(part),
            len(actors),
            females,
        )


def split_clips(clip_manifest: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Assign each clip to train/val/test per ``params["strategy"]``: clip_id, actor, split.

    Raises if, under ``actor``, an actor would end up on two sides (which would leak speakers).
    """
    strategy = params["strategy"]
    seed = int(params["seed"])
    if strategy == "actor":
        split = split_by_actor(clip_manifest, params["actor"]["fractions"], seed)
    elif strategy == "random_clip":
        split = split_random_clips(
            clip_manifest, params["random_clip"]["test_fraction"], params["val_fraction"], seed
        )
    elif strategy == "file":
        test_clips = read_clip_list(params["file"]["test_list"])
        split = split_from_list(clip_manifest, test_clips, params["val_fraction"], seed)
    else:
        raise ValueError(f"split.strategy {strategy!r} unknown; use one of {STRATEGIES}")

    result = pd.DataFrame(
        {"clip_id": clip_manifest["clip_id"], "actor": clip_manifest["actor"], "split": split}
    ).reset_index(drop=True)
    if strategy == "actor":
        sides = result.groupby("actor")["split"].nunique()
        if (sides > 1).any():
            raise RuntimeError(f"actors on two sides of the split: {list(sides.index[sides > 1])}")
    _log_summary(result, clip_manifest, strategy)
    return result[SPLIT_COLUMNS]
