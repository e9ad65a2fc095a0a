"""Feature stores under faults: a full disk and a save killed with SIGKILL never leave a
half-written store where a load looks, and the previous version stays readable."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from kedro.io.core import DatasetError, Version

from avshared.datasets.feature_store import FeatureStoreDataset
from avshared.features import store as feature_store

ITEM_SHAPE = (1, 64, 300)  # a default log-mel spectrogram: 38 kB in float16


def _clips(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        f"10{i:02d}_DFA_ANG_XX": rng.normal(size=ITEM_SHAPE).astype(np.float16)
        for i in range(count)
    }


def _versioned(directory: Path, version: str | None = None) -> FeatureStoreDataset:
    return FeatureStoreDataset(
        filepath=str(directory / "log_mel_spectrograms"),
        version=Version(None, version),
        shard_size_mb=0.2,
    )


def _assert_holds(dataset: FeatureStoreDataset, clips: dict[str, np.ndarray]) -> None:
    store = dataset.load()
    assert store.clip_ids == tuple(clips)
    for clip_id, array in clips.items():
        np.testing.assert_array_equal(store.get(clip_id), array)


def _leftovers(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if ".partial-" in path.name]


@pytest.fixture
def small_filesystem(tmp_path):
    """A 2 MB tmpfs (root only): a real full disk."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_fails_clearly_and_keeps_the_previous_version(small_filesystem):
    previous = _clips(10)
    _versioned(small_filesystem, "2026-01-01T00.00.00.000Z").save(previous)

    with pytest.raises(DatasetError, match="no space left on the device") as error:
        _versioned(small_filesystem, "2026-01-02T00.00.00.000Z").save(_clips(80, seed=1))

    assert "earlier versions are untouched" in str(error.value)
    assert not _leftovers(small_filesystem)
    _assert_holds(_versioned(small_filesystem), previous)  # the latest complete version


def test_a_failing_writer_keeps_the_previous_unversioned_store(tmp_path, monkeypatch):
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"), shard_size_mb=0.2)
    previous = _clips(10)
    dataset.save(previous)
    real_write = feature_store._write_npy
    shards_written = []

    def write_until_the_disk_fills(file, array):
        if shards_written:
            file.write(b"\x93NUMPY half a shard")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        shards_written.append(file)
        real_write(file, array)

    monkeypatch.setattr(feature_store, "_write_npy", write_until_the_disk_fills)
    with pytest.raises(DatasetError, match="no space left on the device"):
        dataset.save(_clips(30, seed=1))

    assert shards_written, "the fault must strike after a shard was written"
    assert not _leftovers(tmp_path)
    _assert_holds(dataset, previous)


SLOW_SAVE = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from kedro.io.core import Version
    from avshared.datasets.feature_store import FeatureStoreDataset

    def clips():
        for i in range(1000):
            time.sleep(0.01)
            yield f"clip{i:04d}", np.full((1, 64, 300), i, dtype=np.float16)

    FeatureStoreDataset(
        filepath=sys.argv[1], version=Version(None, sys.argv[2]), shard_size_mb=0.2
    ).save(clips())
    """
)


def test_a_killed_save_is_never_loaded_and_the_next_save_cleans_up(tmp_path):
    previous = _clips(5)
    _versioned(tmp_path, "2026-01-01T00.00.00.000Z").save(previous)
    saving = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SLOW_SAVE,
            str(tmp_path / "log_mel_spectrograms"),
            "2026-01-02T00.00.00.000Z",
        ]
    )
    deadline = time.monotonic() + 120
    while not any(any(partial.glob("*.npy")) for partial in _leftovers(tmp_path)):
        assert saving.poll() is None, "the save ended before it could be killed"
        assert time.monotonic() < deadline, "no shard written within 120 s"
        time.sleep(0.05)
    os.kill(saving.pid, signal.SIGKILL)
    saving.wait(timeout=30)
    assert _leftovers(tmp_path), "the killed save left its temporary folder"

    _assert_holds(_versioned(tmp_path), previous)  # the killed version is invisible to loads

    newer = _clips(7, seed=2)
    _versioned(tmp_path, "2026-01-03T00.00.00.000Z").save(newer)
    assert not _leftovers(tmp_path)
    versions = sorted(p.name for p in (tmp_path / "log_mel_spectrograms").iterdir())
    assert versions == ["2026-01-01T00.00.00.000Z", "2026-01-03T00.00.00.000Z"]
    _assert_holds(_versioned(tmp_path), newer)
