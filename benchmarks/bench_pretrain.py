"""Benchmark pretraining by masked autoencoding: samples/s and peak memory of each autoencoder
variant, against the supervised training step of the bimodal phase measured in the same run.

    python benchmarks/bench_pretrain.py [--variants ...] [--clips 256] [--epochs 2]
        [--batch-size 16] [--repeats 3] [--json PATH] [--smoke]

Each repetition of each variant is a whole process (`python benchmarks/bench_pretrain.py --child
SPEC`) that pretrains exactly as `kedro run --pipelines=pretrain` does: the configuration comes
from conf/base (parameters_training.yml's defaults with parameters_pretrain.yml merged in, by the
engine's ``pretrain_config``; the variant changes only what it names), and the training is the
engine's ``pretrain_encoders`` (autoencoder, Lightning module, optimiser, Trainer and its devices,
loader), for --epochs epochs on --clips synthetic memory-mapped clips at the default feature shapes
(audio (1, 64, 300) float16, video (8, 3, 112, 112) uint8; bench_training.py's stores). The rate
is the last epoch's: clips over the wall time of its training steps (every autoencoder of the
variant together: the separate kind trains one per sense, so a clip costs both). The baseline is
the bimodal phase's supervised training step (``train_model``, one epoch of the same clips, its
last epoch's rate): what one epoch of fine-tuning costs against one epoch of pretraining. The FLOPs
per clip are counted on one forward and backward pass of the variant's autoencoders
(``FlopCounterMode``; matrix products, convolutions, attention), the same on any device: the
GPU estimate of docs/architecture.md ("Pretraining") divides them by a GPU's achieved FLOP/s.

Processes run round-robin over the variants, --repeats times, so that drifting load hits them
alike; the table gives the median samples/s, its range, the ratio to the baseline, GFLOP per clip
and the peak memory (RSS of the process, wait4 and /proc). No corpus is read: these are
throughputs, not results. On a machine with a GPU the variants train there (accelerator auto).

--smoke: 16 clips, batch 4, one epoch, one repetition (the rate then includes the first steps'
overhead): the suite's check that the benchmark still runs (tests/benchmarks/test_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from bench_training import CHILD_FLAG, synthetic_phase
from bench_training import PARAMETERS as TRAINING
from measure import (
    PROJECT_ROOT,
    at_end,
    describe_machine,
    environment,
    markdown_table,
    run_measured,
    value_range,
    write_json,
)

PRETRAIN = PROJECT_ROOT / "conf" / "base" / "parameters_pretrain.yml"
BASELINE = "supervised bimodal step (baseline)"
#: Changes to the pretrain parameters that each variant makes; None: the baseline.
VARIANTS: dict[str, dict[str, Any] | None] = {
    BASELINE: None,
    "shared autoencoder": {"model_kinds": ["shared"]},
    "shared autoencoder + contrastive": {
        "model_kinds": ["shared"],
        "contrastive": {"weight": 0.5, "temperature": 0.05},
    },
    "separate autoencoders (audio + video)": {"model_kinds": ["separate"]},
}
HEADERS = [
    "variant",
    "runs",
    "median clips/s",
    "clips/s min-max",
    "vs baseline",
    "GFLOP/clip",
    "peak RSS MiB",
]


def _count_flops(model: Any, batch: dict[str, Any], loss: Any) -> float:
    """FLOPs of one forward and backward pass of ``loss(model, batch)``, per clip."""
    from step_profile import count_flops

    with count_flops() as total:
        loss(model, batch).backward()
    return total() / len(next(iter(batch.values())))


def run_child(spec: dict[str, Any]) -> None:
    """Train the spec's variant on synthetic stores; write its last epoch's clips/s and FLOPs."""
    import numpy as np
    import torch

    from avshared.models import DecoderConfig, MaskedAutoencoder, build_model
    from avshared.training.module import soft_cross_entropy
    from avshared.training.phase import sized_model_config, train_model
    from avshared.training.pretrain import AUTOENCODERS, pretrain_config, pretrain_encoders

    scratch = Path(spec["scratch"])
    trainer = {"max_epochs": spec["epochs"], "min_epochs": spec["epochs"], "devices": 1}
    # One batch of validation clips, which the supervised step needs and pretraining leaves out.
    config, targets, stores, stats = synthetic_phase(
        "bimodal",
        scratch,
        {"data": {"batch_size": spec["batch_size"]}},
        trainer,
        train_clips=spec["clips"],
        val_clips=spec["batch_size"],
    )
    model_config = sized_model_config(config, stores)
    # Two clips, for counting FLOPs.
    batch = {m: torch.from_numpy(np.stack([store[0], store[1]])) for m, store in stores.items()}
    batch["audio"] = batch["audio"].float()
    if spec["variant"] is None:
        _, history, _ = train_model(
            targets=targets,
            target_summary={},
            config=config,
            log_mel_spectrograms=stores["audio"],
            spectrogram_stats=stats,
            face_frames=stores["video"],
        )
        rate = spec["clips"] / float(history.iloc[-1]["train_seconds"])
        target = torch.eye(6)[:2]
        flops = _count_flops(
            build_model("shared", "bimodal", model_config).train(),
            batch,
            lambda model, b: soft_cross_entropy(model(**b), target),
        )
    else:
        pretrain = yaml.safe_load(PRETRAIN.read_text())["pretrain"] | spec["variant"]
        pretrain["training"] = pretrain["training"] | {
            "trainer": trainer,
            "data": {"batch_size": spec["batch_size"]},
            "checkpoint_dir": str(scratch / "checkpoints"),
        }
        defaults = yaml.safe_load(TRAINING.read_text())["training"]["defaults"]
        defaults["trainer"] |= {"progress_bar": False}
        settings = pretrain_config(defaults, pretrain, str(scratch))
        split = targets.loc[:, ["clip_id", "split"]].assign(
            actor=[int(c[:4]) for c in targets["clip_id"]]
        )
        _, history, _, _ = pretrain_encoders(
            split=split,
            config=settings,
            log_mel_spectrograms=stores["audio"],
            face_frames=stores["video"],
            spectrogram_stats=stats,
        )
        last_epoch = history.loc[history["epoch"] == history["epoch"].max()]
        rate = spec["clips"] / float(last_epoch["train_seconds"].sum())
        flops = 0.0
        for kind in settings["model_kinds"]:
            for senses in AUTOENCODERS[kind].values():
                autoencoder = MaskedAutoencoder(
                    senses,
                    model_config,
                    DecoderConfig(**settings["decoder"]),
                    mask_ratio=settings["mask_ratio"],
                    contrastive_weight=settings["contrastive"]["weight"],
                )
                flops += _count_flops(
                    autoencoder, {m: batch[m] for m in senses}, lambda model, b: model(**b).loss
                )
    Path(spec["result"]).write_text(
        json.dumps(
            {"clips_per_s": rate, "flops_per_clip": flops, "torch_version": torch.__version__}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--clips", type=int, default=256, help="synthetic training clips")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (the last timed)")
    batch_size = yaml.safe_load(TRAINING.read_text())["training"]["defaults"]["data"]["batch_size"]
    parser.add_argument("--batch-size", type=int, default=int(batch_size))
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="16 clips, 1 epoch, 1 repetition")
    args = parser.parse_args()
    if args.smoke:
        args.clips, args.epochs, args.batch_size, args.repeats = 16, 1, 4, 1
    if BASELINE not in args.variants:
        args.variants.insert(0, BASELINE)  # the baseline is always measured in the same run
    facts = environment()
    runs: dict[str, list[tuple[Any, dict[str, Any]]]] = {name: [] for name in args.variants}
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as scratch:
        for repeat in range(args.repeats):
            for index, name in enumerate(args.variants):
                folder = Path(scratch) / f"{index}-{repeat}"
                folder.mkdir()
                spec = {"variant": VARIANTS[name], "clips": args.clips, "epochs": args.epochs,
                        "batch_size": args.batch_size, "scratch": str(folder),
                        "result": str(folder / "result.json")}  # fmt: skip
                command = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG,
                           json.dumps(spec)]  # fmt: skip
                measurement = run_measured(command, cwd=folder, log_path=folder / "log.txt")
                result = json.loads((folder / "result.json").read_text())
                runs[name].append((measurement, result))
                print(f"  {name}: {result['clips_per_s']:.1f} clips/s", flush=True)
    facts = at_end(facts)
    baseline = statistics.median(r["clips_per_s"] for _, r in runs[BASELINE])
    rows, results = [], {}
    for name, variant_runs in runs.items():
        rates = [r["clips_per_s"] for _, r in variant_runs]
        median = statistics.median(rates)
        flops = variant_runs[-1][1]["flops_per_clip"]
        peak = max(m.peak_rss_mib for m, _ in variant_runs)
        rows.append([name, len(rates), median, value_range(min(rates), max(rates)),
                     median / baseline, flops / 1e9, peak])  # fmt: skip
        results[name] = {
            "clips_per_s": median,
            "clips_per_s_all": rates,
            "vs_baseline": median / baseline,
            "flops_per_clip": flops,
            "peak_rss_mib": peak,
            "runs": [vars(m) for m, _ in variant_runs],
        }
    print(f"\n## Pretraining, {args.clips} synthetic clips, batch {args.batch_size}, "
          f"last of {args.epochs} epochs, default preset\n")  # fmt: skip
    print(describe_machine(facts))
    print()
    print(markdown_table(HEADERS, rows))
    write_json(
        args.json,
        {"benchmark": "pretrain", "environment": facts, "clips": args.clips,
         "epochs": args.epochs, "batch_size": args.batch_size, "repeats": args.repeats,
         "results": results},
    )  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        run_child(json.loads(sys.argv[2]))
    else:
        main()
