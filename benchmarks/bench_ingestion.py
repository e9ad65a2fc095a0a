"""Benchmark the ingestion pipeline: whole `kedro run`s on a CREMA-D root, 1 worker vs the pool.

    python benchmarks/bench_ingestion.py ROOT [--repeats 3] [--workers 1 4] [--cold] [--smoke]

Each configuration runs `python -m kedro run --pipelines=ingestion --params=crema_d_root=ROOT,
ingestion.workers=N` in a scratch copy of the project's settings (so the project's data/ is never
overwritten), several times; the table gives the median wall time, clips per second (listed or
present clips, usable or not) and the peak RSS of the run's process. A second table times the three
working nodes in this process (no Kedro start-up), which is where the worker count matters. An
untimed run first warms the page cache, so every configuration reads the media from memory alike;
with --cold the root's media are evicted from the page cache before every run instead, as on a first
ingestion of a freshly copied corpus. --smoke: one run with 1 worker and no warm-up, the suite's
check that the benchmark still runs (tests/benchmarks/test_smoke.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from measure import scratch_project

from avshared import crema_d
from avshared.pipelines.ingestion.nodes import check_root, list_clips, probe_clips, validate_clips

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PARAMETERS = PROJECT_ROOT / "conf" / "base" / "parameters_ingestion.yml"


def evict_media(root: Path) -> None:
    """Drop the root's media from the page cache, so that the next run reads them from disk."""
    for folder, suffix in ((crema_d.AUDIO_DIR, ".wav"), (crema_d.VIDEO_DIR, ".flv")):
        for path in (root / folder).glob(f"*{suffix}"):
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


def run_once(project: Path, root: Path, workers: int, cold: bool) -> tuple[float, float, int]:
    """One whole-process run: (wall seconds, peak RSS in MiB, clips seen)."""
    if cold:
        evict_media(root)
    command = [
        sys.executable,
        "-m",
        "kedro",
        "run",
        "--pipelines=ingestion",
        f"--params=crema_d_root={root},ingestion.workers={workers}",
    ]
    # With no mlflow.yml, kedro-mlflow uses ./mlruns, a store MLflow 3 refuses unless allowed.
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MLFLOW_ALLOW_FILE_STORE": "true"}
    log_path = project / "run.log"
    with log_path.open("w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=log)
        # wait4 gives this run's own peak RSS; getrusage(RUSAGE_CHILDREN) keeps the max of all runs.
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"kedro run failed (workers={workers}):\n{log_path.read_text()[-4000:]}")
    outputs = project / "data" / "02_intermediate"
    clips = sum(
        len(pd.read_parquet(outputs / name))
        for name in ("clip_manifest.parquet", "rejected_clips.parquet")
    )
    return wall_s, usage.ru_maxrss / 1024, clips  # ru_maxrss is in KiB on Linux


def time_nodes(root: Path, workers: int, params: dict, repeats: int, cold: bool) -> float:
    """Median seconds of list_clips + probe_clips + validate_clips in this process."""
    sentence_filenames = pd.read_csv(root / crema_d.SENTENCE_FILENAMES_FILE)
    demographics = pd.read_csv(root / crema_d.DEMOGRAPHICS_FILE)
    logging.getLogger("avshared").setLevel(logging.ERROR)  # the per-run summary, once per repeat
    times = []
    for _ in range(repeats):
        if cold:
            evict_media(root)
        start = time.perf_counter()
        clips = list_clips(sentence_filenames, check_root(str(root)))
        validate_clips(probe_clips(clips, workers), demographics, params)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a CREMA-D root (real or generated demo corpus)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        help="pool sizes to compare (default: 1, the baseline, and the configured pool)",
    )
    parser.add_argument(
        "--cold", action="store_true", help="evict the media from the page cache before each run"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="one run, 1 worker, no warm-up: does it still run"
    )
    args = parser.parse_args()
    root = args.root.resolve()
    params = yaml.safe_load(PARAMETERS.read_text())["ingestion"]
    workers = args.workers or sorted({1, params["workers"]})
    if args.smoke:
        args.repeats, workers = 1, args.workers or [1]

    with tempfile.TemporaryDirectory(prefix="bench_ingestion_") as folder:
        project = scratch_project(Path(folder))
        if not args.smoke:
            run_once(project, root, workers[-1], cold=False)  # warm-up: page cache, bytecode
        cache = "cold" if args.cold else "warm"
        print(f"root {root}, {os.cpu_count()} CPUs, {cache} page cache, {args.repeats} runs each")
        print(f"{'workers':>7} {'wall s':>8} {'clips':>6} {'clips/s':>8} {'peak RSS MiB':>13}")
        for count in workers:
            runs = [run_once(project, root, count, args.cold) for _ in range(args.repeats)]
            wall_s = statistics.median(run[0] for run in runs)
            clips = runs[0][2]
            peak_mib = max(run[1] for run in runs)
            print(f"{count:>7} {wall_s:>8.2f} {clips:>6} {clips / wall_s:>8.1f} {peak_mib:>13.0f}")

    print("\nnodes only (list + probe + validate, in this process, no Kedro start-up)")
    print(f"{'workers':>7} {'wall s':>8} {'clips/s':>8}")
    for count in workers:
        wall_s = time_nodes(root, count, params, args.repeats, args.cold)
        print(f"{count:>7} {wall_s:>8.2f} {clips / wall_s:>8.1f}")


if __name__ == "__main__":
    main()
