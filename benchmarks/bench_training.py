"""Benchmark the training step: samples/s of each phase, where the step's time goes (FLOPs, the
share of the machine's measured matmul peak, a profile by operator group), setting variants against
each other in the same run; and, with --scaling, one phase on 1 process vs 2 DDP processes, the
loader's own throughput, and a GPU when there is one.

    python benchmarks/bench_training.py [--phases video audio bimodal baseline] [--steps 20]
        [--warmup 5] [--profile-steps 3] [--batch-size 16] [--repeats 3]
        [--variants configured ...] [--presets default gpu] [--json PATH] [--smoke]
    python benchmarks/bench_training.py --scaling [--phases audio] [--clips 256] [--epochs 2]
        [--batch-size 16] [--repeats 3] [--json PATH] [--smoke]

Each repetition of each (phase, preset, variant) is a whole process (`python
benchmarks/bench_training.py --child SPEC`) that trains the phase exactly as `kedro run` does: its
configuration comes from conf/base/parameters_training.yml through the pipeline's own
``resolve_phase_config`` (with the phase's PHASE_MODALITIES), the spectrogram statistics from the
features pipeline's ``compute_spectrogram_stats``, and the training is the engine's
``train_model``, which the training node calls per fold (model, Lightning module, optimiser,
Trainer and its settings, loaders), for one epoch on synthetic memory-mapped feature stores at
the default feature shapes (audio (1, 64, 300) float16, video (8, 3, 112, 112) uint8): --warmup
+ --steps + --profile-steps training batches of
--batch-size, and one validation batch. A callback times the --steps steps after the warm-up
(samples/s = steps x batch size / their wall time); counts the FLOPs of the last warm-up step
(``FlopCounterMode``: matrix products, convolutions and attention, forward and backward); profiles
the --profile-steps steps after the timed ones by operator group (benchmarks/step_profile.py); and
measures, in the same process, the best FLOP/s of ``torch.mm`` at the model's own matrix shapes in
the step's dtype (the machine's matmul peak for this model, under the same load as the step).

Variants (--variants, see VARIANTS) are settings of training.defaults changed against the
configured ones, each trained by the same code: `configured` is what conf/base says; the others
say what each speed setting changes. Processes run round-robin over phases, presets and variants,
--repeats times, so that drifting load hits them alike; the table gives the median samples/s, its
range, the ratio to the first variant, the FLOPs per sample, the achieved FLOP/s and their share of
the measured peak, the parameter count and the peak memory (RSS of the process; on a GPU the
device's peak allocation). On a machine with a GPU the phases train there (accelerator auto) and
--presets default gpu measures both model presets.

The baseline is the `baseline` phase: one encoder per modality, same width and depth, late fusion,
on both modalities. The ratio shared/separate compares it with the `bimodal` phase (the one shared
encoder, early fusion, the same inputs). No corpus is read: these are throughputs, not results.

--smoke: every phase for 2 steps of batch 4 and 1 repetition with a short peak measurement, in
seconds: the suite's check that the benchmark still runs (tests/benchmarks/test_smoke.py).
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
FEATURES = PROJECT_ROOT / "conf" / "base" / "parameters_features.yml"
CHILD_FLAG = "--child"
SCALING_FLAG = "--scaling-child"
PHASES = ("video", "audio", "bimodal", "baseline")
BASELINE_PHASE, SHARED_PHASE = "baseline", "bimodal"
#: Settings of training.defaults that each variant changes; the first is the reference.
VARIANTS: dict[str, dict[str, Any]] = {
    "configured": {},
    # The step as it was before issue 23: fp32 on a CPU, torch's default (for-loop) AdamW.
    "fp32, for-loop AdamW": {
        "trainer": {"precision": "32-true"},
        "optimiser": {"implementation": "for-loop"},
    },
    "fp32, foreach AdamW": {
        "trainer": {"precision": "32-true"},
        "optimiser": {"implementation": "foreach"},
    },
    "fp32, fused AdamW": {
        "trainer": {"precision": "32-true"},
        "optimiser": {"implementation": "fused"},
    },
    # torch's deterministic algorithms off (conf/base has `warn`: on where they exist).
    "fused AdamW, nondeterministic": {"trainer": {"deterministic": False}},
    # Autocast to bfloat16 (Lightning's bf16-mixed): fast only where the CPU has bf16 instructions.
    # (AdamW foreach: Lightning's mixed precision cannot clip a fused optimiser's gradients.)
    "bf16-mixed, foreach AdamW": {
        "trainer": {"precision": "bf16-mixed"},
        "optimiser": {"implementation": "foreach"},
    },
}
HEADERS = [
    "phase",
    "preset",
    "variant",
    "parameters",
    "runs",
    "median samples/s",
    "samples/s min-max",
    "median step ms",
    "vs first variant",
    "vs baseline",
    "GFLOP/sample",
    "achieved GFLOP/s",
    "matmul peak GFLOP/s",
    "share of peak",
    "peak memory MiB",
]


# ---------------------------------------------------------------- synthetic data, as stored


def synthetic_phase_data(
    phase: str, folder: Path, train_clips: int, val_clips: int
) -> tuple[Any, dict[str, Any], dict[str, Any] | None]:
    """Feature stores of random items at the default feature shapes for ``phase``'s modalities,
    a targets table (one emotion per clip, ``train_clips`` train and ``val_clips`` val clips) and
    the spectrogram statistics as the features pipeline computes them: (targets, stores, stats)."""
    import numpy as np
    import pandas as pd

    from avshared.crema_d import EMOTIONS
    from avshared.features.store import FeatureStore, write_feature_store
    from avshared.pipelines.features.nodes import compute_spectrogram_stats
    from avshared.pipelines.training import PHASE_MODALITIES

    rng = np.random.default_rng(0)
    clips = train_clips + val_clips
    clip_ids = [f"{1001 + i // 6}_DFA_{EMOTIONS[i % 6]}_XX" for i in range(clips)]
    shapes = {"audio": ((1, 64, 300), np.float16), "video": ((8, 3, 112, 112), np.uint8)}
    stores = {}
    for modality in PHASE_MODALITIES[phase]:
        shape, dtype = shapes[modality]
        items = ((c, (rng.random(shape) * 200).astype(dtype)) for c in clip_ids)
        write_feature_store(folder / modality, items)
        stores[modality] = FeatureStore(folder / modality)
    split = ["train"] * train_clips + ["val"] * val_clips
    targets = pd.DataFrame(
        {"clip_id": clip_ids, "split": split, "target": [c[9:12] for c in clip_ids]}
    )
    for emotion in EMOTIONS:
        targets[f"p_{emotion}"] = (targets["target"] == emotion).astype(np.float32)
    normalisation = yaml.safe_load(FEATURES.read_text())["features"]["normalisation"]
    stats = (
        compute_spectrogram_stats(stores["audio"], targets, normalisation)
        if "audio" in stores
        else None
    )
    return targets, stores, stats


def phase_config(
    phase: str, scratch: Path, overrides: dict[str, Any], trainer: dict[str, Any]
) -> dict[str, Any]:
    """The configuration of ``phase``'s first cell (fold 0, the first seed), as the training node
    trains it: the pipeline's resolve_phase_config, from conf/base/parameters_training.yml with
    ``overrides`` merged into training.defaults and the ``trainer`` settings of the measurement."""
    from omegaconf import OmegaConf

    from avshared.pipelines.training import PHASE_MODALITIES
    from avshared.pipelines.training.nodes import resolve_phase_config
    from avshared.training.cells import Cell, cell_config

    training = yaml.safe_load(PARAMETERS.read_text())["training"]
    defaults = OmegaConf.to_container(
        OmegaConf.merge(OmegaConf.create(training["defaults"]), OmegaConf.create(overrides))
    )
    defaults["trainer"] |= {"progress_bar": False, **trainer}
    defaults["checkpoint_dir"] = str(scratch / "checkpoints")
    # No corpus is read: the root only decides the demo/crema-d label, which is not used here.
    config = resolve_phase_config(
        defaults,
        training["seeds"],
        training["phases"][phase],
        str(scratch),
        phase=phase,
        modalities=PHASE_MODALITIES[phase],
    )
    return cell_config(config, Cell(fold=0, seed=0))


def synthetic_phase(
    phase: str,
    scratch: Path,
    overrides: dict[str, Any],
    trainer: dict[str, Any],
    *,
    train_clips: int,
    val_clips: int,
) -> tuple[dict[str, Any], Any, dict[str, Any], dict[str, Any] | None]:
    """A measured child's set-up: ``phase_config`` in ``scratch`` and ``synthetic_phase_data``
    in ``scratch``/stores: (config, targets, stores, stats)."""
    config = phase_config(phase, scratch, overrides, trainer)
    targets, stores, stats = synthetic_phase_data(phase, scratch / "stores", train_clips, val_clips)
    return config, targets, stores, stats


# ---------------------------------------------------------------- the measured child process


def run_child(spec: dict[str, Any]) -> None:
    """Train the spec's phase with train_model for warm-up + timed + profiled steps; write what
    the callback measured (module docstring)."""
    import lightning as L
    import torch
    from step_profile import StepProfile, count_flops, linear_shapes, matmul_peak

    from avshared.training.phase import train_model

    scratch = Path(spec["scratch"])
    batch_size = spec["batch_size"]
    warmup, steps, profiled = spec["warmup"], spec["steps"], spec["profile_steps"]
    config, targets, stores, stats = synthetic_phase(
        spec["phase"],
        scratch,
        {
            **spec["overrides"],
            "model": {**spec["overrides"].get("model", {}), "preset": spec["preset"]},
        },
        {"max_epochs": 1, "min_epochs": 1, "devices": 1},
        train_clips=(warmup + steps + profiled) * batch_size,
        val_clips=batch_size,
    )
    config["data"]["batch_size"] = batch_size

    class Measure(L.Callback):
        """FLOPs of the last warm-up step, wall time of the timed steps, profile of the rest."""

        def __init__(self) -> None:
            self.started = self.ended = 0.0
            self.flops = 0
            self.counter: Any = None
            self.profile = StepProfile(cuda=torch.cuda.is_available())
            self.groups: dict[str, Any] = {}
            self.module: Any = None

        def _sync(self, module: Any) -> None:
            if module.device.type == "cuda":
                torch.cuda.synchronize(module.device)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.module = pl_module
            if batch_idx == warmup - 1:
                self.counter = count_flops()
                self.total = self.counter.__enter__()
            elif batch_idx == warmup:
                self._sync(pl_module)
                if pl_module.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(pl_module.device)
                self.started = time.perf_counter()
            elif batch_idx == warmup + steps and profiled:
                self.profile.start(pl_module)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx == warmup - 1:
                self.counter.__exit__(None, None, None)
                self.flops = self.total()
            elif batch_idx == warmup + steps - 1:
                self._sync(pl_module)
                self.ended = time.perf_counter()
            elif batch_idx == warmup + steps + profiled - 1 and profiled:
                self._sync(pl_module)
                self.groups = self.profile.stop(profiled)

    measure = Measure()
    model, _, summary = train_model(
        targets=targets,
        target_summary={},
        config=config,
        log_mel_spectrograms=stores.get("audio"),
        spectrogram_stats=stats,
        face_frames=stores.get("video"),
        extra_callbacks=[measure],
    )
    timed_s = measure.ended - measure.started
    device = measure.module.device
    precision = summary["devices"]["precision"]
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float32
    if precision.startswith("16"):
        dtype = torch.float16
    peak = matmul_peak(
        linear_shapes(model, batch_size), device, dtype, seconds_per_shape=spec["peak_seconds"]
    )
    step_s = timed_s / steps
    result = {
        "samples_per_s": steps * batch_size / timed_s,
        "step_s": step_s,
        "flops_per_sample": measure.flops / batch_size,
        "achieved_flop_per_s": measure.flops / step_s,
        "matmul_peak": peak,
        "share_of_peak": measure.flops / step_s / peak["flop_per_s"],
        "profile_ms_per_step": measure.groups,
        "param_count": summary["param_count"],
        "model_kind": summary["model_kind"],
        "modalities": summary["modalities"],
        "model_config": summary["model_config"],
        "devices": summary["devices"],
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "device_peak_mib": (
            torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        ),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    Path(spec["result"]).write_text(json.dumps(result))


# ---------------------------------------------------------------- scaling: the training node


def run_scaling_child(spec: dict[str, Any]) -> None:
    """Train ``spec["phase"]`` with avshared's train_model on a synthetic memory-mapped store at
    the default feature shapes; write the last epoch's training samples/s (all processes) and the
    loader's own samples/s (reading + collating + device standardisation, no model)."""
    import torch

    from avshared.training.data import ClipDataModule
    from avshared.training.module import EmotionClassifierModule
    from avshared.training.phase import train_model

    torch.set_num_threads(spec["threads"])
    val = spec["clips"] // 8
    config, targets, stores, stats = synthetic_phase(
        spec["phase"],
        Path(spec["scratch"]),
        {"data": {"batch_size": spec["batch_size"], "num_workers": 0}},
        {
            "accelerator": spec["accelerator"],
            "devices": spec["devices"],
            "max_epochs": spec["epochs"],
            "min_epochs": spec["epochs"],
        },
        train_clips=spec["clips"] - val,
        val_clips=val,
    )
    data = ClipDataModule(
        targets, audio=stores.get("audio"), video=stores.get("video"),
        batch_size=spec["batch_size"], seed=0,
    )  # fmt: skip
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


