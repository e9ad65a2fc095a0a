"""Where a training step's time goes: FLOPs counted, the machine's matmul peak measured, and a
profile of the step by operator group. Used by bench_training.py (inside its measured children).

- ``count_flops``: a context manager around one whole step (forward, backward, optimiser) that
  counts its floating-point operations with ``torch.utils.flop_counter.FlopCounterMode`` (matrix
  products, convolutions and scaled-dot-product attention, forward and backward; elementwise
  operations are not counted, as is usual).
- ``matmul_peak``: the best FLOP/s of ``torch.mm`` at the model's own matrix shapes (every linear
  layer and patch projection at the step's batch), on the step's device and dtype: the roofline a
  step can at most reach on this machine, measured in the same run as the step, so under the same
  load.
- ``StepProfile``: ``torch.profiler`` over some steps, every event's self time attributed to one
  operator group: the innermost labelled module (attention, split into the attention itself,
  ``scaled_dot_product_attention``, and its input and output projections; MLP; patch embedding;
  norm; head; the rest of the model), the loss and metrics (the rest of ``training_step``), the
  optimiser and gradient clipping (``Optimizer.step``/``zero_grad`` outside the closure), and the
  rest (Lightning, batch transfer). A backward operation belongs to the group of the forward
  operation that created it (the autograd sequence number links the two).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

GROUP_PREFIX = "group::"
#: The operator groups, in table order.
GROUPS = (
    "attention (SDPA)",
    "attention projections",
    "MLP",
    "patch embedding",
    "norm",
    "head",
    "model, other",
    "loss & metrics",
    "optimiser & grad clipping",
    "other",
)
MODEL_OTHER = "model, other"
#: Within MultiheadAttention: the attention itself (scores, softmax, weighted sum) and the rest.
ATTENTION, SDPA, PROJECTIONS = "attention", "attention (SDPA)", "attention projections"
LOSS = "loss & metrics"
OPTIMISER = "optimiser & grad clipping"
OTHER = "other"
BACKWARD = "autograd::engine::evaluate_function"


def module_group(name: str, module: nn.Module) -> str | None:
    """The operator group of a module of an avshared model, None for a module that only holds
    others (whose operations then fall to the enclosing group)."""
    kind = type(module).__name__
    if kind == "MultiheadAttention":
        return "attention"
    if kind in ("AudioPatchEmbedding", "VideoPatchEmbedding"):
        return "patch embedding"
    if isinstance(module, nn.LayerNorm):
        return "norm"
    if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in ("linear1", "linear2"):
        return "MLP"
    if kind == "ClassificationHead":
        return "head"
    return None


@contextmanager
def count_flops() -> Iterator[Callable[[], int]]:
    """``with count_flops() as total: <one step>``; then ``total()`` is its FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        yield counter.get_total_flops


