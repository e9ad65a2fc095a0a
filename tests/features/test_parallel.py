"""FeatureStream: lazy, ordered, the same with or without worker processes."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from avshared import media
from avshared.features.audio import LogMelConfig, extract_clip_log_mel
from avshared.features.parallel import FeatureStream
from avshared.features.store import FeatureItem


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> list[tuple[str, str]]:
    """Ten short WAVs of different pitch; every fourth one is not a WAV at all."""
    root = tmp_path_factory.mktemp("wav")
    result = []
    for number in range(10):
        path = root / f"{number}.wav"
        if number % 4 == 3:
            path.write_bytes(b"not audio")
        else:
            t = np.arange(8_000) / 16_000
            media.write_audio(path, 0.3 * np.sin(2 * np.pi * (300 + 200 * number) * t), 16_000)
        result.append((f"10{number:02d}_DFA_ANG_XX", str(path)))
    return result


def explode(job: tuple[str, str]) -> FeatureItem:
    raise RuntimeError(f"extract ran on {job[0]}")


def test_nothing_is_extracted_until_the_stream_is_iterated(jobs):
    stream = FeatureStream(jobs, explode, workers=0, attrs={"modality": "audio"})
    assert len(stream) == 10
    assert stream.attrs == {"modality": "audio"}
    with pytest.raises(RuntimeError, match="extract ran on 1000_DFA_ANG_XX"):
        next(iter(stream))


def test_workers_give_the_same_items_in_job_order_as_a_single_process(jobs):
    extract = partial(extract_clip_log_mel, config=LogMelConfig(n_mels=16, duration_s=0.5))
    serial = list(FeatureStream(jobs, extract, workers=0))
    pooled = list(FeatureStream(jobs, extract, workers=2, prefetch_per_worker=2))
    assert [item.clip_id for item in pooled] == [clip_id for clip_id, _ in jobs]
    for one, other in zip(serial, pooled, strict=True):
        assert one.issues == other.issues
        if one.array is None:
            assert other.array is None
        else:
            np.testing.assert_array_equal(one.array, other.array)
    assert sum(item.array is None for item in pooled) == 2
    # Different pitches give different spectrograms: the order check above means something.
    assert not np.array_equal(pooled[0].array, pooled[1].array)
