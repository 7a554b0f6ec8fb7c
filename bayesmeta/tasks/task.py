"""The task containers: one :class:`Task` and a stacked :class:`TaskBatch`.

A task is a small data set split into a *support* set (what the learner adapts
on) and a *query* set (what it is scored on). Regression targets are floating
``[N, O]``; classification targets are integer labels ``[N]`` in
``0 .. n_way - 1``. Shapes are checked when a task is made, so that a mistake
is reported where it was made rather than deep inside a learner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from bayesmeta._checks import check_pair, fmt_shape
from bayesmeta.errors import ShapeError

__all__ = ["Task", "TaskBatch"]

Kind = Literal["regression", "classification"]


def _validate(
    support_x: object,
    support_y: object,
    query_x: object,
    query_y: object,
    n_way: int | None,
    batch: tuple[int, ...],
) -> int | None:
    """Check one task (``batch == ()``) or a stack of tasks; return ``n_way``."""
    sx, sy = check_pair("support", support_x, support_y, batch=batch, allow_empty=False)
    qx, qy = check_pair("query", query_x, query_y, batch=batch, allow_empty=True)
    nb = len(batch)
    if sx.shape[nb + 1 :] != qx.shape[nb + 1 :]:
        raise ShapeError(
            f"support_x and query_x must have the same feature shape, got "
            f"{fmt_shape(sx.shape[nb + 1 :])} and {fmt_shape(qx.shape[nb + 1 :])}"
        )
    if sx.dtype != qx.dtype:
        raise ShapeError(f"support_x is {sx.dtype} but query_x is {qx.dtype}")
    if sx.device != qx.device:
        raise ValueError(f"support_x is on {sx.device} but query_x is on {qx.device}")
    if sy.is_floating_point() != qy.is_floating_point():
        raise ShapeError(
            "support_y and query_y must both be floating (regression) or both integer "
            f"(classification), got {sy.dtype} and {qy.dtype}"
        )
    if sy.is_floating_point():
        if sy.shape[-1] != qy.shape[-1]:
            raise ShapeError(
                f"support_y and query_y must have the same number of outputs O, got "
                f"{fmt_shape(sy.shape)} and {fmt_shape(qy.shape)}"
            )
        if n_way is not None:
            raise ValueError("n_way is only meaningful for classification (integer targets)")
        return None
    labels = torch.cat([sy.reshape(-1), qy.reshape(-1)])
    if n_way is None:
        n_way = int(labels.max()) + 1 if labels.numel() else 0
    if n_way < 1:
        raise ValueError(f"n_way must be >= 1, got {n_way}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_way):
        raise ValueError(
            f"class labels must lie in 0..n_way-1 = 0..{n_way - 1}, got labels from "
            f"{int(labels.min())} to {int(labels.max())}; relabel each task's classes"
        )
    return n_way


@dataclass(frozen=True, eq=False)
class Task:
    """One task: a support set to adapt on and a query set to score on.

    Parameters
    ----------
    support_x
        Support inputs, ``[K, D]`` (or ``[K, *features]``, e.g. images).
    support_y
        Support targets: ``[K, O]`` floating for regression, ``[K]`` integer
        labels in ``0 .. n_way - 1`` for classification.
    query_x
        Query inputs, ``[Q, D]``; ``Q`` may be 0 for a task that is only
        adapted to.
    query_y
        Query targets, ``[Q, O]`` or ``[Q]``, as ``support_y``.
    n_way
        Number of classes (classification only); inferred from the labels when
        omitted.

    Raises
    ------
    ValueError
        If a shape, dtype or value is wrong; the message names the argument
        and the expected shape.

    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    n_way: int | None = None

    def __post_init__(self) -> None:
        n_way = _validate(
            self.support_x, self.support_y, self.query_x, self.query_y, self.n_way, ()
        )
        object.__setattr__(self, "n_way", n_way)

    @property
    def kind(self) -> Kind:
        """``"regression"`` or ``"classification"``, from the targets' dtype."""
        return "regression" if self.support_y.is_floating_point() else "classification"

    def to(self, device: torch.device | str) -> Task:
        """Return the task with every tensor on ``device``."""
        return Task(
            self.support_x.to(device),
            self.support_y.to(device),
            self.query_x.to(device),
            self.query_y.to(device),
            self.n_way,
        )


