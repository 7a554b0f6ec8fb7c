"""Score a learner on held-out tasks: per-task metrics and their means with CIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from bayesmeta import metrics
from bayesmeta.prediction import Prediction
from bayesmeta.tasks.source import TaskSource, check_count
from bayesmeta.tasks.task import TaskBatch

__all__ = ["Adaptable", "Evaluation", "evaluate"]


class _Predictor(Protocol):
    def predict(self, query_x: Tensor) -> Prediction: ...


class Adaptable(Protocol):
    """Anything with ``adapt(support_x, support_y) -> predictor`` (every learner)."""

    def adapt(self, support_x: Tensor, support_y: Tensor) -> _Predictor:
        """Adapt to tasks given their support sets."""
        ...


@dataclass
class Evaluation:
    """Per-task metrics on held-out tasks.

    Attributes
    ----------
    per_task : dict of str to Tensor
        Each metric's value per task ``[T]`` (``mse`` always; ``nll``,
        ``coverage_90`` and ``crps`` when the predictions have a noise model).
    num_tasks : int
        Number of tasks scored.

    """

    per_task: dict[str, Tensor] = field(default_factory=dict)
    num_tasks: int = 0

    def summary(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """``{metric: (mean, ci_half_width)}`` over tasks."""
        return {k: metrics.mean_ci(v, level) for k, v in self.per_task.items()}

    def to_dict(self) -> dict[str, dict[str, float]]:
        """JSON-ready summary: ``{metric: {"mean": m, "ci95": h}}``."""
        return {k: {"mean": m, "ci95": h} for k, (m, h) in self.summary().items()}


def evaluate(
    learner: Adaptable,
    tasks: TaskBatch | TaskSource,
    num_tasks: int = 600,
    *,
    chunk_size: int = 100,
    level: float = 0.9,
) -> Evaluation:
    """Adapt to each task's support set and score the query predictions.

    Parameters
    ----------
    learner
        Any learner with ``adapt``.
    tasks
        A :class:`TaskBatch`, or a source to draw ``num_tasks`` tasks from.
    num_tasks
        Tasks to draw when ``tasks`` is a source (ignored for a batch).
    chunk_size
        Tasks adapted at once (bounds memory).
    level
        Interval level for the coverage metric.

    Returns
    -------
    Evaluation
        Per-task metrics.

    """
    check_count("chunk_size", chunk_size, minimum=1)
    batch = (
        tasks
        if isinstance(tasks, TaskBatch)
        else tasks.sample(check_count("num_tasks", num_tasks, minimum=1))
    )
    if batch.query_x.shape[1] == 0:
        raise ValueError("evaluation needs tasks with query points")
    cov_key = f"coverage_{round(level * 100)}"
    parts: dict[str, list[Tensor]] = {}
    for start in range(0, len(batch), chunk_size):
        chunk = batch.select(slice(start, start + chunk_size))
        pred = learner.adapt(chunk.support_x, chunk.support_y).predict(chunk.query_x)
        y = chunk.query_y.to(pred.mean.device)
        with torch.no_grad():
            values = {"mse": metrics.mse(pred, y)}
            if pred.noise_scale is not None:
                values["nll"] = metrics.nll(pred, y)
                values[cov_key] = metrics.coverage(pred, y, level)
                values["crps"] = metrics.crps(pred, y)
        for key, value in values.items():
            parts.setdefault(key, []).append(value.detach().cpu())
    return Evaluation({k: torch.cat(v) for k, v in parts.items()}, len(batch))
