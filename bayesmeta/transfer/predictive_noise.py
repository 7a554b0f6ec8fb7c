"""A transfer learner's predictive noise, calibrated on held-out points of related tasks.

:meth:`TransferLearner.fit_prior` learns the noise scale jointly with the prior scales
from all points of the related tasks, as an in-sample fit: it measures how far the data
scatter about curves fitted to *all* of them. A target task is predicted from a few
support points, at inputs the fit has not seen (often later in time), where the errors
are larger. :func:`fit_predictive_noise` measures them instead: it adapts to the support
points of tasks shaped like the target ones and sets the noise that predictions use to
what the posterior's function draws leave unexplained on their query points (the
moment match, or the noise that makes the 90% intervals cover 90% of the points if that
is larger; see :func:`~bayesmeta.learners.noise_calibration.residual_noise_variance`).
Adaptation keeps the likelihood's own scale, and the predictive noise is never below it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch
from torch import Tensor

from bayesmeta.learners.noise_calibration import function_draws, residual_noise_variance
from bayesmeta.tasks.task import TaskBatch

__all__ = ["fit_predictive_noise", "with_noise"]

P = TypeVar("P")


def fit_predictive_noise(
    learner: Any,
    batch: TaskBatch,
    *,
    num_samples: int = 50,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The predictive noise scale ``[O]`` from ``learner``'s adaptation to ``batch``.

    Parameters
    ----------
    learner
        A regression :class:`~bayesmeta.transfer.TransferLearner` (not ``"laplace"``).
    batch
        Related tasks with support and query sets, ``[T, K, *features]`` and
        ``[T, Q, *features]``, shaped as the target tasks will be.
    num_samples
        Function draws per task (``"bayes"``; a point estimate has one).
    generator
        Random generator for the draws (default: a new one seeded 0, so torch's
        global random state is left as it was).

    Returns
    -------
    Tensor
        The noise standard deviation ``[O]``, at least the likelihood's own.

    Raises
    ------
    ValueError
        For classification, ``method="laplace"`` (whose noise scale is part of
        the posterior), or a batch without query points.

    """
    if learner.classification:
        raise ValueError("fit_noise_scale is for regression; a categorical likelihood has no noise")
    if learner.method == "laplace":
        raise ValueError(
            "fit_noise_scale does not support method='laplace': its noise scale shapes the "
            "linearised posterior itself; use method='bayes' for a calibrated predictive noise"
        )
    if not isinstance(batch, TaskBatch) or batch.query_y.shape[1] == 0:
        raise ValueError("fit_noise_scale needs a TaskBatch with query points")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    post = learner.adapt(batch.support_x, batch.support_y)
    draws = function_draws(post, batch.query_x, num_samples=num_samples, generator=generator)
    variance = residual_noise_variance(draws, batch.query_y.to(draws))
    scale = variance.sqrt()
    own = learner.noise_scale_
    if own is None:
        own = torch.full_like(scale, float(learner.noise_scale))
    return torch.maximum(scale, own.detach().reshape(-1).to(scale))


def with_noise(posterior: P, noise: Tensor | None) -> P:
    """``posterior`` predicting with noise scale ``noise`` ``[O]`` (unchanged if ``None``).

    Where the posterior's own noise scale is larger (a task's own fitted noise), it
    is kept: the calibration widens intervals, never narrows them. The result keeps
    the batch layout of the posterior's noise (``[T, 1, O]`` for a batch of tasks,
    ``[O]`` for one).
    """
    if noise is None or not dataclasses.is_dataclass(posterior):
        return posterior
    own = getattr(posterior, "noise_scale", None)
    if own is None:
        return posterior
    new = torch.maximum(noise.to(own).reshape(*([1] * (own.dim() - 1)), -1), own)
    return dataclasses.replace(posterior, noise_scale=new)  # type: ignore[type-var]