def train(key: tuple[str, str, str], args: argparse.Namespace, folder: Path) -> tuple:
    """One whole training process: (its measurement, what it reported)."""
    phase, preset, variant = key
    folder.mkdir(parents=True)
    spec = {
        "phase": phase,
        "preset": preset,
        "overrides": VARIANTS[variant],
        "steps": args.steps,
        "warmup": args.warmup,
        "profile_steps": args.profile_steps,
        "batch_size": args.batch_size,
        "peak_seconds": args.peak_seconds,
        "scratch": str(folder),
        "result": str(folder / "result.json"),
    }
    command = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, json.dumps(spec)]
    measurement = run_measured(command, cwd=folder, log_path=folder / "log.txt")
    return measurement, json.loads((folder / "result.json").read_text())


def summarise_runs(runs: list[tuple[Measurement, dict[str, Any]]]) -> dict[str, Any]:
    """Medians over the repetitions of one (phase, preset, variant)."""
    report = runs[-1][1]
    rates = [r["samples_per_s"] for _, r in runs]

    def median(key: str) -> float:
        return statistics.median(r[key] for _, r in runs)

    peaks = [r["matmul_peak"]["flop_per_s"] for _, r in runs]
    device_peaks = [r["device_peak_mib"] for _, r in runs if r["device_peak_mib"] is not None]
    return {
        **{
            k: report[k]
            for k in (
                "model_kind",
                "modalities",
                "param_count",
                "model_config",
                "devices",
                "device_name",
                "torch_threads",
            )
        },
        "samples_per_s": statistics.median(rates),
        "samples_per_s_min": min(rates),
        "samples_per_s_max": max(rates),
        "step_s": median("step_s"),
        "flops_per_sample": report["flops_per_sample"],
        "achieved_flop_per_s": median("achieved_flop_per_s"),
        "matmul_peak_flop_per_s": statistics.median(peaks),
        "matmul_peak_dtype": report["matmul_peak"]["dtype"],
        "share_of_peak": median("share_of_peak"),
        "profile_ms_per_step": report["profile_ms_per_step"],
        "peak_rss_mib": max(m.peak_rss_mib for m, _ in runs),
        "device_peak_mib": max(device_peaks) if device_peaks else None,
        "runs": [
            {**vars(m), **{k: r[k] for k in ("samples_per_s", "step_s", "share_of_peak")}}
            for m, r in runs
        ],
    }