@dataclass(frozen=True, eq=False)
class TaskBatch:
    """``T`` tasks of equal sizes stacked along a leading task dimension.

    Parameters
    ----------
    support_x
        ``[T, K, D]`` (or ``[T, K, *features]``).
    support_y
        ``[T, K, O]`` floating, or ``[T, K]`` integer labels.
    query_x
        ``[T, Q, D]``.
    query_y
        ``[T, Q, O]`` or ``[T, Q]``.
    n_way
        Number of classes (classification only).
    info
        Optional per-task generating parameters, each ``[T]`` (for example a
        sinusoid's ``amplitude`` and ``phase``); carried along, never used for
        fitting.

    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    n_way: int | None = None
    info: Mapping[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.support_x, Tensor) or self.support_x.dim() < 1:
            raise ShapeError("support_x must be a tensor of shape [T, K, D]")
        t = int(self.support_x.shape[0])
        if t == 0:
            raise ValueError("a TaskBatch needs at least one task (T >= 1)")
        n_way = _validate(
            self.support_x, self.support_y, self.query_x, self.query_y, self.n_way, (t,)
        )
        object.__setattr__(self, "n_way", n_way)
        for key, value in self.info.items():
            if not isinstance(value, Tensor) or value.shape[:1] != (t,):
                raise ShapeError(f"info[{key!r}] must be a tensor with leading dimension T = {t}")
        object.__setattr__(self, "info", dict(self.info))

    @classmethod
    def stack(cls, tasks: Sequence[Task]) -> TaskBatch:
        """Stack tasks of equal support and query sizes into a batch.

        Raises
        ------
        ValueError
            If ``tasks`` is empty or the tasks differ in size or ``n_way``.

        """
        if len(tasks) == 0:
            raise ValueError("TaskBatch.stack needs at least one task")
        for i, task in enumerate(tasks):
            if not isinstance(task, Task):
                raise TypeError(f"tasks[{i}] must be a Task, got {type(task).__name__}")
        first = tasks[0]
        for i, task in enumerate(tasks):
            for name in ("support_x", "support_y", "query_x", "query_y"):
                a, b = getattr(first, name), getattr(task, name)
                if a.shape != b.shape:
                    raise ShapeError(
                        f"tasks[{i}].{name} has shape {fmt_shape(b.shape)} but tasks[0].{name} "
                        f"has {fmt_shape(a.shape)}; only tasks of equal sizes can be stacked"
                    )
            if task.n_way != first.n_way:
                raise ValueError(f"tasks[{i}].n_way = {task.n_way} differs from {first.n_way}")
        return cls(
            torch.stack([t.support_x for t in tasks]),
            torch.stack([t.support_y for t in tasks]),
            torch.stack([t.query_x for t in tasks]),
            torch.stack([t.query_y for t in tasks]),
            first.n_way,
        )

    def __len__(self) -> int:
        return int(self.support_x.shape[0])

    def __getitem__(self, index: int) -> Task:
        if not isinstance(index, int):
            raise TypeError("index a TaskBatch with an int, or use .select(indices)")
        return Task(
            self.support_x[index],
            self.support_y[index],
            self.query_x[index],
            self.query_y[index],
            self.n_way,
        )

    def select(self, indices: slice | Sequence[int] | Tensor) -> TaskBatch:
        """Return the tasks at ``indices`` (a slice, a list or an index tensor)."""
        idx = indices if isinstance(indices, slice) else torch.as_tensor(indices, dtype=torch.long)
        return TaskBatch(
            self.support_x[idx],
            self.support_y[idx],
            self.query_x[idx],
            self.query_y[idx],
            self.n_way,
            {k: v[idx] for k, v in self.info.items()},
        )

    @property
    def num_tasks(self) -> int:
        """Number of tasks ``T``."""
        return len(self)

    @property
    def kind(self) -> Kind:
        """``"regression"`` or ``"classification"``, from the targets' dtype."""
        return "regression" if self.support_y.is_floating_point() else "classification"

    @property
    def device(self) -> torch.device:
        """The device that holds the tensors."""
        return self.support_x.device

    def to(self, device: torch.device | str) -> TaskBatch:
        """Return the batch with every tensor on ``device``."""
        if torch.device(device) == self.device:
            return self
        return TaskBatch(
            self.support_x.to(device),
            self.support_y.to(device),
            self.query_x.to(device),
            self.query_y.to(device),
            self.n_way,
            {k: v.to(device) for k, v in self.info.items()},
        )
