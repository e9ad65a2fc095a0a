"""Benchmark training throughput on the CPU: samples/s of each phase's model, shared vs separate;
and, with --scaling, one phase through the real training node on 1 process vs 2 DDP processes,
the loader's own throughput, and a GPU when there is one.

    python benchmarks/bench_training.py [--phases video audio bimodal baseline] [--steps 20]
        [--warmup 5] [--batch-size 16] [--repeats 3] [--json PATH]
    python benchmarks/bench_training.py --scaling [--phases audio] [--clips 256] [--epochs 2]
        [--batch-size 16] [--repeats 3] [--json PATH]

Each repetition of each phase is a whole process (`python benchmarks/bench_training.py --child
SPEC`) that builds the phase's model as the training pipeline does: avshared.models.build_model
with ModelConfig.preset(<preset>) and the phase's overrides of conf/base/parameters_training.yml
(training.defaults merged with training.phases.<phase>, by the pipeline's own
resolve_phase_config), wrapped in avshared.training.module.EmotionClassifierModule (loss,
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
SCALING_FLAG = "--scaling-child"
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
    from avshared.training.module import EmotionClassifierModule
    from avshared.training.phase import phase_config as resolve_phase_config

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


# ---------------------------------------------------------------- scaling: the training node


def run_scaling_child(spec: dict[str, Any]) -> None:
    """Train ``spec["phase"]`` with avshared's train_model on a synthetic memory-mapped store at
    the default feature shapes; write the last epoch's training samples/s (all processes) and the
    loader's own samples/s (reading + collating + device standardisation, no model)."""
    import numpy as np
    import pandas as pd
    import torch

    from avshared.crema_d import EMOTIONS
    from avshared.features.audio import spectrogram_stats
    from avshared.features.store import FeatureStore, write_feature_store
    from avshared.pipelines.training import PHASE_MODALITIES
    from avshared.training.data import ClipDataModule
    from avshared.training.phase import phase_config as resolve_phase_config
    from avshared.training.phase import train_model

    torch.set_num_threads(spec["threads"])
    folder, rng = Path(spec["scratch"]), np.random.default_rng(0)
    clip_ids = [f"{1001 + i // 6}_DFA_{EMOTIONS[i % 6]}_XX" for i in range(spec["clips"])]
    shapes = {"audio": ((1, 64, 300), np.float16), "video": ((8, 3, 112, 112), np.uint8)}
    stores = {}
    for modality in PHASE_MODALITIES[spec["phase"]]:
        shape, dtype = shapes[modality]
        items = ((c, (rng.random(shape) * 200).astype(dtype)) for c in clip_ids)
        write_feature_store(folder / modality, items)
        stores[modality] = FeatureStore(folder / modality)
    split = np.where(np.arange(len(clip_ids)) % 8 == 0, "val", "train")
    targets = pd.DataFrame(
        {"clip_id": clip_ids, "split": split, "target": [c[9:12] for c in clip_ids]}
    )
    for emotion in EMOTIONS:
        targets[f"p_{emotion}"] = (targets["target"] == emotion).astype(np.float32)
    stats = (
        spectrogram_stats((stores["audio"].get(c) for c in clip_ids), "per_band")
        if "audio" in stores
        else None
    )

    training = yaml.safe_load(PARAMETERS.read_text())["training"]
    defaults = training["defaults"]
    defaults["trainer"] |= {
        "accelerator": spec["accelerator"],
        "devices": spec["devices"],
        "max_epochs": spec["epochs"],
        "min_epochs": spec["epochs"],
        "progress_bar": False,
    }
    defaults["data"] |= {"batch_size": spec["batch_size"], "num_workers": 0}
    defaults["checkpoint_dir"] = str(folder / "checkpoints")
    config = resolve_phase_config(
        defaults,
        training["phases"][spec["phase"]],
        spec["scratch"],
        phase=spec["phase"],
        modalities=PHASE_MODALITIES[spec["phase"]],
    )
    data = ClipDataModule(
        targets, audio=stores.get("audio"), video=stores.get("video"),
        batch_size=spec["batch_size"], seed=0,
    )  # fmt: skip
    from avshared.training.module import EmotionClassifierModule

    standardise = EmotionClassifierModule.on_after_batch_transfer
    holder = type("Stats", (), {})()
    if stats is not None:
        holder.audio_mean = torch.tensor(stats["mean"]).reshape(1, 1, -1, 1)
        holder.audio_std = torch.tensor(stats["std"]).reshape(1, 1, -1, 1)
    started, loaded = time.perf_counter(), 0
    for _ in range(2):
        for batch in data.train_dataloader():
            standardise(holder, batch, 0)
            loaded += len(batch["target"])
    loader_samples_per_s = loaded / (time.perf_counter() - started)

    _, history, summary = train_model(
        targets=targets,
        target_summary={},
        config=config,
        log_mel_spectrograms=stores.get("audio"),
        spectrogram_stats=stats,
        face_frames=stores.get("video"),
    )
    last = history.iloc[-1]
    result = {
        "samples_per_s": float(last["train_samples"] / last["train_seconds"]),
        "loader_samples_per_s": loader_samples_per_s,
        "param_count": summary["param_count"],
        "devices": summary["devices"],
    }
    Path(spec["result"]).write_text(json.dumps(result))


