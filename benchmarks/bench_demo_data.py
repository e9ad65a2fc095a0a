"""Benchmark the demo_data pipeline: whole `kedro run --pipelines=demo_data`s, 1 worker vs 2.

    python benchmarks/bench_demo_data.py [--repeats 3] [--workers 1 2] [--workdir DIR] [--json PATH]
    python benchmarks/bench_demo_data.py --full --root /tmp/crema_d_full [--json PATH]
    python benchmarks/bench_demo_data.py --smoke [--root PATH]

Comparison (the default): each worker count (the first is the baseline) generates the configured
demo corpus (conf/base/parameters_demo_data.yml, 800 clips less CREMA-D's absent ones) into a fresh
scratch root, --repeats times, round-robin, with `python -m kedro run --pipelines=demo_data
--params=crema_d_root=ROOT,demo_data.workers=N` run from a scratch copy of the project's settings,
so the project's data/ is never touched. The table gives the median wall time of the whole process
(Kedro start-up and the crowd simulation included), clips per second, and the memory peaks
(benchmarks/measure.py): the largest single process, and all processes of the run together.

With --root PATH the corpus is generated ONCE into PATH, timed, and kept there for the other
benchmarks (bench_features.py PATH); --full makes it the full-size corpus (demo_data.actors=all,
demo_data.sentences=all: CREMA-D's 7,442 clips). --params adds Kedro parameters to every run, in
`kedro run`'s syntax, e.g. --params="demo_data.seed=1,demo_data.sentences=[IEO]".

An untimed run of a 6-clip corpus comes first, so that every timed run finds the scratch MLflow
store created and the bytecode compiled. The corpus is generated data: its figures are DEMO results.
--smoke: one run of a 6-clip corpus (one actor, one sentence) with 1 worker and no warm-up, in
seconds: the suite's check that the benchmark still runs (tests/benchmarks/test_smoke.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml
from measure import (
    PROJECT_ROOT,
    Measurement,
    at_end,
    describe_machine,
    environment,
    markdown_table,
    run_measured,
    scratch_project,
    summarise,
    value_range,
    write_json,
)

from avshared import crema_d

PARAMETERS = PROJECT_ROOT / "conf" / "base" / "parameters_demo_data.yml"
FULL_SIZE_PARAMS = "demo_data.actors=all,demo_data.sentences=all"
WARM_UP_PARAMS = "demo_data.actors=[1001],demo_data.sentences=[DFA]"
HEADERS = [
    "workers",
    "runs",
    "median wall s",
    "wall s min-max",
    "clips",
    "clips/s",
    "speed-up",
    "peak RSS MiB (largest process)",
    "peak total RSS MiB (all processes)",
]


def generate(project: Path, root: Path, workers: int, params: str, log_path: Path) -> Measurement:
    """One whole `kedro run --pipelines=demo_data` into ``root``."""
    all_params = ",".join(
        p for p in (f"crema_d_root={root}", f"demo_data.workers={workers}", params) if p
    )
    command = [sys.executable, "-m", "kedro", "run", "--pipelines=demo_data", "--params"]
    return run_measured([*command, all_params], cwd=project, log_path=log_path)


def clip_count(root: Path) -> int:
    return len(pd.read_csv(root / crema_d.SENTENCE_FILENAMES_FILE))


def check_root_is_outside_project_data(root: Path) -> None:
    if root.is_relative_to(PROJECT_ROOT / "data"):
        sys.exit(
            f"{root} is inside the project's data/ folder, which benchmarks never write to: "
            "pass a scratch folder instead, e.g. --root /tmp/crema_d_full"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per worker count (default 3)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        help="worker counts to compare, the first is the baseline (default: 1 2); with --root, the "
        "one worker count to generate with (default: the configured demo_data.workers)",
    )
    parser.add_argument(
        "--root", type=Path, help="generate the corpus once into this folder, timed, and keep it"
    )
    parser.add_argument(
        "--full", action="store_true", help="with --root: the full-size corpus (7,442 clips)"
    )
    parser.add_argument(
        "--params", default="", help='extra Kedro parameters for every run: "a.b=c,d=e"'
    )
    parser.add_argument("--workdir", type=Path, help="where scratch folders go (default: /tmp)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--smoke", action="store_true", help="one run of a 6-clip corpus, 1 worker, no warm-up"
    )
    args = parser.parse_args()
    if args.smoke:
        if args.full:
            parser.error("--smoke generates a 6-clip corpus; it does not go with --full")
        args.repeats, args.workers = 1, args.workers or [1]
        args.params = ",".join(p for p in (WARM_UP_PARAMS, args.params) if p)
    if args.full and args.root is None:
        parser.error("--full needs --root PATH: the folder that keeps the full-size corpus")
    configured_workers = int(yaml.safe_load(PARAMETERS.read_text())["demo_data"]["workers"])
    if args.root is not None:
        args.root = args.root.resolve()
        check_root_is_outside_project_data(args.root)
        workers = args.workers or [configured_workers]
    else:
        workers = args.workers or [1, 2]
    params = ",".join(p for p in (FULL_SIZE_PARAMS if args.full else "", args.params) if p)
    facts = environment()

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_demo_data_", dir=args.workdir) as scratch:
        folder = Path(scratch)
        project = scratch_project(folder)
        if not args.smoke:
            warm_up = folder / "warm_up_root"
            generate(project, warm_up, workers[0], WARM_UP_PARAMS, folder / "warm.log")
            shutil.rmtree(warm_up)

        runs: dict[int, list[Measurement]] = {count: [] for count in workers}
        clips: dict[int, int] = {}
        if args.root is not None:
            # Once, into the kept root: what the other benchmarks then read.
            runs[workers[0]].append(
                generate(project, args.root, workers[0], params, folder / "root.log")
            )
            clips[workers[0]] = clip_count(args.root)
        else:
            root = folder / "root"
            for repeat in range(args.repeats):
                for count in workers:  # round-robin, so drifting load hits every count alike
                    shutil.rmtree(root, ignore_errors=True)
                    log_path = folder / f"workers{count}-{repeat}.log"
                    runs[count].append(generate(project, root, count, params, log_path))
                    clips[count] = clip_count(root)

    facts = at_end(facts)
    baseline = summarise(runs[workers[0]])
    rows, results = [], []
    for count in workers:
        summary = summarise(runs[count])
        clips_per_s = clips[count] / summary["wall_s"]
        speed_up = baseline["wall_s"] / summary["wall_s"]
        label = f"{count}" + (" (baseline)" if count == workers[0] and len(workers) > 1 else "")
        rows.append(
            [label, len(runs[count]), summary["wall_s"],
             value_range(summary["wall_s_min"], summary["wall_s_max"]), clips[count], clips_per_s,
             speed_up,
             summary["peak_rss_mib"], summary["peak_total_rss_mib"]]
        )  # fmt: skip
        results.append(
            {
                "workers": count,
                "baseline": count == workers[0],
                "clips": clips[count],
                "clips_per_s": clips_per_s,
                "speed_up": speed_up,
                **summary,
                "runs": [vars(run) for run in runs[count]],
            }
        )

    where = f"into {args.root} (kept)" if args.root is not None else "into scratch roots"
    size = "full-size" if args.full else "configured-size"
    print(f"\n## demo_data: `kedro run --pipelines=demo_data`, {size} DEMO corpus {where}\n")
    print(describe_machine(facts) + (f"; extra params: {args.params}" if args.params else ""))
    print()
    print(markdown_table(HEADERS, rows))
    write_json(
        args.json,
        {
            "benchmark": "demo_data",
            "data": "demo",
            "command": "kedro run --pipelines=demo_data",
            "params": params,
            "root": str(args.root) if args.root else None,
            "repeats": args.repeats if args.root is None else 1,
            "environment": facts,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
