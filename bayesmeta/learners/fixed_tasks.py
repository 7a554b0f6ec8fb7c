"""The fixed task set of a variational meta-learner: one batch, drawn once, every step."""

from __future__ import annotations

from collections.abc import Sequence, Sized

import torch

from bayesmeta._checks import check_count
from bayesmeta.tasks.source import TaskSource
from bayesmeta.tasks.task import Task, TaskBatch

__all__ = ["FixedTasks", "fixed_task_batch"]


def fixed_task_batch(
    tasks: TaskBatch | Sequence[Task] | TaskSource, num_tasks: int | None
) -> TaskBatch:
    """The fixed tasks a :class:`~bayesmeta.VariationalMetaLearner` fits: one :class:`TaskBatch`.

    A batch is used whole; a sequence of tasks is stacked; a source is sampled once
    (``num_tasks`` tasks, or all of a finite source).

    Raises
    ------
    TypeError, ValueError
        If ``tasks`` is none of these, or ``num_tasks`` is missing or given needlessly.

    """
    if isinstance(tasks, TaskBatch):
        if num_tasks is not None:
            raise ValueError("num_tasks is only for a task source; a TaskBatch is used whole")
        return tasks
    if isinstance(tasks, Sequence) and not isinstance(tasks, str):
        if not all(isinstance(t, Task) for t in tasks):
            raise TypeError("tasks must be a TaskBatch, a sequence of Task or a task source")
        return TaskBatch.stack(list(tasks))
    if callable(getattr(tasks, "sample", None)):
        if num_tasks is None and isinstance(tasks, Sized):
            num_tasks = len(tasks)  # a finite source (a table's groups, a pool): all of it
        if num_tasks is None:
            raise ValueError(
                "VariationalMetaLearner meta-trains on a fixed set of tasks: pass "
                "num_tasks to draw them from the source once"
            )
        batch = tasks.sample(check_count("num_tasks", num_tasks, minimum=1))
        if not isinstance(batch, TaskBatch):
            raise TypeError(f"the source returned {type(batch).__name__}, not a TaskBatch")
        return batch
    raise TypeError(
        f"tasks must be a TaskBatch, a sequence of Task or a task source, "
        f"got {type(tasks).__name__}"
    )


class FixedTasks:
    """The same (fixed) tasks every time, and the generator of each step's subsample."""

    def __init__(self, batch: TaskBatch, seed: int) -> None:
        self.batch = batch
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """The fixed tasks, whatever ``num_tasks`` and ``generator`` say."""
        return self.batch