SCALING_SETUPS: dict[str, dict[str, Any]] = {
    "1 process x 2 threads": {"accelerator": "cpu", "devices": 1, "threads": 2},
    "2 DDP processes x 1 thread": {"accelerator": "cpu", "devices": 2, "threads": 1},
    "1 GPU": {"accelerator": "gpu", "devices": 1, "threads": 2},
}


def scaling(args: argparse.Namespace) -> None:
    """The --scaling benchmark; see the module's docstring."""
    import torch

    facts = environment()
    setups = {
        name: setup for name, setup in SCALING_SETUPS.items() if setup["accelerator"] == "cpu"
    }
    if torch.cuda.is_available():
        setups["1 GPU"] = SCALING_SETUPS["1 GPU"]
    runs: dict[tuple[str, str], list] = {}
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as scratch:
        for repeat in range(args.repeats):
            for phase in args.phases:
                for index, (name, setup) in enumerate(setups.items()):
                    folder = Path(scratch) / f"{phase}-{index}-{repeat}"
                    folder.mkdir()
                    spec = {**setup, "phase": phase, "clips": args.clips, "epochs": args.epochs,
                            "batch_size": args.batch_size, "scratch": str(folder),
                            "result": str(folder / "result.json")}  # fmt: skip
                    command = [sys.executable, str(Path(__file__).resolve()), SCALING_FLAG,
                               json.dumps(spec)]  # fmt: skip
                    # Lightning gives spawned processes cores / processes threads unless told.
                    env = {"OMP_NUM_THREADS": str(setup["threads"])}
                    measurement = run_measured(
                        command, cwd=folder, log_path=folder / "log.txt", env=env
                    )
                    result = json.loads((folder / "result.json").read_text())
                    runs.setdefault((phase, name), []).append((measurement, result))
                    print(f"  {phase}, {name}: {result['samples_per_s']:.1f} samples/s", flush=True)
    facts = at_end(facts)
    headers = ["phase", "setup", "runs", "median samples/s", "samples/s min-max",
               "loader samples/s", "loader / step", "peak RSS MiB (all processes)"]  # fmt: skip
    rows, results = [], {}
    for (phase, name), phase_runs in runs.items():
        rates = [r["samples_per_s"] for _, r in phase_runs]
        loader = statistics.median(r["loader_samples_per_s"] for _, r in phase_runs)
        median = statistics.median(rates)
        peak = max(m.peak_total_rss_mib for m, _ in phase_runs)
        rows.append([phase, name, len(rates), median, value_range(min(rates), max(rates)),
                     loader, loader / median, peak])  # fmt: skip
        results[f"{phase}/{name}"] = {
            "samples_per_s": median,
            "samples_per_s_all": rates,
            "loader_samples_per_s": loader,
            "peak_total_rss_mib": peak,
        }
    print(f"\n## One phase through train_model, global batch {args.batch_size}, "
          f"{args.clips} synthetic clips, last of {args.epochs} epochs\n")  # fmt: skip
    print(describe_machine(facts))
    print()
    print(markdown_table(headers, rows))
    if "1 GPU" not in setups:
        print("\nGPU: skipped (torch sees no CUDA device on this machine)")
    write_json(args.json, {"benchmark": "training-scaling", "environment": facts,
                           "batch_size": args.batch_size, "clips": args.clips,
                           "epochs": args.epochs, "repeats": args.repeats,
                           "gpu": "1 GPU" in setups, "results": results})  # fmt: skip


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
    parser.add_argument(
        "--scaling", action="store_true", help="1 process vs 2 DDP processes, loader, GPU"
    )
    parser.add_argument("--clips", type=int, default=256, help="--scaling: synthetic clips")
    parser.add_argument("--epochs", type=int, default=2, help="--scaling: epochs (last timed)")
    args = parser.parse_args()
    if args.scaling:
        if args.phases == list(PHASES):
            args.phases = ["audio"]
        scaling(args)
        return
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
    elif len(sys.argv) == 3 and sys.argv[1] == SCALING_FLAG:
        run_scaling_child(json.loads(sys.argv[2]))
    else:
        main()
