"""Clip lists of published CREMA-D splits, shipped with the package (``split.strategy: file``),
and the folds of a split table (``fold_splits``).

``ogm_ge/``: the random clip split of OGM-GE (Peng et al., CVPR 2022), 6,698 train / 744 test clips,
lines ``clip,EMOTION`` without header, taken unchanged from GeWu-Lab/OGM-GE_CVPR2022 (commit
343dc1d95c9bda88f105c0da8d24f185e0e98b54, data/CREMAD/) under the MIT licence (``ogm_ge/LICENSE``).
All 91 actors appear on both sides: it is not speaker-independent.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from avshared.splits.folds import fold_splits

__all__ = ["SHIPPED_LISTS", "SPLIT_STRATEGIES", "fold_splits", "shipped_list_path"]

#: ``split.strategy``: by actor, by actor in k folds, the random clip split, or a list from a file.
SPLIT_STRATEGIES: tuple[str, ...] = ("actor", "random_clip", "file", "actor_kfold")
#: Names of the shipped lists, usable as ``split.file.test_list`` instead of a path.
SHIPPED_LISTS: dict[str, tuple[str, str]] = {
    "ogm_ge/test": ("ogm_ge", "test.csv"),
    "ogm_ge/train": ("ogm_ge", "train.csv"),
}


def shipped_list_path(name: str) -> Path:
    """The file of a shipped clip list, e.g. ``ogm_ge/test``."""
    if name not in SHIPPED_LISTS:
        raise KeyError(f"no shipped clip list {name!r}; shipped: {sorted(SHIPPED_LISTS)}")
    folder, filename = SHIPPED_LISTS[name]
    return Path(str(files(__name__).joinpath(folder, filename)))
