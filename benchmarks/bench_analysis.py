"""Benchmark the analysis of one phase: `kedro run --pipelines=analysis --namespaces=bimodal` (the
shared-encoder phase: embeddings, alignment, map, disagreement, attention shares and rollouts) on
the demo corpus's number of test clips.

    python benchmarks/bench_analysis.py [--clips 116] [--repeats 3] [--preset default]
        [--workdir DIR] [--json PATH] [--smoke]

Every measurement is a whole process, `kedro run` in a scratch copy of the project (never the
project's data/ or MLflow store), as a user runs it, MLflow logging included. Per repetition, two
runs, round-robin:

- baseline: the same command with `analysis.clips.max_clips=12`: what every run pays whatever the
  number of clips (Python, Kedro and kedro-mlflow start-up, imports, the MLflow store, loading the
  model, a dozen rollout pictures);
- full: all --clips test clips. "s per clip" is the marginal cost, (full - baseline) / (clips - 12).

Untimed preparation, written through the project's own catalog entries where training and the
features pipeline write them: feature stores at the shapes of conf/base/parameters_features.yml
for --clips test clips of 3 actors (random values: the time does not depend on them), the crowd's
votes, and a bimodal model of --preset with random weights, its training summary, targets and test
predictions. The table gives medians, ranges and memory peaks (benchmarks/measure.py) and, for the
last full run, its longest nodes (from the log's timestamps). The issue's target (issue 20): under
a minute per phase on 2 cores. --smoke: 24 clips, the tiny preset, one run of each: the suite's
check that the benchmark still runs (tests/benchmarks/test_smoke.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from bench_first_run import node_seconds
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.io.core import generate_timestamp
from measure import (
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

from avshared.crema_d import EMOTIONS, SENTENCES
from avshared.features.audio import LogMelConfig
from avshared.features.store import FeatureStore
from avshared.features.video import FaceFramesConfig
from avshared.models import build_model
from avshared.settings import CONFIG_LOADER_ARGS
from avshared.training.phase import phase_config, sized_model_config
from avshared.training.phases import PHASE_MODALITIES

PHASE = "bimodal"
BASELINE_CLIPS = 12
TARGET_S = 60.0
TEST_ACTORS = (1089, 1090, 1091)


def _clip_ids(count: int) -> list[str]:
    """``count`` CREMA-D clip ids of the test actors: every sentence and emotion in turn."""
    combinations = (
        f"{actor}_{sentence}_{emotion}_XX"
        for actor in TEST_ACTORS
        for sentence in SENTENCES
        for emotion in EMOTIONS
    )
    ids = list(islice(combinations, count))
    if len(ids) < count:
        sys.exit(f"--clips: at most {len(TEST_ACTORS) * len(SENTENCES) * len(EMOTIONS)}")
    return ids


def _crowd_votes(clip_ids: list[str], rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for clip_id in clip_ids:
        for modality in ("voice", "face", "audiovisual"):
            counts = rng.multinomial(10, np.full(len(EMOTIONS), 1 / len(EMOTIONS)))
            rows.append(
                {"clip_id": clip_id, "modality": modality, "num_responses": 10}
                | {f"count_{e}": int(c) for e, c in zip(EMOTIONS, counts, strict=True)}
            )
    return pd.DataFrame(rows)


def _phase_inputs(project: Path, count: int, preset: str) -> None:
    """What the features, labels and training pipelines would leave for the analysis of PHASE,
    saved through the project's catalog entries (one version)."""
    rng = np.random.default_rng(0)
    conf = project / "conf"
    parameters = OmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS)["parameters"]
    config = OmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS)["catalog"]
    for entry in config.values():  # absolute paths: this process runs elsewhere
        inner = entry.get("dataset") if isinstance(entry.get("dataset"), dict) else entry
        if "filepath" in inner and not Path(inner["filepath"]).is_absolute():
            inner["filepath"] = str(project / inner["filepath"])
    catalog = DataCatalog.from_config(config, save_version=generate_timestamp())

    audio = LogMelConfig(**parameters["features"]["audio"])
    video = FaceFramesConfig(**parameters["features"]["video"])
    clip_ids = _clip_ids(count)
    catalog.save(
        "log_mel_spectrograms",
        {
            c: rng.normal(-40, 10, (1, audio.n_mels, audio.frames)).astype(np.float16)
            for c in clip_ids
        },
    )
    catalog.save(
        "face_frames",
        {
            c: rng.integers(0, 256, (video.num_frames, 3, video.size, video.size), dtype=np.uint8)
            for c in clip_ids
        },
    )
    catalog.save("crowd_labels", _crowd_votes(clip_ids, rng))

    training = parameters["training"]
    training["defaults"]["model"]["preset"] = preset
    phase = phase_config(
        training["defaults"],
        training["phases"][PHASE],
        str(project),
        phase=PHASE,
        modalities=PHASE_MODALITIES[PHASE],
        seeds=training["seeds"],
    )
    stores = {
        "audio": FeatureStore(catalog.get("log_mel_spectrograms")._get_load_path()),
        "video": FeatureStore(catalog.get("face_frames")._get_load_path()),
    }
    model_config = sized_model_config(phase, stores)
    model = build_model(phase["model"]["kind"], phase["modalities"], model_config)
    catalog.save(f"{PHASE}.model_weights", model)
    summary: dict[str, Any] = {
        "phase": PHASE,
        "data_source": "demo",
        "model_kind": phase["model"]["kind"],
        "modalities": phase["modalities"],
        "model_config": model_config.to_dict(),
        "spectrogram_stats": {"mean": [-40.0] * audio.n_mels, "std": [10.0] * audio.n_mels},
        "folds": 1,
    }
    catalog.save(f"{PHASE}.training_summary", summary)
    facts = pd.DataFrame([c.split("_") for c in clip_ids], columns=["actor", "sentence", "e", "l"])
    targets = pd.DataFrame(
        {
            "clip_id": clip_ids,
            "actor": facts["actor"].astype(int),
            "sentence": facts["sentence"],
            "emotion": facts["e"],
            "level": facts["l"],
            "split": "test",
            "target": facts["e"],
            "fold": 0,
        }
    )
    catalog.save(f"{PHASE}.targets", targets)
    truth = targets["emotion"].map(EMOTIONS.index)
    predictions = targets.loc[:, ["clip_id", "actor", "emotion", "level", "fold"]].assign(
        condition="audiovisual",
        target=truth,
        predicted=np.where(rng.random(count) < 0.5, truth, rng.integers(0, len(EMOTIONS), count)),
    )
    catalog.save(f"{PHASE}.test_predictions", predictions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=116, help="test clips (the demo corpus's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="default", help="model preset (avshared.models)")
    parser.add_argument("--workdir", type=Path, help="where scratch folders go (default: /tmp)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="24 clips, tiny preset, one run each")
    args = parser.parse_args()
    if args.smoke:
        args.clips, args.repeats, args.preset = 24, 1, "tiny"
    if args.clips <= BASELINE_CLIPS:
        sys.exit(f"--clips must exceed the baseline's {BASELINE_CLIPS}")
    facts = environment()
    if args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="bench_analysis_") as scratch:
            measure(args, facts, Path(scratch))
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        measure(args, facts, args.workdir)


def measure(args: argparse.Namespace, facts: dict[str, Any], workdir: Path) -> None:
    """The benchmark, its scratch files in ``workdir``."""
    project = scratch_project(workdir)
    # The parameter files as they are, but fewer resamples in the smoke run.
    if args.smoke:
        (project / "conf" / "local" / "parameters_analysis.yml").write_text(
            yaml.safe_dump({"analysis": {"bootstrap": {"n_boot": 50, "cka_n_boot": 20}}})
        )
    _phase_inputs(project, args.clips, args.preset)

    def kedro(label: str, repeat: int):
        command = [sys.executable, "-m", "kedro", "run", "--pipelines=analysis"]
        command.append(f"--namespaces={PHASE}")
        if label == "baseline":
            command.append(f"--params=analysis.clips.max_clips={BASELINE_CLIPS}")
        log = workdir / f"{label}_{repeat}.log"
        # A wide console keeps each log line on one line.
        return run_measured(command, cwd=project, log_path=log, env={"COLUMNS": "300"}), log

    runs: dict[str, list] = {"baseline": [], "full": []}
    for repeat in range(args.repeats):
        for label, measurements in runs.items():
            measured, log = kedro(label, repeat)
            measurements.append(measured)
    nodes = node_seconds(log.read_text())
    results = {label: summarise(measurements) for label, measurements in runs.items()}
    marginal = (results["full"]["wall_s"] - results["baseline"]["wall_s"]) / (
        args.clips - BASELINE_CLIPS
    )
    results["full"]["s_per_clip"] = marginal
    facts = at_end(facts)

    print(
        f"\nAnalysis of one phase ({PHASE}, {args.preset} preset, DEMO-like random inputs): "
        f"median of {args.repeats}; {describe_machine(facts)}\n"
    )
    rows = [
        [
            label,
            BASELINE_CLIPS if label == "baseline" else args.clips,
            round(result["wall_s"], 1),
            value_range(result["wall_s_min"], result["wall_s_max"]),
            round(result["cpu_s"], 1),
            round(result["peak_rss_mib"]),
            round(result["peak_total_rss_mib"]),
        ]
        for label, result in results.items()
    ]
    headers = ["run", "clips", "wall s", "range", "CPU s", "peak RSS MiB", "all MiB"]
    print(markdown_table(headers, rows))
    full = results["full"]
    print(
        f"\n{marginal:.3f} s per further clip. Target: the analysis of a phase under "
        f"{TARGET_S:.0f} s on 2 cores: {full['wall_s']:.0f} s here "
        f"({'met' if full['wall_s'] < TARGET_S else 'NOT met'}). Its CPU time, "
        f"{full['cpu_s']:.0f} s, hardly depends on other programs: on 2 idle cores the run takes "
        "about that long or less (most of it runs on one core)."
    )
    print("\nLongest nodes of the last full run (s, from the log's timestamps):")
    longest = sorted(nodes.items(), key=lambda item: -item[1])[:6]
    print(markdown_table(["node", "s"], [[name, seconds] for name, seconds in longest]))
    write_json(
        args.json,
        {
            "phase": PHASE,
            "clips": args.clips,
            "baseline_clips": BASELINE_CLIPS,
            "preset": args.preset,
            "results": results,
            "nodes": nodes,
            **facts,
        },
    )


if __name__ == "__main__":
    main()
