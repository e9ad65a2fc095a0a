"""Feature stores made from the same inputs are reused, not extracted and written again; old
versions are pruned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from kedro.io import Version

from avshared.datasets.feature_store import (
    FINGERPRINT,
    FeatureStoreDataset,
    complete_versions,
    prune_versions,
)
from avshared.pipelines.features.nodes import extract_log_mel_spectrograms


class CountingStream:
    """A lazy stream like FeatureStream: counts the clips it is asked to extract."""

    def __init__(self, fingerprint: str, clips: int = 3):
        self.attrs = {FINGERPRINT: fingerprint}
        self.clips = clips
        self.extracted = 0

    def __iter__(self):
        for index in range(self.clips):
            self.extracted += 1
            yield f"clip{index}", np.full((2, 2), index, dtype=np.float32)


def _run(folder: Path, stream: CountingStream, **kwargs) -> FeatureStoreDataset:
    """What one `kedro run` does with the dataset: a new instance, save, then load."""
    dataset = FeatureStoreDataset(filepath=str(folder), version=Version(None, None), **kwargs)
    dataset.save(stream)
    return dataset


def test_a_second_run_with_the_same_inputs_extracts_nothing_and_writes_no_version(tmp_path):
    folder = tmp_path / "log_mel_spectrograms"
    first = CountingStream("same")
    _run(folder, first)
    versions = complete_versions(folder)
    second = CountingStream("same")
    dataset = _run(folder, second)
    assert (first.extracted, second.extracted) == (3, 0)
    assert complete_versions(folder) == versions and len(versions) == 1
    assert dataset.load().clip_ids == ("clip0", "clip1", "clip2")


def test_changed_inputs_extract_again_and_the_run_loads_its_own_version(tmp_path):
    folder = tmp_path / "store"
    _run(folder, CountingStream("a"))
    changed = CountingStream("b", clips=2)
    dataset = _run(folder, changed)
    assert changed.extracted == 2
    assert len(complete_versions(folder)) == 2
    assert len(dataset.load()) == 2
    # Back to the first parameters: their (older) version is reused and loaded, not the newest.
    back = CountingStream("a")
    dataset = _run(folder, back)
    assert back.extracted == 0
    assert len(complete_versions(folder)) == 2
    assert len(dataset.load()) == 3


def test_keep_versions_prunes_the_oldest_after_a_write(tmp_path):
    folder = tmp_path / "store"
    for fingerprint in "abcd":
        _run(folder, CountingStream(fingerprint), keep_versions=2)
    kept = complete_versions(folder)
    assert len(kept) == 2
    assert prune_versions(folder, keep=1) == kept[1:]
    assert complete_versions(folder) == kept[:1]


def test_the_fingerprint_follows_clips_parameters_and_media(tmp_path):
    media = tmp_path / "1001_DFA_ANG_XX.wav"
    media.write_bytes(b"RIFF....")
    manifest = pd.DataFrame({"clip_id": ["1001_DFA_ANG_XX"], "audio_path": [str(media)]})
    extraction = {"workers": 0, "audio_workers": 0, "prefetch_per_worker": 1}
    audio = {"n_mels": 64}

    def fingerprint(manifest=manifest, audio=audio):
        return extract_log_mel_spectrograms(manifest, audio, extraction).attrs[FINGERPRINT]

    first = fingerprint()
    assert fingerprint() == first
    assert fingerprint(audio={"n_mels": 32}) != first
    assert fingerprint(manifest=manifest.assign(clip_id="1001_DFA_HAP_XX")) != first
    media.write_bytes(b"RIFF......")  # the recording changed
    assert fingerprint() != first
