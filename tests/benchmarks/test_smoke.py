"""Every script in benchmarks/ runs in its --smoke mode (a handful of clips or steps, one
repetition) and reports a result with positive figures: a change to the code a benchmark measures
that breaks the benchmark turns the suite red. Each script runs as a user runs it, a subprocess in
its own session; the timeout catches a hang, never slowness (a loaded 2-core machine is many times
slower than an idle one). What the figures are is the benchmarks' business, not the tests'."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = PROJECT_ROOT / "benchmarks"
#: Kills a hung benchmark; a smoke run takes seconds to a minute or two on an idle machine.
HANG_S = 1200
#: A corpus of 2 actors x 1 sentence (12 clips), with one of the corpus's faulty clips
#: (1003_DFA_HAP_XX, an unreadable video).
TINY_CORPUS = {"actors": [1001, 1003], "sentences": ["DFA"], "workers": 1}


def run_benchmark(script: str, *args: str, cwd: Path) -> str:
    """``python benchmarks/<script> <args>`` to its end; its output, or the test fails with it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    process = subprocess.Popen(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=cwd,
        env=env | {"KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{script} {' '.join(args)} hung for {HANG_S} s; output:\n{output[-4000:]}")
    assert process.returncode == 0, f"{script} {' '.join(args)} failed:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, scratch_project, cli) -> Path:
    """A 12-clip demo corpus, written by `kedro run --pipelines=demo_data`."""
    project = scratch_project(tmp_path_factory.mktemp("bench_corpus"))
    (project / "conf" / "local" / "parameters_tiny.yml").write_text(
        yaml.safe_dump({"demo_data": TINY_CORPUS})
    )
    cli.run(project, "--pipelines=demo_data")
    return project / "data" / "01_raw" / "crema_d_demo"


def test_bench_training_smoke(tmp_path):
    output = run_benchmark(
        "bench_training.py", "--smoke", "--json", str(tmp_path / "r.json"), cwd=tmp_path
    )
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    phases = {key.split(" / ")[0] for key in results}
    assert phases == {"video", "audio", "bimodal", "baseline"}
    for key, result in results.items():
        assert result["samples_per_s"] > 0, key
        assert result["flops_per_sample"] > 0, key
        assert result["matmul_peak_flop_per_s"] > 0, key
        assert result["share_of_peak"] > 0, key
        groups = result["profile_ms_per_step"]
        for group in ("attention (SDPA)", "attention projections", "MLP", "norm",
                      "optimiser & grad clipping"):  # fmt: skip
            assert groups[group]["total"] > 0, (key, group)
        assert groups["patch embedding"]["forward"] > 0, key
    assert "ms per step by operator group" in output
    assert "shared/separate" in output


def test_bench_optimiser_smoke(tmp_path):
    run_benchmark("bench_optimiser.py", "--smoke", "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert set(results) == {"for-loop", "foreach", "fused"}
    assert all(r["median_s"] > 0 and r["best_s"] > 0 for r in results.values())


@pytest.mark.slow  # inductor compiles five graphs of the tiny model: a minute or two
def test_bench_compile_smoke(tmp_path):
    output = run_benchmark(
        "bench_compile.py", "--smoke", "--json", str(tmp_path / "r.json"), cwd=tmp_path
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["results"]) == {"eager", "compiled"}
    for variant, result in report["results"].items():
        assert result["samples_per_s"] > 0 and result["startup_s"] > 0, variant
    graphs = set(report["runs"]["compiled"][0]["startup_s"])
    assert {"first training steps", "last training batch", "validation audio+video"} <= graphs
    assert report["run_steps"] > 0
    assert "compile cost" in output


@pytest.mark.slow  # four whole processes: about 2 minutes on 2 cores
def test_bench_pretrain_smoke(tmp_path):
    output = run_benchmark(
        "bench_pretrain.py", "--smoke", "--json", str(tmp_path / "r.json"), cwd=tmp_path
    )
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert set(results) == {
        "supervised bimodal step (baseline)",
        "shared autoencoder",
        "shared autoencoder + contrastive",
        "separate autoencoders (audio + video)",
    }
    for name, result in results.items():
        assert result["clips_per_s"] > 0 and result["flops_per_clip"] > 0, name
        assert result["peak_rss_mib"] > 0, name
    assert results["supervised bimodal step (baseline)"]["vs_baseline"] == 1
    assert "vs baseline" in output


def test_bench_demo_data_smoke(tmp_path):
    run_benchmark(
        "bench_demo_data.py", "--smoke", "--workdir", str(tmp_path), "--json",
        str(tmp_path / "r.json"), cwd=tmp_path,
    )  # fmt: skip
    (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert result["clips"] == 6
    assert result["clips_per_s"] > 0 and result["peak_rss_mib"] > 0


def test_bench_ingestion_smoke(tmp_path, tiny_corpus):
    output = run_benchmark("bench_ingestion.py", str(tiny_corpus), "--smoke", cwd=tmp_path)
    # "workers  wall s  clips  clips/s  peak RSS MiB": the whole-run row of 1 worker.
    row = next(line.split() for line in output.splitlines() if line.split()[:1] == ["1"])
    assert int(row[2]) == 12  # every listed clip, usable or not
    assert float(row[1]) > 0 and float(row[3]) > 0 and float(row[4]) > 0


def test_bench_features_smoke(tmp_path, tiny_corpus):
    output = run_benchmark(
        "bench_features.py", str(tiny_corpus), "--smoke", "--workdir", str(tmp_path), "--json",
        str(tmp_path / "r.json"), cwd=tmp_path,
    )  # fmt: skip
    report = json.loads((tmp_path / "r.json").read_text())
    assert {r["implementation"] for r in report["results"]} == {"naive", "pipeline"}
    for result in report["results"]:
        assert result["clips"] == 6 and result["extract_clips_per_s"] > 0
        assert result["projected_full_set_s"] > 0
        assert result["stores"]["video"]["face_found"] == 6  # a drawn face in every clip
    (naive,) = [r for r in report["results"] if r["implementation"] == "naive"]
    assert report["store_agreement"] == [
        f"{modality} of naive-both-0-blazeface-{naive['face_box']}: 6 of 6 clips equal"
        for modality in ("audio", "video")
    ]
    assert "Projected full set" in output


def test_bench_predict_smoke(tmp_path):
    run_benchmark(
        "bench_predict.py", "--smoke", "--workdir", str(tmp_path), "--json",
        str(tmp_path / "r.json"), cwd=tmp_path,
    )  # fmt: skip
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["clips"] == 3
    (result,) = report["results"].values()
    assert result["clips_per_s"] > 0
    assert sum(result["stage_cpu_seconds"].values()) > 0


def test_demo_face_finding_smoke(tmp_path, tiny_corpus):
    run_benchmark(
        "demo_face_finding.py", str(tiny_corpus), "--smoke", "--json", str(tmp_path / "r.json"),
        cwd=tmp_path,
    )  # fmt: skip
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    everyone = {
        (row["finder"], row["face_box"]): row for row in summary if row["backdrop"] == "all"
    }
    assert set(everyone) == {(f, b) for f in ("blazeface", "skin") for b in ("first", "median")}
    assert all(row["clips"] == 6 and row["cpu_ms"] > 0 for row in everyone.values())


@pytest.mark.slow  # two whole `kedro run`s: a minute or two
def test_bench_analysis_smoke(tmp_path):
    output = run_benchmark(
        "bench_analysis.py", "--smoke", "--workdir", str(tmp_path), "--json",
        str(tmp_path / "r.json"), cwd=tmp_path,
    )  # fmt: skip
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["clips"], report["baseline_clips"], report["phase"]) == (24, 12, "bimodal")
    for run in ("baseline", "full"):
        result = report["results"][run]
        assert result["wall_s"] > 0 and result["cpu_s"] > 0 and result["peak_rss_mib"] > 0, run
    # The full run went through the whole template, attention included.
    assert {"embed_test_clips", "measure_attention_shares", "draw_attention_rollouts"} <= set(
        report["nodes"]
    )
    assert "Longest nodes" in output


@pytest.mark.slow
def test_bench_first_run_smoke(tmp_path):
    output = run_benchmark(
        "bench_first_run.py", "--smoke", "--workdir", str(tmp_path), "--json",
        str(tmp_path / "r.json"), cwd=tmp_path,
    )  # fmt: skip
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["results"]["bimodal"]["wall_s"] > 0
    assert report["results"]["demo_data"]["wall_s"] > 0
    (run,) = report["runs"]
    assert run["clips"] <= 48  # the smoke corpus: 8 actors x 6 clips of one sentence
    # Log timestamps have whole seconds: the smoke model may train within one, so the node must be
    # there and the run's nodes together must have taken time.
    train = [seconds for node, seconds in run["nodes"].items() if node.endswith("train_cells")]
    assert train and train[0] >= 0
    assert sum(run["nodes"].values()) > 0
    assert "Longest nodes" in output


@pytest.mark.slow
def test_bench_training_scaling_smoke(tmp_path):
    run_benchmark(
        "bench_training.py", "--scaling", "--smoke", "--json", str(tmp_path / "r.json"),
        cwd=tmp_path,
    )  # fmt: skip
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert {"audio/1 process x 2 threads", "audio/2 DDP processes x 1 thread"} <= set(results)
    assert all(r["samples_per_s"] > 0 and r["loader_samples_per_s"] > 0 for r in results.values())
