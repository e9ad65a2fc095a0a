"""What the benchmark scripts share: one measured child process, medians, Markdown and JSON output.

Every measurement is a whole process. ``run_measured`` starts it, waits for it with ``os.wait4``
(whose ``ru_maxrss`` is that process's own peak, and of the children it reaped; not a maximum over
earlier runs, as ``getrusage(RUSAGE_CHILDREN)`` would be) and meanwhile samples the memory of its
whole process tree from /proc (worker pools included), because a pool's memory is the sum of its
processes, which no single ``ru_maxrss`` shows.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: How often the process tree's memory is sampled; each sample reads /proc, a few ms of one core.
SAMPLE_INTERVAL_S = 0.2


@dataclass(frozen=True)
class Measurement:
    """One whole-process run.

    ``peak_rss_mib``: the largest single process of the run (exact for the main process, via
    wait4; sampled for workers that nobody reaped). ``peak_total_rss_mib``: the most that the run's
    processes held together: their private pages plus the largest shared part of any one of them,
    so that the libraries and copy-on-write pages that forked workers share count once (equal to
    the RSS when there is one process). Unlike PSS, it does not shrink when processes outside the
    run map the same libraries. Sampled every ``SAMPLE_INTERVAL_S``: a shorter spike can be missed.
    ``cpu_s``: user + system CPU time of the process and of the children it reaped (wait4): unlike
    the wall time, it hardly grows when other programs compete for the cores.
    """

    wall_s: float
    peak_rss_mib: float
    peak_total_rss_mib: float
    cpu_s: float = float("nan")


def _parent_of(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def _process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and its descendants, from every process's parent in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(entry)
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    tree, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, ()))
    return tree


def _rss_and_private_kib(pid: int) -> tuple[int, int]:
    """(RSS, private part of it) of one process in KiB; (0, 0) when it has gone or is a zombie."""
    values = {"Rss:": 0, "Private_Clean:": 0, "Private_Dirty:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                key, _, rest = line.partition(" ")
                if key in values:
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values["Rss:"], values["Private_Clean:"] + values["Private_Dirty:"]


class _TreeMemorySampler(threading.Thread):
    def __init__(self, root_pid: int):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.stopped = threading.Event()
        self.peak_process_rss_kib = 0
        self.peak_total_rss_kib = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            usage = [_rss_and_private_kib(pid) for pid in _process_tree(self.root_pid)]
            shared = max(rss - private for rss, private in usage)
            total = shared + sum(private for _, private in usage)
            self.peak_process_rss_kib = max(self.peak_process_rss_kib, *(rss for rss, _ in usage))
            self.peak_total_rss_kib = max(self.peak_total_rss_kib, total)
            self.stopped.wait(SAMPLE_INTERVAL_S)


def scratch_project(folder: Path) -> Path:
    """The project's settings in ``folder``/project, so that a measured `kedro run` never writes
    the project's data/; the package is imported from its installed location."""
    project = folder / "project"
    (project / "src").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    shutil.copytree(PROJECT_ROOT / "conf" / "base", project / "conf" / "base")
    (project / "conf" / "local").mkdir()
    return project


def run_measured(
    command: Sequence[str], *, cwd: Path, log_path: Path, env: Mapping[str, str] | None = None
) -> Measurement:
    """Run ``command`` to its end, its output into ``log_path``; exit with the log's tail if it
    fails, since a failed run's numbers would be meaningless."""
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", **(env or {})}
    with log_path.open("w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=log, stderr=log)
        sampler = _TreeMemorySampler(process.pid)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - start
        sampler.stopped.set()
        sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen quiet
    if process.returncode != 0:
        sys.exit(
            f"this run failed (exit code {process.returncode}); its log, {log_path}, ends:\n"
            f"{log_path.read_text()[-4000:]}\ncommand: {' '.join(command)}"
        )
    # ru_maxrss is in KiB on Linux.
    peak_rss_kib = max(usage.ru_maxrss, sampler.peak_process_rss_kib)
    peak_total_kib = max(peak_rss_kib, sampler.peak_total_rss_kib)
    cpu_s = usage.ru_utime + usage.ru_stime
    return Measurement(wall_s, peak_rss_kib / 1024, peak_total_kib / 1024, cpu_s)


def summarise(runs: Sequence[Measurement]) -> dict[str, float]:
    """Median wall and CPU time, the wall time's range; the highest memory peaks of the
    repetitions."""
    return {
        "wall_s": statistics.median(run.wall_s for run in runs),
        "cpu_s": statistics.median(run.cpu_s for run in runs),
        "wall_s_min": min(run.wall_s for run in runs),
        "wall_s_max": max(run.wall_s for run in runs),
        "peak_rss_mib": max(run.peak_rss_mib for run in runs),
        "peak_total_rss_mib": max(run.peak_total_rss_mib for run in runs),
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; numbers right-aligned."""
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) if rows else False
        for i in range(len(headers))
    ]
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---:" if n else "---" for n in numeric) + " |",
    ]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def environment() -> dict[str, Any]:
    """The machine and code a result was measured on."""
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "commit": commit or None,
    }


def at_end(facts: Mapping[str, Any]) -> dict[str, Any]:
    """``environment()`` facts plus the load average once the runs are over: a load above the
    CPU count on either side means other work competed with the runs."""
    return {**facts, "load_average_at_end": os.getloadavg()}


def describe_machine(facts: Mapping[str, Any]) -> str:
    """One line for the top of a report."""
    loads = [
        f"{', '.join(f'{value:.2f}' for value in facts[key])} {when}"
        for key, when in (("load_average_at_start", "at start"), ("load_average_at_end", "at end"))
        if key in facts
    ]
    return (
        f"{facts['cpus']} CPUs, load average {'; '.join(loads)}, Python {facts['python']}, "
        f"commit {facts['commit']}"
    )


def value_range(low: float, high: float) -> str:
    """A table cell for a range of values."""
    return f"{_cell(low)}-{_cell(high)}"


def write_json(path: Path | None, payload: Mapping[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nresults written to {path}")
