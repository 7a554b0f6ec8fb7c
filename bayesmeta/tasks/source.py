"""The task-source contract and the seeding shared by every built-in source."""

from __future__ import annotations

import math
import numbers
from typing import Protocol, runtime_checkable

import torch

from bayesmeta._checks import check_count
from bayesmeta.errors import ShapeError
from bayesmeta.tasks.task import TaskBatch

__all__ = ["SeededSource", "TaskSource", "check_count", "check_noise_std", "check_seed"]


@runtime_checkable
class TaskSource(Protocol):
    """Anything that can draw a batch of tasks.

    A learner's ``meta_fit`` calls ``sample(meta_batch_size)`` once per
    meta-iteration.
    """

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` tasks as one :class:`TaskBatch`."""
        ...


def check_seed(seed: int | None) -> int | None:
    """Return ``seed`` as an int (or ``None``) if it is a whole number, else raise ``TypeError``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return int(seed)


def check_noise_std(noise_std: float) -> float:
    """Return ``noise_std`` as a float if it is finite and ``>= 0``, else raise ``ValueError``."""
    if not (math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be finite and >= 0, got {noise_std}")
    return float(noise_std)


class SeededSource:
    """Base of the built-in sources: owns a ``torch.Generator`` seeded once.

    Parameters
    ----------
    seed
        Seed of the source's own generator. Two sources built with the same
        seed draw the same sequence of tasks. ``None`` seeds from the operating
        system (not reproducible).
    dtype
        Floating dtype of the generated tensors (default: torch's default dtype).

    """

    def __init__(self, *, seed: int | None = None, dtype: torch.dtype | None = None) -> None:
        self.generator = torch.Generator()
        checked = check_seed(seed)
        if checked is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(checked)
        self.seed = seed
        self.dtype = dtype or torch.get_default_dtype()
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise ShapeError(f"dtype must be a floating torch.dtype, got {dtype!r}")

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` tasks (implemented by each source)."""
        raise NotImplementedError

    def _generator(self, generator: torch.Generator | None) -> torch.Generator:
        if generator is not None and generator.device.type != "cpu":
            raise ValueError("generator must be a CPU torch.Generator; tasks are drawn on the CPU")
        return self.generator if generator is None else generator

    def uniform(
        self, shape: tuple[int, ...], low: float, high: float, g: torch.Generator
    ) -> torch.Tensor:
        """Draw ``U[low, high)`` values of ``shape`` from ``g``."""
        return torch.rand(shape, generator=g, dtype=self.dtype) * (high - low) + low