def profile_table(results: dict[str, dict[str, Any]]) -> str:
    """Per phase, preset and variant: ms per step by operator group (forward + backward)."""
    from step_profile import GROUPS

    keys = [k for k, r in results.items() if r["profile_ms_per_step"]]
    rows = []
    for group in GROUPS:
        row = [group]
        for key in keys:
            times = results[key]["profile_ms_per_step"].get(group)
            total = sum(g["total"] for g in results[key]["profile_ms_per_step"].values())
            row.append(
                f"{times['forward']:.1f} + {times['backward']:.1f} ({times['total'] / total:.0%})"
                if times
                else "-"
            )
        rows.append(row)
    totals = ["total"] + [
        f"{sum(g['total'] for g in results[k]['profile_ms_per_step'].values()):.1f}" for k in keys
    ]
    return markdown_table(["operator group", *keys], [*rows, totals])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--phases", nargs="+", choices=PHASES, default=list(PHASES), help="phases to time"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument(
        "--profile-steps", type=int, default=3, help="profiled steps after them (0: none)"
    )
    batch_size = yaml.safe_load(PARAMETERS.read_text())["training"]["defaults"]["data"]
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(batch_size["batch_size"]),
        help="samples per step (default: training.defaults.data.batch_size)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per phase")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        help="settings to compare (VARIANTS; the first is the reference; default: all, or with "
        "--smoke the first)",
    )
    parser.add_argument(
        "--presets", nargs="+", default=["default"], help="model presets (e.g. default gpu)"
    )
    parser.add_argument(
        "--peak-seconds", type=float, default=0.5, help="time per shape of the matmul peak"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--scaling", action="store_true", help="1 process vs 2 DDP processes, loader, GPU"
    )
    parser.add_argument("--clips", type=int, default=256, help="--scaling: synthetic clips")
    parser.add_argument("--epochs", type=int, default=2, help="--scaling: epochs (last timed)")
    parser.add_argument(
        "--smoke", action="store_true", help="a few steps, one repetition: does it still run"
    )
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.warmup, args.profile_steps, args.repeats = 2, 1, 1, 1
        args.batch_size, args.peak_seconds, args.clips, args.epochs = 4, 0.02, 24, 1
    args.variants = args.variants or list(VARIANTS)[: 1 if args.smoke else None]
    if args.scaling:
        if args.phases == list(PHASES):
            args.phases = ["audio"]
        scaling(args)
        return
    if args.steps < 1 or args.warmup < 1 or args.profile_steps < 0:
        parser.error("--steps and --warmup must be at least 1, --profile-steps at least 0")
    facts = environment()

    keys = [(p, s, v) for p in args.phases for s in args.presets for v in args.variants]
    runs: dict[tuple[str, str, str], list] = {key: [] for key in keys}
    with tempfile.TemporaryDirectory(prefix="bench_training_") as scratch:
        for repeat in range(args.repeats):
            for key in keys:  # round-robin, so drifting load hits every configuration alike
                folder = Path(scratch) / f"{'-'.join(key).replace(' ', '_')}-{repeat}"
                runs[key].append(train(key, args, folder))
                print(f"  {', '.join(key)}: {runs[key][-1][1]['samples_per_s']:.1f} samples/s",
                      flush=True)  # fmt: skip

    facts = at_end(facts)
    results = {" / ".join(key): summarise_runs(key_runs) for key, key_runs in runs.items()}
    rows = []
    for (phase, preset, variant), key_runs in runs.items():
        result = results[f"{phase} / {preset} / {variant}"]
        first = results[f"{phase} / {preset} / {args.variants[0]}"]
        baseline = results.get(f"{BASELINE_PHASE} / {preset} / {variant}")
        memory = result["device_peak_mib"] or result["peak_rss_mib"]
        rows.append(
            [f"{phase} (baseline)" if phase == BASELINE_PHASE else phase, preset, variant,
             result["param_count"], len(key_runs), result["samples_per_s"],
             value_range(result["samples_per_s_min"], result["samples_per_s_max"]),
             1000 * result["step_s"], result["samples_per_s"] / first["samples_per_s"],
             result["samples_per_s"] / baseline["samples_per_s"] if baseline else "-",
             result["flops_per_sample"] / 1e9, result["achieved_flop_per_s"] / 1e9,
             result["matmul_peak_flop_per_s"] / 1e9, f"{result['share_of_peak']:.0%}", memory]
        )  # fmt: skip

    some = next(iter(results.values()))
    where = some["device_name"] if some["device_name"] != "cpu" else "the CPU"
    memory = "device peak allocation" if some["device_peak_mib"] else "peak RSS of the process"
    print(
        f"\n## Training step on {where}, train_model on synthetic stores, batch {args.batch_size}\n"
    )
    print(
        describe_machine(facts)
        + f", torch {some['torch_threads']} threads; {args.warmup} warm-up + {args.steps} timed "
        f"steps per run, {args.repeats} runs each; FLOPs of one step (forward + backward) per "
        f"sample; matmul peak: best torch.mm at the model's shapes in the step's dtype "
        f"({some['matmul_peak_dtype']} for the first row), same process; memory: {memory}"
    )
    print()
    print(markdown_table(HEADERS, rows))
    if args.profile_steps:
        print(f"\n### ms per step by operator group, forward + backward (share), "
              f"{args.profile_steps} profiled steps of the last run\n")  # fmt: skip
        print(profile_table(results))
    ratio = None
    if args.variants and all(f"{p} / default / {args.variants[0]}" in results
                             for p in (BASELINE_PHASE, SHARED_PHASE)):  # fmt: skip
        shared = results[f"{SHARED_PHASE} / default / {args.variants[0]}"]
        baseline = results[f"{BASELINE_PHASE} / default / {args.variants[0]}"]
        ratio = {
            "samples_per_s": shared["samples_per_s"] / baseline["samples_per_s"],
            "param_count": shared["param_count"] / baseline["param_count"],
        }
        print(
            f"\nshared/separate ({SHARED_PHASE} / {BASELINE_PHASE}, {args.variants[0]}): samples/s "
            f"{ratio['samples_per_s']:.2f}x, parameters {ratio['param_count']:.2f}x"
        )
    write_json(
        args.json,
        {
            "benchmark": "training",
            "inputs": "synthetic feature stores at the default feature shapes (no corpus)",
            "batch_size": args.batch_size,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "profile_steps": args.profile_steps,
            "repeats": args.repeats,
            "variants": {name: VARIANTS[name] for name in args.variants},
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
