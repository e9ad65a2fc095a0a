"""Per-clip feature arrays too large to load at once: .npy shards on disk, read memory-mapped.

A store holds one fixed-shape array per clip (a log-mel spectrogram, a stack of face crops) and the
clip id of every row, so labels always join by id, never by position. Layout of one store
directory::

    index.json        clip ids in row order, dtype, item shape, shard sizes, attrs, issues
    shard-00000.npy   rows 0 .. n0-1, shape (n0, *item_shape)
    shard-00001.npy   ...

``write_feature_store`` (and so ``avshared.datasets.feature_store.FeatureStoreDataset.save``)
consumes an iterable of ``FeatureItem`` (or ``(clip_id, array)`` pairs, or a mapping) one item at a
time and keeps at most one shard in memory, so a node can hand it a lazily evaluated stream and peak
memory stays bounded however many clips there are. Items whose array is None are clips the
extractor rejected: they are not stored, but their issues are, and so is every issue of a stored
clip (``FeatureStore.issues``). The directory is written under a temporary name, flushed to disk
(fsync) and renamed when complete, so a failed or killed run never leaves a half-written store where
a load looks (and, unversioned, a failed save keeps the previous store). A full disk raises a
``FeatureStoreError`` that says so (the dataset reports it as Kedro's ``DatasetError``); the next
save removes what killed runs left.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
#: The attrs key whose value says what a store was made from (see FeatureStoreDataset).
FINGERPRINT = "fingerprint"
FORMAT_VERSION = 1
ISSUE_COLUMNS = ["clip_id", "issue", "action"]


class FeatureStoreError(Exception):
    """A store that cannot be read or written (the Kedro dataset reports it as a DatasetError)."""


@dataclass(frozen=True)
class FeatureIssue:
    """A defect of one clip (``issue``) and what the extractor did about it (``action``)."""

    issue: str
    action: str


@dataclass(frozen=True)
class FeatureItem:
    """One clip's features; ``array`` is None when the clip was rejected (``issues`` say why)."""

    clip_id: str
    array: np.ndarray | None
    issues: tuple[FeatureIssue, ...] = ()


class FeatureStore:
    """Read-only, memory-mapped view of a saved store: ``store.get(clip_id)`` or ``store[i]``.

    Shards are opened lazily with ``np.load(mmap_mode="r")``, so loading a store reads only its
    index, and the arrays returned are read-only views into the files (copy them to modify).
    Pickling a store (as a DataLoader does for worker processes) carries its path and index, not its
    data.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index_path = self.directory / INDEX_FILE
        try:
            index = json.loads(index_path.read_text())
        except FileNotFoundError as err:
            raise FeatureStoreError(
                f"{self.directory} is not a feature store: {INDEX_FILE} is missing "
                "(an interrupted save leaves no directory, so this one was made by something else)"
            ) from err
        if index.get("format_version") != FORMAT_VERSION:
            raise FeatureStoreError(
                f"{index_path} has format version {index.get('format_version')}, this code reads "
                f"{FORMAT_VERSION}: re-run the features pipeline to rebuild the store"
            )
        self.clip_ids: tuple[str, ...] = tuple(index["clip_ids"])
        self.dtype = np.dtype(index["dtype"])
        self.item_shape: tuple[int, ...] = tuple(index["item_shape"])
        self.attrs: dict[str, Any] = index["attrs"]
        self.issues = pd.DataFrame(index["issues"], columns=ISSUE_COLUMNS)
        self._shard_files: list[str] = [shard["file"] for shard in index["shards"]]
        self._shard_starts = np.cumsum([0] + [shard["rows"] for shard in index["shards"]])
        self._rows = {clip_id: row for row, clip_id in enumerate(self.clip_ids)}
        self._shards: list[np.ndarray | None] = [None] * len(self._shard_files)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.clip_ids), *self.item_shape)

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._rows

    def __getitem__(self, row: int) -> np.ndarray:
        if not -len(self) <= row < len(self):
            raise IndexError(f"row {row} out of range for a store of {len(self)} clips")
        row %= len(self)
        shard = int(np.searchsorted(self._shard_starts, row, side="right")) - 1
        return self._shard(shard)[row - self._shard_starts[shard]]

    def get(self, clip_id: str) -> np.ndarray:
        """The array stored for ``clip_id``; KeyError if the clip is not in the store."""
        try:
            row = self._rows[clip_id]
        except KeyError:
            raise KeyError(
                f"clip {clip_id!r} is not in the feature store {self.directory}; it may have been "
                "rejected during extraction (see the store's issues / features_report)"
            ) from None
        return self[row]

    def row_of(self, clip_id: str) -> int:
        return self._rows[clip_id]

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(clip_id, array) for every stored clip, in row order."""
        for row, clip_id in enumerate(self.clip_ids):
            yield clip_id, self[row]

    def _shard(self, shard: int) -> np.ndarray:
        array = self._shards[shard]
        if array is None:
            array = np.load(self.directory / self._shard_files[shard], mmap_mode="r")
            self._shards[shard] = array
        return array

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_shards"] = [None] * len(self._shard_files)
        return state

    def __repr__(self) -> str:
        return (
            f"FeatureStore({str(self.directory)!r}, clips={len(self)}, "
            f"item_shape={self.item_shape}, dtype={self.dtype})"
        )


