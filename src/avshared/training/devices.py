"""Where and how a phase trains: accelerator, devices, nodes, strategy, precision and loader
settings, resolved from ``training.defaults.trainer`` and ``training.defaults.data``.

Launch design (docs/architecture.md, "Scaling out"): on one machine the training node starts its
DDP processes itself (``ddp_spawn``), so the Kedro process that called it stays the only one that
loads and saves catalog datasets. On several machines a cluster launcher (torchrun, SLURM's srun)
starts one ``kedro run`` per process; Lightning detects it (``TorchElasticEnvironment``,
``SLURMEnvironment``) and the processes join one DDP group (``ddp``), and only global rank 0
saves datasets and logs (avshared.hooks.tracking).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from lightning.pytorch.strategies import DDPStrategy, Strategy

from avshared.training.data import LoaderSettings

#: Strategies this project supports; ``auto`` picks one of the others (or none for one device).
STRATEGIES: tuple[str, ...] = ("auto", "ddp_spawn", "ddp")
ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "gpu", "cuda")
#: Loader worker processes that ``num_workers: auto`` never exceeds per training process.
MAX_AUTO_WORKERS = 8


def launched_by_cluster() -> bool:
    """Whether torchrun or SLURM's srun started this process as one rank of several."""
    slurm = SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1
    return TorchElasticEnvironment.detect() or slurm


def cluster_environment() -> ClusterEnvironment | None:
    """Lightning's view of the launcher that started this process as one of several (its rank,
    world size and main address and port), or None without one."""
    if not launched_by_cluster():
        return None
    return TorchElasticEnvironment() if TorchElasticEnvironment.detect() else SLURMEnvironment()


def resolve_accelerator(setting: str) -> str:
    """``cpu`` or ``gpu``: ``auto`` takes a GPU when torch sees one."""
    if setting == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if setting in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"trainer.accelerator is {setting!r} but torch sees no GPU "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use accelerator "
            "auto or cpu, or check the driver with nvidia-smi"
        )
    return "gpu" if setting == "cuda" else setting


def available_devices(accelerator: str) -> tuple[int, str]:
    """How many devices of ``accelerator`` this machine has, and a description of them."""
    if accelerator == "gpu":
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return len(names), ", ".join(f"cuda:{i} {name}" for i, name in enumerate(names))
    cores = os.cpu_count() or 1
    return cores, f"{cores} CPU cores"


def resolve_devices(setting: int | str, accelerator: str) -> int:
    """Devices per node: ``auto`` is every GPU, or one process on a CPU."""
    count, description = available_devices(accelerator)
    if setting == "auto":
        return count if accelerator == "gpu" else 1
    if setting > count:
        raise ValueError(
            f"trainer.devices is {setting} but this machine has {count} {accelerator} "
            f"device(s): {description}; set training.defaults.trainer.devices to at most {count}"
        )
    return setting


def resolve_precision(setting: str, accelerator: str) -> str:
    """``auto``: bf16-mixed on a GPU that supports it, else 16-mixed; 32-true on a CPU."""
    if setting != "auto":
        return setting
    if accelerator == "gpu":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def resolve_strategy(
    setting: str, accelerator: str, processes: int, *, find_unused_parameters: bool = False
) -> Strategy | str:
    """The Lightning strategy for ``processes`` processes in all (devices x nodes).
    ``find_unused_parameters`` for a training strategy whose steps may leave some parameters
    without a gradient (DDP would otherwise wait for them)."""
    external = launched_by_cluster()
    if setting == "ddp" and not external:
        raise ValueError(
            "trainer.strategy ddp joins processes that torchrun or srun started (one `kedro run` "
            "per process), and none did; use strategy ddp_spawn (or auto) to train on several "
            "devices from one `kedro run`, or launch as docs/architecture.md 'Scaling out' shows"
        )
    if processes == 1 and not external:
        return "auto"  # one device: nothing to distribute
    backend = "nccl" if accelerator == "gpu" else "gloo"
    ddp = {"process_group_backend": backend, "find_unused_parameters": find_unused_parameters}
    if external or setting == "ddp":
        return DDPStrategy(**ddp)
    return DDPStrategy(start_method="spawn", **ddp)


@dataclass(frozen=True)
class TrainerSettings:
    """What ``lightning.Trainer`` is given about devices, and the loaders' settings."""

    accelerator: str
    devices: int
    num_nodes: int
    strategy: Strategy | str
    precision: str
    accumulate_grad_batches: int
    batch_size_per_process: int
    loader: LoaderSettings

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    def trainer_kwargs(self) -> dict[str, Any]:
        return {
            "accelerator": self.accelerator,
            "devices": self.devices,
            "num_nodes": self.num_nodes,
            "strategy": self.strategy,
            "precision": self.precision,
            "accumulate_grad_batches": self.accumulate_grad_batches,
            # The data module shards the data itself (DistributedSampler), seeded per epoch.
            "use_distributed_sampler": False,
        }


def resolve_workers(setting: int | str, accelerator: str, processes_per_node: int) -> int:
    """``auto``: none on a CPU (the training step wants every core, and reading the memory-mapped
    store is far faster than the step); on a GPU, the cores each process can spare, at most 8."""
    if setting != "auto":
        return int(setting)
    if accelerator == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(MAX_AUTO_WORKERS, (cores or 1) // processes_per_node - 1))


def trainer_settings(
    trainer: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    find_unused_parameters: bool = False,
) -> TrainerSettings:
    """Resolve the trainer and loader parameters of a phase (checked by avshared.training.schema) on
    this machine; raises on devices it lacks. ``find_unused_parameters`` as in
    ``resolve_strategy``."""
    accelerator = resolve_accelerator(trainer["accelerator"])
    devices = resolve_devices(trainer["devices"], accelerator)
    num_nodes = trainer["num_nodes"]
    accumulate = trainer["accumulate_grad_batches"]
    processes = devices * num_nodes
    per_step = processes * accumulate
    pin_memory = data["pin_memory"]
    return TrainerSettings(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=resolve_strategy(
            trainer["strategy"],
            accelerator,
            processes,
            find_unused_parameters=find_unused_parameters,
        ),
        precision=resolve_precision(trainer["precision"], accelerator),
        accumulate_grad_batches=accumulate,
        batch_size_per_process=data["batch_size"] // per_step,
        loader=LoaderSettings(
            num_workers=resolve_workers(data["num_workers"], accelerator, devices),
            pin_memory=accelerator == "gpu" if pin_memory == "auto" else bool(pin_memory),
            persistent_workers=data["persistent_workers"],
        ),
    )
