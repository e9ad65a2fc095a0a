"""Benchmark training throughput on the CPU: samples/s of each phase's model, shared vs separate.

    python benchmarks/bench_training.py [--phases video audio bimodal baseline] [--steps 20]
        [--warmup 5] [--batch-size 16] [--repeats 3] [--json PATH]

Each repetition of each phase is a whole process (`python benchmarks/bench_training.py --child
SPEC`) that builds the phase's model as the training pipeline does: avshared.models.build_model
with ModelConfig.preset(<preset>) and the phase's overrides of conf/base/parameters_training.yml
(training.defaults merged with training.phases.<phase>, by the pipeline's own
resolve_phase_config), wrapped in avshared.pipelines.training.module.EmotionClassifierModule (loss,
AdamW, warm-up and cosine schedule), and trains it with a Lightning Trainer set up as train_model
sets it up on a CPU (32-bit, gradient clipping, deterministic mode, one device), on random inputs
at the default feature shapes (audio (1, 64, 300) float32, video (8, 3, 112, 112) uint8) and batch
--batch-size, held in memory, so that only the model's training step is timed. --warmup steps
first, then --steps timed steps: samples/s = steps x batch size / their wall time. The processes
run round-robin, --repeats times; the table gives the median samples/s, the peak memory of the
process (benchmarks/measure.py) and the parameter count.

The baseline is the `baseline` phase: one encoder per modality, same width and depth, late fusion,
on both modalities. The ratio shared/separate compares it with the `bimodal` phase (the one shared
encoder, early fusion, the same inputs). No data set is read: these are throughputs, not results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from measure import (
    PROJECT_ROOT,
    Measurement,
    at_end,
    describe_machine,
    environment,
    markdown_table,
    run_measured,
    value_range,
    write_json,
)

PARAMETERS = PROJECT_ROOT / "conf" / "base" / "parameters_training.yml"
CHILD_FLAG = "--child"
PHASES = ("video", "audio", "bimodal", "baseline")
BASELINE_PHASE, SHARED_PHASE = "baseline", "bimodal"
#: Distinct random batches cycled through: enough that no step sees its predecessor's input.
DISTINCT_BATCHES = 4
HEADERS = [
    "phase",
    "model",
    "inputs",
    "parameters",
    "runs",
    "median samples/s",
    "samples/s min-max",
    "median step ms",
    "vs baseline",
    "peak RSS MiB",
]


# ---------------------------------------------------------------- the measured child process


def run_child(spec: dict[str, Any]) -> None:
    """Train the spec's phase for warm-up + timed steps on random inputs; write the throughput."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, Dataset

    from avshared.crema_d import EMOTIONS
    from avshared.models import ModelConfig, build_model, count_parameters
    from avshared.pipelines.training.module import EmotionClassifierModule
    from avshared.pipelines.training.nodes import resolve_phase_config

    training = yaml.safe_load(PARAMETERS.read_text())["training"]
    phase = spec["phase"]
    # No corpus is read: the root only decides the demo/crema-d label, which is not used here.
    config = resolve_phase_config(
        training["defaults"], training["phases"][phase], spec["scratch"], phase=phase
    )
    model_fields = {k: v for k, v in config["model"].items() if k not in ("kind", "preset")}
    model_config = ModelConfig.preset(config["model"]["preset"], **model_fields)
    L.seed_everything(config["seed"], verbose=False)
    model = build_model(config["model"]["kind"], config["modalities"], model_config)
    module = EmotionClassifierModule(model, config["modalities"], **config["optimiser"])

    batch_size = spec["batch_size"]
    shapes = {
        "audio": (1, model_config.n_mels, model_config.audio_frames),
        "video": (model_config.video_frames, 3, model_config.image_size, model_config.image_size),
    }

    def random_batch() -> dict[str, torch.Tensor]:
        labels = torch.randint(len(EMOTIONS), (batch_size,))
        batch = {
            "target": torch.nn.functional.one_hot(labels, len(EMOTIONS)).float(),
            "label": labels,
        }
        if "audio" in config["modalities"]:
            batch["audio"] = torch.randn(batch_size, *shapes["audio"])
        if "video" in config["modalities"]:
            batch["video"] = torch.randint(256, (batch_size, *shapes["video"]), dtype=torch.uint8)
        return batch

    class RandomBatches(Dataset):
        def __init__(self, length: int):
            self.batches = [random_batch() for _ in range(DISTINCT_BATCHES)]
            self.length = length

        def __len__(self) -> int:
            return self.length

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            return self.batches[index % DISTINCT_BATCHES]

    class StepTimer(L.Callback):
        """Wall time from the first timed step's start to the last step's end."""

        def __init__(self, warmup: int):
            self.warmup = warmup
            self.started = self.ended = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == self.warmup:
                self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.ended = time.perf_counter()

    steps = spec["warmup"] + spec["steps"]
    timer = StepTimer(spec["warmup"])
    trainer_config = config["trainer"]
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="32-true",  # what train_model uses on a CPU
        max_epochs=1,
        limit_train_batches=steps,
        gradient_clip_val=trainer_config["gradient_clip_val"],
        deterministic=trainer_config["deterministic"],
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=spec["scratch"],
    )
    loader = DataLoader(RandomBatches(steps), batch_size=None, shuffle=False, num_workers=0)
    trainer.fit(module, train_dataloaders=loader)
    timed_s = timer.ended - timer.started
    result = {
        "samples_per_s": spec["steps"] * batch_size / timed_s,
        "step_s": timed_s / spec["steps"],
        "param_count": count_parameters(model),
        "model_kind": config["model"]["kind"],
        "modalities": config["modalities"],
        "model_config": model_config.to_dict(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    Path(spec["result"]).write_text(json.dumps(result))


# ---------------------------------------------------------------- the benchmark


def train(phase: str, args: argparse.Namespace, folder: Path, log_path: Path) -> tuple:
    """One whole training process: (its measurement, what it reported)."""
    spec = {
        "phase": phase,
        "steps": args.steps,
        "warmup": args.warmup,
        "batch_size": args.batch_size,
        "scratch": str(folder),
        "result": str(folder / "result.json"),
    }
    command = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, json.dumps(spec)]
    measurement = run_measured(command, cwd=folder, log_path=log_path)
    return measurement, json.loads((folder / "result.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--phases", nargs="+", choices=PHASES, default=list(PHASES), help="phases to time"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    batch_size = yaml.safe_load(PARAMETERS.read_text())["training"]["defaults"]["data"]
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(batch_size["batch_size"]),
        help="samples per step (default: training.defaults.data.batch_size)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per phase")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    facts = environment()

    runs: dict[str, list[tuple[Measurement, dict[str, Any]]]] = {p: [] for p in args.phases}
    with tempfile.TemporaryDirectory(prefix="bench_training_") as scratch:
        folder = Path(scratch)
        for repeat in range(args.repeats):
            for phase in args.phases:  # round-robin, so drifting load hits every phase alike
                runs[phase].append(train(phase, args, folder, folder / f"{phase}-{repeat}.log"))
                print(f"  {phase}: {runs[phase][-1][1]['samples_per_s']:.1f} samples/s", flush=True)

    facts = at_end(facts)
    results = {}
    for phase, phase_runs in runs.items():
        samples_per_s = [r["samples_per_s"] for _, r in phase_runs]
        report = phase_runs[-1][1]
        results[phase] = {
            "model_kind": report["model_kind"],
            "modalities": report["modalities"],
            "param_count": report["param_count"],
            "samples_per_s": statistics.median(samples_per_s),
            "samples_per_s_min": min(samples_per_s),
            "samples_per_s_max": max(samples_per_s),
            "step_s": statistics.median(r["step_s"] for _, r in phase_runs),
            "peak_rss_mib": max(m.peak_rss_mib for m, _ in phase_runs),
            "torch_threads": report["torch_threads"],
            "model_config": report["model_config"],
            "runs": [
                {**vars(m), **{k: r[k] for k in ("samples_per_s", "step_s")}} for m, r in phase_runs
            ],
        }
    baseline = results.get(BASELINE_PHASE)
    rows = [
        [f"{phase} (baseline)" if phase == BASELINE_PHASE else phase,
         result["model_kind"], "+".join(result["modalities"]), result["param_count"],
         len(runs[phase]), result["samples_per_s"],
         value_range(result["samples_per_s_min"], result["samples_per_s_max"]),
         1000 * result["step_s"],
         result["samples_per_s"] / baseline["samples_per_s"] if baseline else "-",
         result["peak_rss_mib"]]
        for phase, result in results.items()
    ]  # fmt: skip

    first = next(iter(results.values()))
    print(f"\n## Training throughput on the CPU, random inputs, batch {args.batch_size}\n")
    print(
        describe_machine(facts)
        + f", torch {first['torch_threads']} threads; {args.warmup} warm-up + {args.steps} timed "
        f"steps per run, {args.repeats} runs per phase"
    )
    print()
    print(markdown_table(HEADERS, rows))
    ratio = None
    if baseline and SHARED_PHASE in results:
        shared = results[SHARED_PHASE]
        ratio = {
            "samples_per_s": shared["samples_per_s"] / baseline["samples_per_s"],
            "param_count": shared["param_count"] / baseline["param_count"],
        }
        print(
            f"\nshared/separate ({SHARED_PHASE} / {BASELINE_PHASE}): samples/s "
            f"{ratio['samples_per_s']:.2f}x, parameters {ratio['param_count']:.2f}x"
        )
    write_json(
        args.json,
        {
            "benchmark": "training",
            "inputs": "random tensors at the default feature shapes (no data set)",
            "batch_size": args.batch_size,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "repeats": args.repeats,
            "environment": facts,
            "results": results,
            "shared_over_separate": ratio,
        },
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        run_child(json.loads(sys.argv[2]))
    else:
        main()
