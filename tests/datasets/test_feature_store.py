"""FeatureStoreDataset: id alignment, round trips, versioning, streaming saves, failures."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from kedro.io import DatasetError, Version

from avshared.datasets.feature_store import (
    FeatureIssue,
    FeatureItem,
    FeatureStore,
    FeatureStoreDataset,
)

ITEM_SHAPE = (1, 4, 5)


def _arrays(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        f"10{i:02d}_DFA_ANG_XX": rng.normal(size=ITEM_SHAPE).astype(np.float32)
        for i in range(count)
    }


def test_get_by_clip_id_returns_that_clips_array_whatever_the_order(tmp_path):
    arrays = _arrays(11)
    shuffled = list(arrays)
    np.random.default_rng(1).shuffle(shuffled)
    # A tiny shard size puts about two clips per shard, so lookups cross shard boundaries.
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"), shard_size_mb=200 / 2**20)
    dataset.save([(clip_id, arrays[clip_id]) for clip_id in shuffled])

    store = dataset.load()
    assert isinstance(store, FeatureStore)
    assert store.clip_ids == tuple(shuffled)
    assert len(list((tmp_path / "store").glob("shard-*.npy"))) > 3
    assert store.shape == (11, *ITEM_SHAPE)
    assert store.dtype == np.float32
    assert len(store) == 11
    for clip_id, array in arrays.items():
        assert clip_id in store
        np.testing.assert_array_equal(store.get(clip_id), array)
    for row, clip_id in enumerate(shuffled):
        np.testing.assert_array_equal(store[row], arrays[clip_id])
    np.testing.assert_array_equal(store[-1], arrays[shuffled[-1]])
    assert [clip_id for clip_id, _ in store.items()] == shuffled


def test_loaded_arrays_are_read_only_memory_maps(tmp_path):
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(_arrays(3))
    array = dataset.load()[0]
    assert isinstance(array.base, np.memmap) or isinstance(array, np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        array[0, 0, 0] = 1.0


def test_unknown_clip_and_row_fail_with_a_clear_error(tmp_path):
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(_arrays(2))
    store = dataset.load()
    with pytest.raises(KeyError, match="rejected during extraction"):
        store.get("1099_DFA_ANG_XX")
    with pytest.raises(IndexError):
        store[2]


def test_rejected_items_are_not_stored_but_their_issues_are(tmp_path):
    good = np.ones(ITEM_SHAPE, dtype=np.float32)
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(
        [
            FeatureItem("1001_DFA_ANG_XX", good),
            FeatureItem("1002_DFA_ANG_XX", None, (FeatureIssue("undecodable", "rejected"),)),
            FeatureItem("1003_DFA_ANG_XX", good * 2, (FeatureIssue("short_video", "repeated"),)),
        ]
    )
    store = dataset.load()
    assert store.clip_ids == ("1001_DFA_ANG_XX", "1003_DFA_ANG_XX")
    assert store.issues.to_dict("records") == [
        {"clip_id": "1002_DFA_ANG_XX", "issue": "undecodable", "action": "rejected"},
        {"clip_id": "1003_DFA_ANG_XX", "issue": "short_video", "action": "repeated"},
    ]


def test_attrs_of_the_saved_object_are_kept(tmp_path):
    class Stream(list):
        def __init__(self, items):
            super().__init__(items)
            self.attrs = {"modality": "audio", "n_mels": 4}

    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(Stream(_arrays(2).items()))
    assert dataset.load().attrs == {"modality": "audio", "n_mels": 4}


def test_versioned_saves_keep_every_version_and_load_the_latest(tmp_path):
    path = str(tmp_path / "features")
    FeatureStoreDataset(filepath=path, version=Version(None, "2025-01-01T00.00.00.000Z")).save(
        _arrays(2, seed=1)
    )
    FeatureStoreDataset(filepath=path, version=Version(None, "2025-01-02T00.00.00.000Z")).save(
        _arrays(3, seed=2)
    )

    latest = FeatureStoreDataset(filepath=path, version=Version(None, None))
    assert latest.exists()
    assert len(latest.load()) == 3
    assert latest.list_versions(full_path=False) == [
        "2025-01-02T00.00.00.000Z",
        "2025-01-01T00.00.00.000Z",
    ]
    pinned = FeatureStoreDataset(filepath=path, version=Version("2025-01-01T00.00.00.000Z", None))
    first = _arrays(2, seed=1)
    np.testing.assert_array_equal(pinned.load().get("1001_DFA_ANG_XX"), first["1001_DFA_ANG_XX"])
    with pytest.raises(DatasetError, match="must not exist"):
        FeatureStoreDataset(filepath=path, version=Version(None, "2025-01-01T00.00.00.000Z")).save(
            _arrays(1)
        )


def test_save_writes_shards_while_the_stream_is_still_being_consumed(tmp_path):
    """The node hands save() a lazy stream: shards must reach disk before the stream ends."""
    target = tmp_path / "store"
    arrays = _arrays(8)
    shards_on_disk_during_stream = []

    def stream():
        for clip_id, array in arrays.items():
            shards_on_disk_during_stream.append(len(list(tmp_path.glob("store.partial-*/*.npy"))))
            yield clip_id, array

    FeatureStoreDataset(filepath=str(target), shard_size_mb=2 * 80 / 2**20).save(stream())
    assert shards_on_disk_during_stream[-1] >= 3
    assert len(FeatureStoreDataset(filepath=str(target)).load()) == 8


def test_a_failed_save_leaves_no_store_and_keeps_the_previous_one(tmp_path):
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(_arrays(2))

    def broken():
        yield from _arrays(3).items()
        raise RuntimeError("decoder crashed")

    with pytest.raises(DatasetError, match="decoder crashed"):
        dataset.save(broken())
    assert len(dataset.load()) == 2
    assert [path.name for path in tmp_path.iterdir()] == ["store"]


def test_an_unversioned_save_replaces_the_previous_store(tmp_path):
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(_arrays(2))
    dataset.save(_arrays(5))
    assert len(dataset.load()) == 5
    assert [path.name for path in tmp_path.iterdir()] == ["store"]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [("1001_DFA_ANG_XX", np.zeros((2, 2))), ("1002_DFA_ANG_XX", np.zeros((2, 3)))],
            "one shape and dtype",
        ),
        (
            [("1001_DFA_ANG_XX", np.zeros(2)), ("1001_DFA_ANG_XX", np.zeros(2))],
            "appears twice",
        ),
        (
            [FeatureItem("1001_DFA_ANG_XX", None, (FeatureIssue("undecodable", "rejected"),))],
            "no clip produced features .*1001_DFA_ANG_XX: undecodable",
        ),
    ],
)
def test_inconsistent_or_empty_data_is_refused(tmp_path, items, message):
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"))
    with pytest.raises(DatasetError, match=message):
        dataset.save(items)
    assert not dataset.exists()


def test_an_optional_store_given_no_clip_is_empty_but_all_rejected_still_fails(tmp_path):
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"), allow_empty=True)
    dataset.save([])
    store = dataset.load()

    assert len(store) == 0 and "1001_DFA_ANG_XX" not in store
    rejected = FeatureItem("1001_DFA_ANG_XX", None, (FeatureIssue("no_face", "rejected"),))
    with pytest.raises(DatasetError, match="no clip produced features"):
        dataset.save([rejected])


def test_pickled_store_carries_its_index_not_its_data(tmp_path):
    big = {f"10{i:02d}_DFA_ANG_XX": np.full((64, 300), i, dtype=np.float32) for i in range(20)}
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(big)
    store = dataset.load()
    store.get("1005_DFA_ANG_XX")  # opens a shard
    payload = pickle.dumps(store)
    assert len(payload) < 10_000
    np.testing.assert_array_equal(
        pickle.loads(payload).get("1007_DFA_ANG_XX"), big["1007_DFA_ANG_XX"]
    )


def test_a_directory_without_index_is_not_a_store(tmp_path):
    (tmp_path / "store").mkdir()
    dataset = FeatureStoreDataset(filepath=str(tmp_path / "store"))
    assert not dataset.exists()
    with pytest.raises(DatasetError, match=r"index\.json is missing"):
        dataset.load()
