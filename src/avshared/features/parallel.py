"""Extraction over many clips in a bounded pool of worker processes, evaluated lazily.

A ``FeatureStream`` is what the features nodes return: nothing is decoded until something iterates
over it (``FeatureStoreDataset.save``), and then a torch DataLoader runs ``extract`` on each clip in
``workers`` processes, each holding at most ``prefetch_per_worker`` finished clips ahead of the
consumer. Items come back in job order, so peak memory depends on the pool, not on the clip count.

Workers are forked from a fork server (started once per process, with the extraction modules
imported), not from the calling process: a plain fork copies the caller's thread pools in whatever
state they are, and OpenCV's then deadlocks in the child once the caller has used it.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import cv2
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from avshared.features.store import FeatureItem

logger = logging.getLogger(__name__)

#: (clip_id, path of the clip's media file)
ClipJob = tuple[str, str]


class _Jobs(Dataset):
    def __init__(self, jobs: Sequence[ClipJob], extract: Callable[[ClipJob], FeatureItem]):
        self.jobs = jobs
        self.extract = extract

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> FeatureItem:
        return self.extract(self.jobs[index])


def _unchanged(item: FeatureItem) -> FeatureItem:
    return item


#: Imported once by the fork server, so that each worker starts without importing torch again.
_PRELOAD = ["avshared.features.audio", "avshared.features.video"]


def _worker_context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def _one_thread_per_worker(_: int) -> None:
    # Workers are the parallelism: OpenCV's own pool would oversubscribe the cores (the DataLoader
    # already limits torch to one thread per worker).
    cv2.setNumThreads(1)


def worker_pool_options(workers: int, prefetch_per_worker: int, label: str) -> dict[str, Any]:
    """DataLoader arguments for ``workers`` processes forked from the preloaded fork server, one
    OpenCV thread each; no workers in a daemonic process (e.g. a ParallelRunner worker), which may
    not start processes of its own."""
    if workers and multiprocessing.current_process().daemon:
        logger.warning("%s: running in a daemonic process, extracting without workers", label)
        workers = 0
    return {
        "num_workers": workers,
        "prefetch_factor": prefetch_per_worker if workers else None,
        "worker_init_fn": _one_thread_per_worker if workers else None,
        "multiprocessing_context": _worker_context() if workers else None,
    }


class FeatureStream:
    """Lazily extracted features of a list of clips; iterate to run the extraction.

    Args:
        jobs: (clip_id, media path) per clip, in the order the items come out.
        extract: Function of one job that returns a FeatureItem rather than raise on a defective
            clip; workers receive it pickled, so it must be a module-level function of an
            importable module (or a ``functools.partial`` of one).
        workers: Worker processes; 0 extracts in the calling process.
        prefetch_per_worker: Finished clips each worker may hold before the consumer takes them.
        description: Label of the progress bar and of the summary logged at the end.
        attrs: Provenance that the store saves along (parameters, array layout).
    """

    def __init__(
        self,
        jobs: Sequence[ClipJob],
        extract: Callable[[ClipJob], FeatureItem],
        *,
        workers: int,
        prefetch_per_worker: int = 4,
        description: str = "features",
        attrs: Mapping[str, Any] | None = None,
    ):
        self.jobs = list(jobs)
        self.extract = extract
        self.workers = workers
        self.prefetch_per_worker = prefetch_per_worker
        self.description = description
        self.attrs = dict(attrs or {})

    def __len__(self) -> int:
        return len(self.jobs)

    def _loader(self) -> DataLoader:
        return DataLoader(
            _Jobs(self.jobs, self.extract),
            batch_size=None,
            shuffle=False,
            collate_fn=_unchanged,
            # No pool for no clips (an optional input with nothing in it).
            **worker_pool_options(
                min(self.workers, len(self.jobs)), self.prefetch_per_worker, str(self)
            ),
        )

    def __iter__(self) -> Iterator[FeatureItem]:
        issues: Counter[tuple[str, str]] = Counter()
        rejected = 0
        progress = tqdm(total=len(self), desc=self.description, unit="clip", disable=None)
        # A disabled bar (no terminal) measures no time, so the rate is timed here.
        started = time.perf_counter()
        with progress:
            for item in self._loader():
                issues.update((issue.issue, issue.action) for issue in item.issues)
                rejected += item.array is None
                progress.update()
                yield item
        logger.info(
            "%s: %d clips extracted, %d rejected, %.1f clips/s; issues: %s",
            self.description,
            len(self) - rejected,
            rejected,
            len(self) / max(time.perf_counter() - started, 1e-9),
            dict(issues) or "none",
        )

    def __repr__(self) -> str:
        return f"FeatureStream({self.description!r}, clips={len(self)}, workers={self.workers})"
