"""Kedro dataset of the memory-mapped feature stores (avshared.features.store): versioned
directories, reused when their fingerprint matches, pruned to the newest ``keep_versions``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io.core import AbstractVersionedDataset, Version

from avshared.features.store import (
    FINGERPRINT,
    INDEX_FILE,
    FeatureIssue,
    FeatureItem,
    FeatureStore,
    FeatureStoreError,
    _fingerprint_of,
    complete_versions,
    prune_versions,
    remove_abandoned_partials,
    write_feature_store,
)

__all__ = [
    "FINGERPRINT",
    "FeatureIssue",
    "FeatureItem",
    "FeatureStore",
    "FeatureStoreDataset",
    "FeatureStoreError",
    "complete_versions",
    "prune_versions",
    "write_feature_store",
]

logger = logging.getLogger(__name__)


class FeatureStoreDataset(AbstractVersionedDataset[Any, FeatureStore]):
    """Kedro dataset for a ``FeatureStore`` directory on the local file system, versionable.

    ``save`` takes any iterable of ``FeatureItem`` or ``(clip_id, array)`` pairs, or a mapping from
    clip id to array, and stores ``data.attrs`` too when the object has one (provenance: parameters,
    array layout). ``load`` returns a memory-mapped ``FeatureStore``.

    Reuse: when ``data.attrs["fingerprint"]`` (what the features are made from: clips, parameters,
    extractor version) equals that of a stored version, ``save`` neither consumes ``data`` (so a
    lazy stream extracts nothing) nor writes a version; loads in the same run return the matching
    version. Pruning: after writing a version, only the ``keep_versions`` newest are kept.

    Example catalog entry::

        log_mel_spectrograms:
          type: avshared.datasets.feature_store.FeatureStoreDataset
          filepath: data/04_feature/log_mel_spectrograms
          versioned: true
          keep_versions: 2
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        shard_size_mb: float = 64,
        keep_versions: int | None = None,
        allow_empty: bool = False,
        metadata: dict[str, Any] | None = None,
    ):
        """
        Args:
            filepath: The store's directory (local file system only: shards are memory-mapped).
            version: Kedro's version (set from ``versioned: true`` in the catalog).
            shard_size_mb: Largest shard, which is also the most that ``save`` buffers in memory.
            keep_versions: Versions kept after a save writes one (None: all).
            allow_empty: Whether a save given no clip at all writes an empty store (an optional
                input left empty) rather than fail.
            metadata: Free-form metadata for kedro-viz and hooks; not used by the dataset.
        """
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self._shard_bytes = int(shard_size_mb * 2**20)
        self._keep_versions = keep_versions
        self._allow_empty = allow_empty
        self._reused_version: str | None = None
        self.metadata = metadata

    @classmethod
    def _save_wrapper(cls, save_func: Callable) -> Callable:
        """Kedro's versioned save, preceded by the reuse check and followed by pruning."""
        versioned_save = super()._save_wrapper(save_func)

        @wraps(save_func)
        def save(self: FeatureStoreDataset, data: Any) -> None:
            wanted = (getattr(data, "attrs", None) or {}).get(FINGERPRINT)
            match = self._matching_version(wanted) if wanted else None
            if match is not None:
                self._reused_version = match
                logger.info(
                    "%s: reusing the stored features (same fingerprint %s, version %s); "
                    "nothing is extracted or written",
                    self._filepath,
                    wanted[:12],
                    match or "unversioned",
                )
                return
            self._reused_version = None
            versioned_save(self, data)
            if self._version is not None and self._keep_versions is not None:
                prune_versions(self._filepath, self._keep_versions)

        return save

    def _matching_version(self, wanted: str) -> str | None:
        """The newest stored version made from ``wanted`` ("" unversioned), or None."""
        if self._version is None:
            return "" if _fingerprint_of(Path(self._filepath)) == wanted else None
        for version in complete_versions(self._filepath):
            if _fingerprint_of(Path(self._get_versioned_path(version))) == wanted:
                return version
        return None

    def resolve_load_version(self) -> str | None:
        if self._reused_version:
            return self._reused_version
        return super().resolve_load_version()

    def load(self) -> FeatureStore:
        return FeatureStore(Path(self._get_load_path()))

    def save(self, data: Iterable[Any] | Mapping[str, np.ndarray]) -> None:
        save_path = Path(self._get_save_path())
        remove_abandoned_partials(self._filepath)
        attrs = getattr(data, "attrs", None)
        write_feature_store(
            save_path, data, self._shard_bytes, attrs, allow_empty=self._allow_empty
        )

    def _exists(self) -> bool:
        return (Path(self._get_load_path()) / INDEX_FILE).is_file()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "version": self._version,
            "shard_size_mb": self._shard_bytes / 2**20,
            "keep_versions": self._keep_versions,
            "allow_empty": self._allow_empty,
        }
