"""Benchmark AdamW's implementations on a phase's model: ms per optimiser step, for-loop vs foreach
vs fused, interleaved in one process.

    python benchmarks/bench_optimiser.py [--phase bimodal] [--preset default] [--rounds 30]
        [--json PATH] [--smoke]

The model is built as the training node builds it (avshared.models.build_model with the phase's
kind, modalities and preset); one AdamW per implementation (optimiser.implementation: the module's
own choice of keyword, EmotionClassifierModule's parameter groups left aside) over a copy of it,
with random gradients that stay in place. Each round steps every optimiser once, in turn, so that a
busy machine's pauses hit all alike; the table gives the median and the best step time and the
ratio to for-loop (torch's default on a CPU). Only the optimiser step is timed: its share of a
whole training step is in bench_training.py's profile. --smoke: 3 rounds, the suite's check.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from measure import at_end, describe_machine, environment, markdown_table, write_json

from avshared.models import ModelConfig, build_model, count_parameters
from avshared.pipelines.training import PHASE_MODALITIES

KEYWORDS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", default="bimodal", choices=["video", "audio", "bimodal"])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--smoke", action="store_true", help="3 rounds: does it still run")
    args = parser.parse_args()
    if args.smoke:
        args.rounds = 3
    facts = environment()
    optimisers = {}
    for name, keywords in KEYWORDS.items():
        torch.manual_seed(0)
        model = build_model("shared", PHASE_MODALITIES[args.phase], ModelConfig.preset(args.preset))
        for parameter in model.parameters():
            parameter.grad = torch.randn_like(parameter)
        optimisers[name] = torch.optim.AdamW(
            model.parameters(), lr=5e-4, weight_decay=0.05, **keywords
        )
    times: dict[str, list[float]] = {name: [] for name in optimisers}
    for _ in range(args.rounds):
        for name, optimiser in optimisers.items():
            started = time.perf_counter()
            optimiser.step()
            times[name].append(time.perf_counter() - started)
    facts = at_end(facts)
    reference = statistics.median(times["for-loop"])
    rows, results = [], {}
    for name, values in times.items():
        median = statistics.median(values)
        rows.append([name, 1000 * median, 1000 * min(values), reference / median])
        results[name] = {"median_s": median, "best_s": min(values)}
    print(
        f"\n## AdamW step, {args.phase} model ({count_parameters(model):,} parameters, "
        f"{args.preset} preset), {args.rounds} interleaved rounds\n"
    )
    print(describe_machine(facts) + f", torch {torch.get_num_threads()} threads")
    print()
    print(markdown_table(["implementation", "median ms", "best ms", "speed-up (median)"], rows))
    write_json(
        args.json,
        {"benchmark": "optimiser", "phase": args.phase, "preset": args.preset,
         "rounds": args.rounds, "environment": facts, "results": results},
    )  # fmt: skip


if __name__ == "__main__":
    main()