def _as_items(data: Iterable[Any] | Mapping[str, np.ndarray]) -> Iterator[FeatureItem]:
    if isinstance(data, Mapping):
        data = data.items()
    for entry in data:
        if isinstance(entry, FeatureItem):
            yield entry
        else:
            clip_id, array = entry
            yield FeatureItem(str(clip_id), array)


class _ShardWriter:
    """Buffers rows of one shard in memory and writes it as .npy when full (or at the end)."""

    def __init__(self, directory: Path, shard_bytes: int):
        self.directory = directory
        self.shard_bytes = shard_bytes
        self.item_shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self.shards: list[dict[str, Any]] = []
        self._buffer: np.ndarray | None = None
        self._filled = 0

    def append(self, clip_id: str, array: np.ndarray) -> None:
        if self._buffer is None and self.item_shape is None:
            self.item_shape, self.dtype = tuple(array.shape), array.dtype
        if tuple(array.shape) != self.item_shape or array.dtype != self.dtype:
            raise FeatureStoreError(
                f"clip {clip_id!r} has shape {array.shape} and dtype {array.dtype}, but the store "
                f"holds {self.item_shape} {self.dtype}: all clips must have one shape and dtype"
            )
        if self._buffer is None:
            rows = max(1, self.shard_bytes // max(array.nbytes, 1))
            self._buffer = np.empty((rows, *self.item_shape), dtype=self.dtype)
        self._buffer[self._filled] = array
        self._filled += 1
        if self._filled == len(self._buffer):
            self.flush()

    def flush(self) -> None:
        if not self._filled:
            return
        name = f"shard-{len(self.shards):05d}.npy"
        with _durable_file(self.directory / name) as file:
            _write_npy(file, self._buffer[: self._filled])
        self.shards.append({"file": name, "rows": self._filled})
        self._filled = 0


@contextmanager
def _durable_file(path: Path) -> Iterator[BinaryIO]:
    """A file opened for writing that is on the disk (fsync) when the block ends."""
    with path.open("wb") as file:
        yield file
        file.flush()
        os.fsync(file.fileno())


def _write_npy(file: BinaryIO, array: np.ndarray) -> None:
    """``np.save``'s format, written by Python's file object: a full disk then raises ENOSPC
    (numpy's own writer reports only a short write), and a C-contiguous array is not copied."""
    np.lib.format.write_array_header_1_0(file, np.lib.format.header_data_from_array_1_0(array))
    file.write(memoryview(np.ascontiguousarray(array)).cast("B"))


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned_partials(directory: str | Path) -> list[Path]:
    """Remove the temporary folders that killed saves left beside ``directory`` (unversioned) or in
    its version folders (versioned), and the version folders left empty; returns what was removed.
    Folders of a save still running (its process is alive) are kept."""
    final = Path(directory)
    removed = []
    pattern = f"{final.name}.partial-*"
    for partial in [*final.parent.glob(pattern), *final.glob(f"*/{pattern}")]:
        pid = partial.name.rpartition("-")[2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
            if partial.parent != final.parent and not any(partial.parent.iterdir()):
                partial.parent.rmdir()
    return removed


def write_feature_store(
    directory: str | Path,
    data: Iterable[Any] | Mapping[str, np.ndarray],
    shard_bytes: int = 64 * 2**20,
    attrs: Mapping[str, Any] | None = None,
    *,
    allow_empty: bool = False,
) -> None:
    """Write a store to ``directory`` (replacing an old one), consuming ``data`` item by item.

    A store of no clip is refused (every clip was rejected, or none was found), unless
    ``allow_empty`` and no clip was given at all: an optional input left empty, such as
    pretraining's extra recordings."""
    final = Path(directory)
    partial = final.with_name(f"{final.name}.partial-{os.getpid()}")
    replaced = final.with_name(f"{final.name}.replaced-{os.getpid()}")
    try:
        partial.mkdir(parents=True)
        writer = _ShardWriter(partial, shard_bytes)
        clip_ids: list[str] = []
        seen: set[str] = set()
        issues: list[dict[str, str]] = []
        for item in _as_items(data):
            if item.clip_id in seen:
                raise FeatureStoreError(f"clip {item.clip_id!r} appears twice in the data to save")
            seen.add(item.clip_id)
            issues += [
                {"clip_id": item.clip_id, "issue": i.issue, "action": i.action} for i in item.issues
            ]
            if item.array is not None:
                writer.append(item.clip_id, np.asarray(item.array))
                clip_ids.append(item.clip_id)
        writer.flush()
        if not clip_ids and not (allow_empty and not seen):
            examples = "; ".join(f"{i['clip_id']}: {i['issue']}" for i in issues[:5])
            raise FeatureStoreError(
                f"no clip produced features ({len(seen)} given, all rejected"
                f"{': ' if examples else ''}{examples}); check that crema_d_root points at a "
                "corpus with readable media"
            )
        index = {
            "format_version": FORMAT_VERSION,
            "dtype": np.dtype(writer.dtype or np.float32).str,
            "item_shape": list(writer.item_shape or ()),
            "clip_ids": clip_ids,
            "shards": writer.shards,
            "attrs": dict(attrs or {}),
            "issues": issues,
        }
        with _durable_file(partial / INDEX_FILE) as file:
            file.write(json.dumps(index).encode())
        if final.exists():
            final.rename(replaced)
        partial.rename(final)
        _fsync_directory(final.parent)
        shutil.rmtree(replaced, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, OSError) and error.errno in {errno.ENOSPC, errno.EDQUOT}:
            raise FeatureStoreError(
                f"no space left on the device while writing the feature store {final} "
                f"({error.strerror}); nothing of it was kept and earlier versions are untouched. "
                "Free some space (older versions of the store can go) and run again."
            ) from error
        raise


def _fingerprint_of(store_directory: Path) -> str | None:
    try:
        return json.loads((store_directory / INDEX_FILE).read_text())["attrs"].get(FINGERPRINT)
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def complete_versions(filepath: str | Path) -> list[str]:
    """The versions (timestamps) of a versioned store whose index is written, newest first."""
    root = Path(filepath)
    found = [p.parent.parent.name for p in root.glob(f"*/{root.name}/{INDEX_FILE}")]
    return sorted(found, reverse=True)


def prune_versions(filepath: str | Path, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest complete versions of a versioned store; returns the
    deleted versions. Versions still being written (no index yet) are left alone.

    From a shell: ``python -c "from avshared.features.store import prune_versions;
    prune_versions('data/04_feature/face_frames', keep=1)"``.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the version in use); got {keep}")
    old = complete_versions(filepath)[keep:]
    for version in old:
        shutil.rmtree(Path(filepath) / version)
    if old:
        logger.info("%s: pruned %d old version(s): %s", filepath, len(old), old)
    return old
