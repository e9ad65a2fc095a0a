"""Running a model over arrays of clips in batches: eval mode, no gradients, the model's device."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[torch.device]:
    """Eval mode and no gradients inside; the model's training flag restored after. Yields the
    device of the model's parameters."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield next(model.parameters()).device
    finally:
        model.train(was_training)


def as_tensor(values: ArrayLike | Tensor | None) -> Tensor | None:
    """A tensor view of an array (uint8 frames stay uint8), None stays None."""
    if values is None or isinstance(values, Tensor):
        return values
    return torch.from_numpy(np.ascontiguousarray(values))


def batch_slices(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch_size`` rows covering 0..n."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def clip_count(*arrays: Tensor | None) -> int:
    """The common first dimension of the arrays given; raises when they differ or none is given."""
    sizes = {int(a.shape[0]) for a in arrays if a is not None}
    if len(sizes) != 1:
        raise ValueError(f"give at least one input, all with the same number of clips; got {sizes}")
    return sizes.pop()


def to_device(values: Tensor | None, rows: slice, device: torch.device) -> Tensor | None:
    """Rows of a tensor on ``device`` (None stays None)."""
    return None if values is None else values[rows].to(device)
