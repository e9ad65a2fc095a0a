"""Benchmark torch.compile on a phase's training: does its compile time pay for itself within a
default run? Eager against compiled, whole processes, a cold compile cache each run.

    python benchmarks/bench_compile.py [--phase bimodal] [--steps 30] [--warmup 3] [--repeats 3]
        [--run-steps N] [--json PATH] [--smoke]

Each run is a child process that builds the phase's model as the training node does (the first
cell's configuration from conf/base through the pipeline's `resolve_phase_config`, sized by
`sized_model_config` to stores of the default feature shapes), compiles it or not
(`nn.Module.compile`, inductor, which keeps the state_dict's keys), and meets every graph a training
run meets:

- training steps at the configured batch (forward, soft cross-entropy, backward, AdamW as
  configured): the first `--warmup` (the compile, and a recompile inductor may make on the second
  call), then `--steps` timed ones;
- one training step at the smaller last batch of an epoch (a new shape: another compile);
- the validation forward passes (evaluation mode: another graph) with every modality and with each
  modality alone (the per-sense validation accuracies), at the batch and at the last batch.

Everything but the timed steps counts as the run's start-up: compiled minus eager is the compile's
cost. The timed steps give each variant's samples/s, and the saving per step. `--run-steps` is the
number of training steps of a default demo run (max_epochs x training batches of the demo
corpus's 551 training clips: 15 x 35 = 525), against which the report says whether the compile is
repaid: cost / saving per step = the steps it takes. Each compiled child gets its own empty
TORCHINDUCTOR_CACHE_DIR, as a user's first run has (inductor's caches would make a second run's
compile shorter: `--warm-cache` measures that case by compiling once before the timed repetitions).

--smoke: the tiny preset, 2 timed steps, 1 repetition: the suite's check that it still runs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_training import phase_config, synthetic_phase_data
from measure import (
    PROJECT_ROOT,
    at_end,
    describe_machine,
    environment,
    markdown_table,
    run_measured,
    write_json,
)

CHILD_FLAG = "--child"
VARIANTS = ("eager", "compiled")
#: The demo corpus's training clips (docs/results.md: 551 / 119 / 116 clips) and validation clips.
DEMO_TRAIN_CLIPS, DEMO_VAL_CLIPS = 551, 119


def phase_settings(phase: str, preset: str | None, scratch: Path) -> dict[str, Any]:
    """``phase``'s first cell's configuration as the training node gets it (bench_training's
    ``phase_config``: conf/base through the pipeline's ``resolve_phase_config``), with ``preset``
    instead of the configured model preset when given."""
    overrides = {"model": {"preset": preset}} if preset else {}
    return phase_config(phase, scratch, overrides, {"devices": 1})


def run_child(spec: dict[str, Any]) -> None:
    """One run (module docstring): the start-up's graphs, then the timed steps; writes JSON."""
    import torch
    import torch.nn.functional as F
    from bench_optimiser import KEYWORDS as ADAMW_KEYWORDS

    from avshared.models import build_model
    from avshared.pipelines.training import PHASE_MODALITIES
    from avshared.training.module import checked_adamw_implementation
    from avshared.training.phase import sized_model_config

    scratch = Path(spec["scratch"])
    settings = phase_settings(spec["phase"], spec["preset"], scratch)
    # Two stored clips give the feature shapes the model is sized to, as in training.
    _, stores, _ = synthetic_phase_data(spec["phase"], scratch / "stores", 1, 1)
    config = sized_model_config(settings, stores)
    modalities = PHASE_MODALITIES[spec["phase"]]
    torch.manual_seed(0)
    model = build_model(settings["model"]["kind"], modalities, config)
    if spec["variant"] == "compiled":
        model.compile()
    implementation = checked_adamw_implementation(settings["optimiser"]["implementation"])
    optimiser = torch.optim.AdamW(
        model.parameters(),
        lr=settings["optimiser"]["learning_rate"],
        weight_decay=settings["optimiser"]["weight_decay"],
        **ADAMW_KEYWORDS[implementation],
    )

    def batch(size: int) -> dict[str, Any]:
        generator = torch.Generator().manual_seed(size)
        inputs = {
            "audio": torch.randn(size, 1, config.n_mels, config.audio_frames, generator=generator),
            "video": torch.randint(
                0, 256, (size, config.video_frames, 3, config.image_size, config.image_size),
                generator=generator, dtype=torch.uint8,
            ),
        }  # fmt: skip
        target = F.one_hot(torch.randint(0, 6, (size,), generator=generator), 6).float()
        return {"inputs": {m: inputs[m] for m in modalities}, "target": target}

    def train_step(data: dict[str, Any]) -> float:
        started = time.perf_counter()
        model.train()
        loss = F.cross_entropy(model(**data["inputs"]), data["target"])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return time.perf_counter() - started

    @torch.no_grad()
    def validate(data: dict[str, Any], senses: tuple[str, ...]) -> float:
        started = time.perf_counter()
        model.eval()
        model(**{m: data["inputs"][m] for m in senses})
        return time.perf_counter() - started

    size, steps = spec["batch_size"], spec["steps"]
    last_train = DEMO_TRAIN_CLIPS % size or size
    last_val = DEMO_VAL_CLIPS % size or size
    full, small_train, small_val = batch(size), batch(last_train), batch(last_val)
    # The first steps: the compile, and a recompile that inductor may make on the second call.
    startup = {"first training steps": sum(train_step(full) for _ in range(spec["warmup"]))}
    timed = [train_step(full) for _ in range(steps)]
    startup["last training batch"] = train_step(small_train)
    sense_sets = [tuple(modalities)] + ([(m,) for m in modalities] if len(modalities) > 1 else [])
    for senses in sense_sets:
        name = "+".join(senses)
        startup[f"validation {name}"] = validate(full, senses)
        startup[f"validation {name}, last batch"] = validate(small_val, senses)
    step_s = statistics.median(timed)
    result = {
        "startup_s": startup,
        "step_s": step_s,
        "samples_per_s": size / step_s,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    Path(spec["result"]).write_text(json.dumps(result))


def measure(variant: str, args: argparse.Namespace, folder: Path, run: int) -> dict[str, Any]:
    """One whole-process child run of ``variant``; its result, wall time and memory."""
    spec = {
        "phase": args.phase,
        "preset": args.preset,
        "variant": variant,
        "steps": args.steps,
        "warmup": args.warmup,
        "batch_size": args.batch_size,
        "result": str(folder / f"{variant}-{run}.json"),
        "scratch": str(folder / f"{variant}-{run}"),
    }
    cache = folder / ("inductor-warm" if args.warm_cache else f"inductor-{variant}-{run}")
    measurement = run_measured(
        [sys.executable, __file__, CHILD_FLAG, json.dumps(spec)],
        cwd=PROJECT_ROOT,
        log_path=folder / f"{variant}-{run}.log",
        env={"TORCHINDUCTOR_CACHE_DIR": str(cache)},
    )
    result = json.loads(Path(spec["result"]).read_text())
    return {**result, "wall_s": measurement.wall_s, "peak_rss_mib": measurement.peak_rss_mib}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        run_child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", default="bimodal", choices=["video", "audio", "bimodal"])
    parser.add_argument("--preset", help="a model preset instead of the configured one")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (start-up)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant")
    parser.add_argument("--run-steps", type=int, help="training steps of a run (default: demo)")
    parser.add_argument("--warm-cache", action="store_true", help="compile once before: warm")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--smoke", action="store_true", help="tiny preset, 2 steps, 1 run")
    args = parser.parse_args()
    if args.smoke:
        args.preset, args.steps, args.repeats = "tiny", 2, 1
    facts = environment()
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench_compile-") as scratch:
        folder = Path(scratch)
        settings = phase_settings(args.phase, args.preset, folder / "settings")
        args.batch_size = settings["data"]["batch_size"]
        run_steps = args.run_steps or settings["trainer"]["max_epochs"] * math.ceil(
            DEMO_TRAIN_CLIPS / args.batch_size
        )
        if args.warm_cache:
            measure("compiled", args, folder, -1)
        for run in range(args.repeats):  # round-robin: drifting load hits both alike
            for variant in VARIANTS:
                runs[variant].append(measure(variant, args, folder, run))
    facts = at_end(facts)
    summary = {}
    for variant, results in runs.items():
        summary[variant] = {
            "startup_s": statistics.median(sum(r["startup_s"].values()) for r in results),
            "step_s": statistics.median(r["step_s"] for r in results),
            "samples_per_s": statistics.median(r["samples_per_s"] for r in results),
            "wall_s": statistics.median(r["wall_s"] for r in results),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
        }
    eager, compiled = summary["eager"], summary["compiled"]
    cost_s = compiled["startup_s"] - eager["startup_s"]
    saving_s = eager["step_s"] - compiled["step_s"]
    repaid_after = math.ceil(cost_s / saving_s) if saving_s > 0 else None
    net_s = run_steps * saving_s - cost_s
    print(
        f"\n## torch.compile, {args.phase} phase ({settings['model']['preset']} "
        f"preset, batch {args.batch_size}), {args.repeats} run(s) per variant, "
        f"{args.steps} timed steps each, {'warm' if args.warm_cache else 'cold'} compile cache\n"
    )
    print(describe_machine(facts) + f", torch {runs['eager'][0]['torch_threads']} threads\n")
    rows = [
        [variant, s["samples_per_s"], 1000 * s["step_s"], s["startup_s"], s["wall_s"],
         s["peak_rss_mib"]]
        for variant, s in summary.items()
    ]  # fmt: skip
    headers = ["variant", "median samples/s", "ms per step", "start-up s", "wall s", "peak RSS MiB"]
    print(markdown_table(headers, rows))
    print(
        f"\ncompile cost {cost_s:.1f} s; saving {1000 * saving_s:.1f} ms per training step "
        f"({eager['step_s'] / compiled['step_s']:.2f}x); "
        + (f"repaid after {repaid_after} steps" if repaid_after else "never repaid")
        + f"; over a run of {run_steps} training steps: {net_s:+.0f} s "
        + ("saved" if net_s > 0 else "lost")
    )
    print("start-up per graph, seconds (median): " + ", ".join(
        f"{name}: {statistics.median(r['startup_s'][name] for r in runs['eager']):.2f} eager / "
        f"{statistics.median(r['startup_s'][name] for r in runs['compiled']):.2f} compiled"
        for name in runs["eager"][0]["startup_s"]
    ))  # fmt: skip
    write_json(
        args.json,
        {
            "benchmark": "compile",
            "phase": args.phase,
            "environment": facts,
            "run_steps": run_steps,
            "results": summary,
            "compile_cost_s": cost_s,
            "saving_per_step_s": saving_s,
            "repaid_after_steps": repaid_after,
            "net_saving_over_run_s": net_s,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
