"""Benchmark the predict pipeline: clips/s for 2.5 s CREMA-D-format clips, decoding, features and
model together, and the share of time in each.

    python benchmarks/bench_predict.py [--clips 120] [--repeats 3] [--workers 2 0]
        [--preset default] [--workdir DIR] [--json PATH] [--smoke]

Every measurement is a whole process: `kedro run --pipelines=predict` in a scratch copy of the
project (never the project's data/ or MLflow store), as a user runs it. Per configuration (the
predict.options.workers values given), two runs:

- baseline: one clip. Its time is what every run pays whatever its size: Python, Kedro and
  kedro-mlflow start-up, imports, loading the model, starting the worker pool.
- full: --clips clips. "clips/s" is the marginal rate, (clips - 1) / (full - baseline): what each
  further clip costs; "whole run clips/s" includes the start-up.

The shares of time come from the predict node's log line, which sums per clip the CPU time spent
decoding audio, computing log-mels, decoding video and cropping faces (in the workers), and the
model's forward passes (in the Kedro process). CPU time does not grow when other programs compete
for the cores (wall time does), so "CPU ms/clip" and the rate it allows on 2 idle cores,
2 / (CPU s per clip), stay meaningful on a busy machine: a projection, next to the measured rate.

Untimed preparation: a demo corpus (`kedro run --pipelines=demo_data`, 8 actors, IEO and DFA), from
which --clips usable clips are cut or padded to exactly 2.5 s (75 frames at 30 fps, 40,000 samples
at 16 kHz) and written as WAV+FLV pairs in CREMA-D's layout; a bimodal model of the --preset with
random weights (speed does not depend on the weights) saved where training saves it, with a
specification from conf/base/parameters_features.yml; one warm-up run so that every run finds the
files in the page cache. Configurations run round-robin, --repeats times; the table gives medians
and memory peaks (benchmarks/measure.py). The issue's target: at least 20 clips/s with the default
preset on 2 cores. --smoke: 3 clips of a 6-clip corpus, the first worker count, one run, no
warm-up: the suite's check that the benchmark still runs (tests/benchmarks/test_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import yaml
from kedro.io.core import generate_timestamp
from measure import (
    PROJECT_ROOT,
    at_end,
    environment,
    markdown_table,
    run_measured,
    scratch_project,
    summarise,
)

from avshared import crema_d, media
from avshared.features.audio import LogMelConfig
from avshared.features.video import FaceFramesConfig
from avshared.models import ModelConfig, build_model
from avshared.training.specification import build_model_spec

CLIP_SECONDS = 2.5
STAGE_LINE = re.compile(r"(\w+) ([\d.]+) s \(\d+%\)")


def _demo_corpus(project: Path, smoke: bool = False) -> Path:
    demo = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_demo_data.yml").read_text())
    demo["demo_data"] |= {"actors": list(range(1001, 1009)), "sentences": ["IEO", "DFA"]}
    if smoke:
        demo["demo_data"] |= {"actors": [1001], "sentences": ["DFA"], "workers": 1}
    (project / "conf/local/parameters_demo_data.yml").write_text(yaml.safe_dump(demo))
    run_measured(
        [sys.executable, "-m", "kedro", "run", "--pipelines=demo_data"],
        cwd=project,
        log_path=project / "demo_data.log",
    )
    return project / "data/01_raw/crema_d_demo"


def _write_clips(root: Path, folder: Path, count: int) -> int:
    """``count`` usable demo clips, cut or padded to exactly 2.5 s, as WAV+FLV pairs."""
    written = 0
    for wav in sorted((root / crema_d.AUDIO_DIR).glob("*.wav")):
        flv = root / crema_d.VIDEO_DIR / f"{wav.stem}.flv"
        try:
            samples, rate = media.read_audio(wav)
            frames = media.read_frames(flv, range(round(CLIP_SECONDS * crema_d.VIDEO_FPS)))
        except media.MediaError:
            continue  # the corpus's deliberate faults
        available = [frame for frame in frames if frame is not None]
        if not available or not samples.shape[1]:
            continue
        length = round(CLIP_SECONDS * rate)
        audio = np.zeros(length, dtype=np.float32)
        audio[: min(length, samples.shape[1])] = samples[0, :length]
        # A clip shorter than 2.5 s holds its last frame, as a paused player would.
        frames = [frame if frame is not None else available[-1] for frame in frames]
        media.write_audio(folder / crema_d.AUDIO_DIR / wav.name, audio, rate)
        media.write_video(folder / crema_d.VIDEO_DIR / flv.name, frames, crema_d.VIDEO_FPS)
        written += 1
        if written == count:
            break
    return written


def _save_model(project: Path, preset: str, root: Path) -> None:
    """A bimodal model of ``preset`` with random weights, saved as training saves one."""
    features = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_features.yml").read_text())
    audio = LogMelConfig(**features["features"]["audio"])
    video = FaceFramesConfig(**features["features"]["video"])
    model_config = ModelConfig.preset(
        preset,
        n_mels=audio.n_mels,
        audio_frames=audio.frames,
        video_frames=video.num_frames,
        image_size=video.size,
    )
    model = build_model("shared", ["audio", "video"], model_config)
    spec = build_model_spec(
        config={
            "phase": "bimodal",
            "data_source": crema_d_source(root),
            "modalities": ["audio", "video"],
            "model": {"kind": "shared"},
            "target": {"kind": "acted"},
        },
        training_summary={
            "model_config": model_config.to_dict(),
            "mlflow_run_id": None,
            "spectrogram_stats": {"mean": [-40.0] * audio.n_mels, "std": [12.0] * audio.n_mels},
        },
        log_mel_spectrograms=SimpleNamespace(attrs=asdict(audio)),
        face_frames=SimpleNamespace(attrs=asdict(video)),
    )
    version = generate_timestamp()
    models = project / "data/06_models/bimodal"
    for name, write in (
        ("model_spec.json", lambda path: path.write_text(json.dumps(spec))),
        ("model_weights.pt", lambda path: torch.save(model.state_dict(), path)),
    ):
        target = models / name / version / name
        target.parent.mkdir(parents=True)
        write(target)


def crema_d_source(root: Path) -> str:
    return "demo" if crema_d.is_demo_root(root) else "crema-d"


def _stage_seconds(log: str) -> dict[str, float]:
    line = next(line for line in log.splitlines() if "CPU time per stage" in line)
    return {stage: float(seconds) for stage, seconds in STAGE_LINE.findall(line)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--smoke", action="store_true", help="3 clips of a 6-clip corpus, one run, no warm-up"
    )
    args = parser.parse_args()
    if args.smoke:
        args.clips, args.repeats, args.workers = 3, 1, args.workers[:1]

    facts = environment()
    if args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="bench_predict_") as scratch:
            measure(args, facts, Path(scratch))
    else:
        measure(args, facts, args.workdir)


def measure(args: argparse.Namespace, facts: dict, workdir: Path) -> None:
    """The benchmark, its scratch files in ``workdir``."""
    project = scratch_project(workdir)
    root = _demo_corpus(project, args.smoke)
    clips, one = workdir / "clips", workdir / "one_clip"
    count = _write_clips(root, clips, args.clips)
    _write_clips(root, one, 1)
    _save_model(project, args.preset, root)

    def kedro(folder: Path, workers: int, log: Path):
        command = [sys.executable, "-m", "kedro", "run", "--pipelines=predict"]
        command.append(f"--params=predict.inputs={folder},predict.options.workers={workers}")
        # A wide console keeps the stage line on one line of the log.
        return run_measured(command, cwd=project, log_path=log, env={"COLUMNS": "400"})

    if not args.smoke:
        kedro(clips, args.workers[0], workdir / "warm_up.log")
    runs: dict[tuple[int, str], list] = {}
    stages: dict[int, list[dict[str, float]]] = {}
    for repeat in range(args.repeats):
        for workers in args.workers:
            for label, folder in (("baseline", one), ("full", clips)):
                log = workdir / f"{label}_w{workers}_{repeat}.log"
                runs.setdefault((workers, label), []).append(kedro(folder, workers, log))
                if label == "full":
                    stages.setdefault(workers, []).append(_stage_seconds(log.read_text()))

    rows, results = [], {}
    for workers in args.workers:
        base, full = summarise(runs[(workers, "baseline")]), summarise(runs[(workers, "full")])
        rate = (count - 1) / max(full["wall_s"] - base["wall_s"], 1e-9)
        shares = {
            stage: statistics.median(run[stage] for run in stages[workers])
            for stage in stages[workers][0]
        }
        total = sum(shares.values())
        rows.append(
            [
                workers,
                round(base["wall_s"], 2),
                round(full["wall_s"], 2),
                round(rate, 1),
                round(count / full["wall_s"], 1),
                round(1000 * total / count, 1),
                round(min(2, max(workers, 1)) * count / total, 1),
                round(full["peak_total_rss_mib"]),
                ", ".join(f"{stage} {value / total:.0%}" for stage, value in shares.items()),
            ]
        )
        results[f"workers_{workers}"] = {
            "baseline": base,
            "full": full,
            "clips_per_s": rate,
            "stage_cpu_seconds": shares,
        }
    print(
        f"\nPredict: {count} clips of {CLIP_SECONDS} s (CREMA-D format), {args.preset} preset, "
        f"median of {args.repeats}; load average {facts['load_average_at_start']} at the start, "
        f"{os.getloadavg()} at the end\n"
    )
    print(
        markdown_table(
            [
                "workers",
                "1 clip (s)",
                f"{count} clips (s)",
                "clips/s",
                "whole run clips/s",
                "CPU ms/clip",
                "clips/s, 2 idle cores (projection)",
                "peak MiB",
                "CPU time share",
            ],
            rows,
        )
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"clips": count, "preset": args.preset, "results": results, **at_end(facts)},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
