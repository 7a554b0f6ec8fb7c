"""Tasks from data the user already holds: :func:`from_arrays` and :class:`TaskPool`."""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
import torch
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.errors import ShapeError
from bayesmeta.tasks.source import SeededSource
from bayesmeta.tasks.task import Task, TaskBatch

__all__ = ["TaskPool", "from_arrays"]


def _as_x(name: str, value: Any, batched: bool, dtype: torch.dtype) -> Tensor:
    t = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
    if not (
        t.is_floating_point()
        or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
    ):
        raise ShapeError(f"{name} must hold numbers, got dtype {t.dtype}")
    t = t.to(dtype)
    if t.dim() == (1 if batched else 0) + 1:
        t = t.unsqueeze(-1)  # 1-D inputs: one feature per point
    return t


def _as_y(name: str, value: Any, batched: bool, dtype: torch.dtype, classification: bool) -> Tensor:
    t = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
    if classification:
        if t.is_floating_point() and (
            not bool(torch.isfinite(t).all()) or bool((t != t.round()).any())
        ):
            raise ValueError(f"{name} must hold whole-number class labels")
        return t.to(torch.long)
    if not t.is_floating_point():
        raise ShapeError(
            f"{name} holds {t.dtype} values but regression targets must be floating point; "
            "pass classification=True for class labels, or convert the targets to float"
        )
    t = t.to(dtype)
    if t.dim() == (1 if batched else 0) + 1:
        t = t.unsqueeze(-1)  # 1-D targets: one output per point
    return t


@overload
def from_arrays(
    support_x: Any,
    support_y: Any,
    query_x: Any = ...,
    query_y: Any = ...,
    *,
    batched: Literal[False] = ...,
    classification: bool = ...,
    n_way: int | None = ...,
    dtype: torch.dtype | None = ...,
) -> Task: ...


@overload
def from_arrays(
    support_x: Any,
    support_y: Any,
    query_x: Any = ...,
    query_y: Any = ...,
    *,
    batched: Literal[True],
    classification: bool = ...,
    n_way: int | None = ...,
    dtype: torch.dtype | None = ...,
) -> TaskBatch: ...


def from_arrays(
    support_x: Any,
    support_y: Any,
    query_x: Any = None,
    query_y: Any = None,
    *,
    batched: bool = False,
    classification: bool = False,
    n_way: int | None = None,
    dtype: torch.dtype | None = None,
) -> Task | TaskBatch:
    """Build a task (or a batch of tasks) from arrays, lists or tensors.

    Inputs are converted to ``dtype`` (torch's default dtype unless given);
    1-D inputs ``[N]`` become ``[N, 1]`` and 1-D regression targets ``[N]``
    become ``[N, 1]``. Nothing else is reshaped or dropped: every remaining
    mismatch raises an error that names the argument.

    Parameters
    ----------
    support_x, support_y
        Support inputs ``[K, D]`` (or ``[K]``) and targets ``[K, O]`` (or
        ``[K]``); with ``batched=True`` a leading task dimension ``T``.
    query_x, query_y
        Query set, same layout; omit both for a task with an empty query set.
    batched
        Whether the arrays carry a leading task dimension.
    classification
        Treat targets as integer class labels ``[K]`` in ``0 .. n_way - 1``.
    n_way
        Number of classes (classification only).
    dtype
        Floating dtype of the inputs (and regression targets).

    Returns
    -------
    Task or TaskBatch
        A :class:`Task`, or a :class:`TaskBatch` when ``batched=True``.

    Examples
    --------
    >>> task = from_arrays([0.0, 1.0, 2.0], [0.1, 0.9, 2.1], [3.0], [2.9])
    >>> tuple(task.support_x.shape), tuple(task.support_y.shape)
    ((3, 1), (3, 1))

    """
    if (query_x is None) != (query_y is None):
        raise ValueError("give both query_x and query_y, or neither")
    dt = dtype or torch.get_default_dtype()
    sx = _as_x("support_x", support_x, batched, dt)
    sy = _as_y("support_y", support_y, batched, dt, classification)
    if query_x is None:
        qx = sx.new_zeros((*sx.shape[: 1 if batched else 0], 0, *sx.shape[2 if batched else 1 :]))
        qshape = (*sy.shape[: 1 if batched else 0], 0, *sy.shape[2 if batched else 1 :])
        qy = sy.new_zeros(qshape)
    else:
        qx = _as_x("query_x", query_x, batched, dt)
        qy = _as_y("query_y", query_y, batched, dt, classification)
    if batched:
        return TaskBatch(sx, sy, qx, qy, n_way)
    return Task(sx, sy, qx, qy, n_way)


class TaskPool(SeededSource):
    """A task source that draws from a fixed collection of tasks.

    Use it to meta-train on tasks built from your own data: each call of
    ``sample`` picks tasks uniformly at random, without replacement within a
    call when ``num_tasks <= len(pool)`` and with replacement otherwise.

    Parameters
    ----------
    tasks
        A :class:`TaskBatch`, or a sequence of equally sized :class:`Task`.
    seed
        Seed of the pool's generator.

    """

    def __init__(
        self, tasks: TaskBatch | list[Task] | tuple[Task, ...], *, seed: int | None = None
    ) -> None:
        if not isinstance(tasks, TaskBatch | list | tuple):
            raise TypeError(
                f"tasks must be a TaskBatch or a list of Task, got {type(tasks).__name__}"
            )
        batch = tasks if isinstance(tasks, TaskBatch) else TaskBatch.stack(list(tasks))
        super().__init__(seed=seed, dtype=batch.support_x.dtype)
        self.tasks = batch

    def __len__(self) -> int:
        return len(self.tasks)

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` tasks from the pool."""
        t = check_count("num_tasks", num_tasks, minimum=1)
        g = self._generator(generator)
        n = len(self.tasks)
        # Without replacement within a call while the pool is large enough.
        idx = torch.randperm(n, generator=g)[:t] if t <= n else torch.randint(n, (t,), generator=g)
        return self.tasks.select(idx)