def linear_shapes(model: nn.Module, batch_size: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every distinct matrix product of the model's linear layers and patch
    projections at ``batch_size``: M rows (tokens of the batch), K inputs, N outputs."""
    config = model.config
    tokens = {"audio": config.audio_tokens, "video": config.video_tokens}
    present = [tokens[m] for m in model.modalities]
    # Early fusion: one sequence of every modality's tokens plus [CLS]; late fusion: one per
    # modality. Either way the encoder's matrix products run over every token of the batch.
    rows = batch_size * (sum(present) + (1 if type(model).__name__.startswith("Shared") else 0))
    dim, hidden = config.dim, round(config.dim * config.mlp_ratio)
    shapes = {(rows, dim, 3 * dim), (rows, dim, dim), (rows, dim, hidden), (rows, hidden, dim)}
    if "audio" in model.modalities:
        patch = config.audio_patch[0] * config.audio_patch[1]
        shapes.add((batch_size * config.audio_tokens, patch, dim))
    if "video" in model.modalities:
        t, h, w = config.video_tubelet
        shapes.add((batch_size * config.video_tokens, 3 * t * h * w, dim))
    return sorted(shapes)


def matmul_peak(
    shapes: list[tuple[int, int, int]],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seconds_per_shape: float = 0.3,
) -> dict[str, Any]:
    """The best FLOP/s of ``torch.mm`` over ``shapes`` (each timed for about
    ``seconds_per_shape``, the best of its repetitions kept, so that a busy machine's pauses
    drop out), and each shape's own."""
    device = torch.device(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    per_shape = {}
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device).to(dtype)
        b = torch.randn(k, n, device=device).to(dtype)
        for _ in range(3):
            torch.mm(a, b)
        sync()
        best, deadline = float("inf"), time.perf_counter() + seconds_per_shape
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            for _ in range(5):
                torch.mm(a, b)
            sync()
            best = min(best, (time.perf_counter() - start) / 5)
        per_shape[f"{m}x{k}x{n}"] = 2 * m * k * n / best
    return {
        "flop_per_s": max(per_shape.values()),
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
        "per_shape": per_shape,
    }


class StepProfile:
    """``torch.profiler`` over the steps between ``start`` and ``stop``, grouped (module docstring).

    ``start(module)`` labels the model's modules (forward hooks that open a profiler range) and
    ``training_step``, and starts the profiler; ``stop()`` ends both and returns ms per step by
    group, forward and backward apart.
    """

    def __init__(self, cuda: bool = False):
        self.cuda = cuda
        self.handles: list[Any] = []
        self.open_ranges: list[Any] = []
        self.profiler: Any = None
        self.restore: Callable[[], None] | None = None

    def _label(self, label: str) -> tuple[Callable, Callable]:
        def enter(*_: Any) -> None:
            scope = torch.profiler.record_function(GROUP_PREFIX + label)
            scope.__enter__()
            self.open_ranges.append(scope)

        def leave(*_: Any) -> None:
            self.open_ranges.pop().__exit__(None, None, None)

        return enter, leave

    def start(self, lightning_module: Any) -> None:
        model = lightning_module.model
        labelled = [(model, MODEL_OTHER)] + [
            (module, group)
            for name, module in model.named_modules()
            if (group := module_group(name, module)) is not None
        ]
        for module, group in labelled:
            enter, leave = self._label(group)
            self.handles.append(module.register_forward_pre_hook(enter))
            self.handles.append(module.register_forward_hook(leave))
        step = lightning_module.training_step

        def labelled_step(*args: Any, **kwargs: Any) -> Any:
            with torch.profiler.record_function(GROUP_PREFIX + LOSS):
                return step(*args, **kwargs)

        lightning_module.training_step = labelled_step
        self.restore = lambda: delattr(lightning_module, "training_step")
        activities = [torch.profiler.ProfilerActivity.CPU]
        if self.cuda:
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self.profiler = torch.profiler.profile(activities=activities)
        self.profiler.__enter__()

    def stop(self, steps: int) -> dict[str, dict[str, float]]:
        self.profiler.__exit__(None, None, None)
        for handle in self.handles:
            handle.remove()
        if self.restore is not None:
            self.restore()
        return group_times(self.profiler.events(), steps, device=self.cuda)


def _ancestors(event: Any) -> Iterator[Any]:
    while event is not None:
        yield event
        event = event.cpu_parent


def group_times(events: Any, steps: int, device: bool = False) -> dict[str, dict[str, float]]:
    """ms per step by group, ``{"forward", "backward", "total"}``, from profiler events."""
    forward_groups: dict[int, str] = {}
    for event in events:  # forward operations: the group that recorded each sequence number
        if event.sequence_nr < 0 or event.sequence_nr in forward_groups:
            continue
        chain = list(_ancestors(event))
        if any(e.name.startswith(BACKWARD) for e in chain):
            continue
        forward_groups[event.sequence_nr] = _forward_group(chain)
    times: dict[str, dict[str, float]] = defaultdict(lambda: {"forward": 0.0, "backward": 0.0})
    for event in events:
        if device and event.device_type != torch.autograd.DeviceType.CPU:
            continue  # a kernel: its time is in the operation that launched it
        us = event.self_device_time_total if device else event.self_cpu_time_total
        if not us:
            continue
        group, phase = OTHER, "forward"
        for ancestor in _ancestors(event):
            if ancestor.name.startswith(BACKWARD):
                group = forward_groups.get(ancestor.sequence_nr, "model, other")
                phase = "backward"
                break
            if ancestor.name.startswith(GROUP_PREFIX):
                group = ancestor.name.removeprefix(GROUP_PREFIX)
                if group == ATTENTION:
                    group = _attention_part(list(_ancestors(event)))
                break
            if ancestor.name.startswith("Optimizer."):
                group = OPTIMISER
                break
        times[group][phase] += us / 1000 / steps
    return {
        group: {**times[group], "total": times[group]["forward"] + times[group]["backward"]}
        for group in GROUPS
        if group in times
    }


def _attention_part(chain: list[Any]) -> str:
    """SDPA when an event of ``chain`` (up to the attention module's label) is attention's own."""
    for event in chain:
        if "scaled_dot_product" in event.name:
            return SDPA
        if event.name.startswith(GROUP_PREFIX):
            break
    return PROJECTIONS


def _forward_group(chain: list[Any]) -> str:
    for event in chain:
        if event.name.startswith(GROUP_PREFIX):
            group = event.name.removeprefix(GROUP_PREFIX)
            return _attention_part(chain) if group == ATTENTION else group
        if event.name.startswith("Optimizer."):
            return OPTIMISER
    return OTHER
