"""Benchmark a new user's first run: the README's `kedro run --pipelines=demo_data` then
`kedro run --pipelines=bimodal`, each a whole process, in a fresh scratch project each repetition.

    python benchmarks/bench_first_run.py [--repeats 3] [--params "a.b=c"] [--workdir DIR]
        [--json PATH] [--smoke]

Every repetition makes a fresh scratch copy of the project's settings (benchmarks/measure.py:
pyproject.toml and conf/base, an empty conf/local), so its data folder, MLflow store and
checkpoints start empty, as on a fresh clone; then it runs the two commands of the README's quick
start one after the other, as `python -m kedro run ...`, each measured as a whole process (wall
time, peak RSS of the largest process and of all processes together). Nothing is shared between
repetitions but the installed package and the page cache of its files. The table gives the median
of each command and of the two together, with their ranges. The issue's target (issue 23): the
bimodal run under 180 s on 2 idle cores. Per repetition the bimodal run's log gives the time of
its longest nodes (Kedro's "Completed node" lines do not say it: the script reads the log's
timestamps), so that a slow run says where it went. The corpus is generated: DEMO figures.

--smoke: one repetition on an 8-actor, one-sentence corpus with the `tiny` model for 1 epoch, in
a minute or so: the suite's check that the benchmark still runs (tests/benchmarks/test_smoke.py).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from measure import (
    Measurement,
    at_end,
    describe_machine,
    environment,
    markdown_table,
    run_measured,
    scratch_project,
    value_range,
    write_json,
)

from avshared import crema_d

TARGET_S = 180.0
COMMANDS = {"demo_data": "--pipelines=demo_data", "bimodal": "--pipelines=bimodal"}
#: The smoke run's conf/local: a small corpus and model, one epoch.
SMOKE_PARAMETERS = {
    "demo_data": {"actors": list(range(1001, 1009)), "sentences": ["DFA"], "faults": {}},
    "training": {
        "defaults": {
            "model": {"preset": "tiny"},
            "trainer": {"max_epochs": 1, "min_epochs": 1, "progress_bar": False},
        }
    },
}
#: Kedro's rich log lines: "[12/03/26 18:01:02] INFO  Running node: bimodal.train_cells: ..."
LOG_TIME = re.compile(r"^\[(\d\d/\d\d/\d\d \d\d:\d\d:\d\d)\]")
NODE_START = re.compile(r"Running node: ([\w.]+)")


def node_seconds(log: str) -> dict[str, float]:
    """Seconds from each node's start to the next node's start (the last: to the log's end),
    from the timestamps of the log lines: a node's own time within a second."""
    starts: list[tuple[str, datetime]] = []
    last: datetime | None = None
    for line in log.splitlines():
        stamp = LOG_TIME.match(line)
        if stamp:
            last = datetime.strptime(stamp.group(1), "%m/%d/%y %H:%M:%S")
        node = NODE_START.search(line)
        if node and last is not None:
            starts.append((node.group(1), last))
    if last is None:
        return {}
    ends = [t for _, t in starts[1:]] + [last]
    return {
        name: (end - start).total_seconds()
        for (name, start), end in zip(starts, ends, strict=False)
    }


def first_run(folder: Path, params: str, local: dict | None) -> dict[str, Any]:
    """One fresh project, the two commands: their measurements and the bimodal run's nodes."""
    project = scratch_project(folder)
    for name, values in (local or {}).items():
        (project / "conf" / "local" / f"parameters_{name}.yml").write_text(
            yaml.safe_dump({name: values})
        )
    measured = {}
    for name, pipeline in COMMANDS.items():
        command = [sys.executable, "-m", "kedro", "run", pipeline]
        if params:
            command += ["--params", params]
        log = folder / f"{name}.log"
        # A wide console keeps each log line on one line.
        measured[name] = run_measured(command, cwd=project, log_path=log, env={"COLUMNS": "300"})
    nodes = node_seconds((folder / "bimodal.log").read_text())
    corpus = project / "data" / "01_raw" / "crema_d_demo" / crema_d.SENTENCE_FILENAMES_FILE
    return {"measurements": measured, "nodes": nodes, "clips": len(pd.read_csv(corpus))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh first runs (default 3)")
    parser.add_argument("--params", default="", help='Kedro parameters for both runs: "a.b=c"')
    parser.add_argument("--workdir", type=Path, help="where scratch folders go (default: /tmp)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="one tiny run: does it still run")
    args = parser.parse_args()
    local = SMOKE_PARAMETERS if args.smoke else None
    if args.smoke:
        args.repeats = 1
    facts = environment()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_first_run_", dir=args.workdir) as scratch:
        for repeat in range(args.repeats):
            runs.append(first_run(Path(scratch) / f"run{repeat}", args.params, local))
            walls = {k: round(m.wall_s, 1) for k, m in runs[-1]["measurements"].items()}
            print(f"  run {repeat + 1}: {walls} s", flush=True)
    facts = at_end(facts)

    def column(name: str) -> list[Measurement]:
        return [run["measurements"][name] for run in runs]

    rows, results = [], {}
    for name in (*COMMANDS, "both"):
        if name == "both":
            walls = [sum(m.wall_s for m in run["measurements"].values()) for run in runs]
            peaks = [
                max(m.peak_total_rss_mib for m in run["measurements"].values()) for run in runs
            ]
        else:
            walls = [m.wall_s for m in column(name)]
            peaks = [m.peak_total_rss_mib for m in column(name)]
        command = "both, one after the other" if name == "both" else f"kedro run {COMMANDS[name]}"
        rows.append([command, len(walls), statistics.median(walls),
                     value_range(min(walls), max(walls)), max(peaks)])  # fmt: skip
        results[name] = {"wall_s": statistics.median(walls), "wall_s_all": walls,
                         "peak_total_rss_mib": max(peaks)}  # fmt: skip
    slowest = sorted(runs[-1]["nodes"].items(), key=lambda item: -item[1])[:8]
    print(f"\n## First run: the README's two commands in a fresh project, {args.repeats} runs\n")
    print(describe_machine(facts) + (f"; params {args.params}" if args.params else ""))
    if args.smoke:
        print("SMOKE run: 8 actors x 1 sentence, tiny model, 1 epoch")
    print()
    print(markdown_table(["command", "runs", "median wall s", "wall s min-max",
                          "peak total RSS MiB"], rows))  # fmt: skip
    bimodal = results["bimodal"]["wall_s"]
    verdict = "meets" if bimodal < TARGET_S else "MISSES"
    print(f"\nbimodal run: median {bimodal:.0f} s, which {verdict} the target of {TARGET_S:.0f} s")
    print("\nLongest nodes of the last bimodal run (s, from the log's timestamps):")
    print(markdown_table(["node", "s"], [[name, seconds] for name, seconds in slowest]))
    print(f"\nDEMO corpus of {runs[-1]['clips']} clips")
    write_json(
        args.json,
        {
            "benchmark": "first_run",
            "data": "demo",
            "params": args.params,
            "smoke": args.smoke,
            "repeats": args.repeats,
            "environment": facts,
            "results": results,
            "runs": [
                {
                    "measurements": {k: vars(m) for k, m in run["measurements"].items()},
                    "nodes": run["nodes"],
                    "clips": run["clips"],
                }
                for run in runs
            ],
        },
    )


if __name__ == "__main__":
    main()
