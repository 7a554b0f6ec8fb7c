"""Score a learner on held-out tasks: per-task metrics and their means with CIs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction
from bayesmeta.scoring import metrics
from bayesmeta.scoring.chunks import Adaptable, predict_chunks
from bayesmeta.scoring.reliability import ECE_BINS, Reliability, reliability
from bayesmeta.tasks.source import TaskSource
from bayesmeta.tasks.task import TaskBatch

__all__ = ["Adaptable", "Evaluation", "evaluate"]

#: Bootstrap resamples of the tasks behind the ECE's confidence interval.
_ECE_BOOTSTRAP = 200


@dataclass
class Evaluation:
    """Per-task metrics on held-out tasks.

    Attributes
    ----------
    per_task : dict of str to Tensor
        Each metric's value per task ``[T]``. Regression: ``mse`` always;
        ``nll``, ``coverage_90`` and ``crps`` when the predictions have a
        noise model. Classification: ``accuracy``, ``nll`` and ``brier``.
    num_tasks : int
        Number of tasks scored.
    pooled : dict of str to tuple of float
        Metrics over all query points pooled, as ``(value, ci_half_width)``;
        for classification, ``ece`` (15 bins) with a bootstrap interval over
        tasks.
    reliability : Reliability or None
        Reliability-diagram data over all query points (classification).

    """

    per_task: dict[str, Tensor] = field(default_factory=dict)
    num_tasks: int = 0
    pooled: dict[str, tuple[float, float]] = field(default_factory=dict)
    reliability: Reliability | None = None

    def summary(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """``{metric: (mean, ci_half_width)}`` over tasks (and the pooled metrics)."""
        out = {k: metrics.mean_ci(v, level) for k, v in self.per_task.items()}
        out.update(self.pooled)
        return out

    def to_dict(self) -> dict[str, dict[str, float]]:
        """JSON-ready summary: ``{metric: {"mean": m, "ci95": h}}``."""
        return {k: {"mean": m, "ci95": h} for k, (m, h) in self.summary().items()}


def _regression_metrics(pred: Prediction, y: Tensor, level: float) -> dict[str, Tensor]:
    values = {"mse": metrics.mse(pred, y)}
    if pred.has_noise_model:
        values["nll"] = metrics.nll(pred, y)
        values[f"coverage_{round(level * 100)}"] = metrics.coverage(pred, y, level)
        values["crps"] = metrics.crps(pred, y)
    return values


def _classification_metrics(pred: ClassPrediction, y: Tensor) -> dict[str, Tensor]:
    return {
        "accuracy": metrics.accuracy(pred, y),
        "nll": metrics.nll(pred, y),
        "brier": metrics.brier(pred, y),
    }


def ece_with_interval(
    probs: Tensor,
    y: Tensor,
    num_bins: int = ECE_BINS,
    *,
    resamples: int = _ECE_BOOTSTRAP,
    seed: int = 0,
) -> tuple[float, float]:
    """Pooled ECE of tasks' predictions and a 95% bootstrap half-width over tasks.

    Parameters
    ----------
    probs
        Predictive probabilities ``[T, N, C]``.
    y
        Labels ``[T, N]``.
    num_bins
        Equal-width confidence bins.
    resamples
        Bootstrap resamples of the ``T`` tasks (0: no interval).
    seed
        Seed of the resampling.

    Returns
    -------
    tuple of float
        ``(ece, half_width)``, the half-width being 1.96 bootstrap standard
        deviations.

    """
    ece = reliability(probs, y, num_bins).ece
    t = probs.shape[0]
    if resamples < 1 or t < 2:
        return ece, 0.0
    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(t, (resamples, t), generator=g)
    values = torch.tensor([reliability(probs[d], y[d], num_bins).ece for d in draws])
    return ece, float(1.96 * values.std(unbiased=True))


def evaluate(
    learner: Adaptable,
    tasks: TaskBatch | TaskSource,
    num_tasks: int = 600,
    *,
    chunk_size: int = 100,
    level: float = 0.9,
    progress: bool | None = None,
    seed: int | None = None,
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
        Interval level for the coverage metric (regression).
    progress
        Progress bar over the tasks (``None``: only when stderr is a terminal).
    seed
        Seed of the posterior sampling, in a forked random state (the
        caller's is left as it was); ``None``: torch's global generator. See
        :func:`~bayesmeta.scoring.chunks.predict_chunks`, the loop behind it.

    Returns
    -------
    Evaluation
        Per-task metrics; for classification also the pooled ECE and the
        reliability-diagram data.

    """
    check_count("chunk_size", chunk_size, minimum=1)
    batch = (
        tasks
        if isinstance(tasks, TaskBatch)
        else tasks.sample(check_count("num_tasks", num_tasks, minimum=1))
    )
    if batch.query_x.shape[1] == 0:
        raise ValueError("evaluation needs tasks with query points")
    parts: dict[str, list[Tensor]] = {}
    probs: list[Tensor] = []
    chunks = predict_chunks(learner, batch, chunk_size=chunk_size, seed=seed, progress=progress)
    for _, pred, y in chunks:
        with torch.no_grad():
            if isinstance(pred, ClassPrediction):
                values = _classification_metrics(pred, y)
                probs.append(pred.probs.detach().cpu())
            else:
                values = _regression_metrics(pred, y, level)
        for key, value in values.items():
            parts.setdefault(key, []).append(value.detach().cpu())
    result = Evaluation({k: torch.cat(v) for k, v in parts.items()}, len(batch))
    if probs:
        all_probs, labels = torch.cat(probs), batch.query_y.cpu()
        result.pooled["ece"] = ece_with_interval(all_probs, labels)
        result.reliability = reliability(all_probs, labels)
    return result
