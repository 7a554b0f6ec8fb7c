"""Metrics per task, and their mean with a confidence interval.

Regression metrics take a :class:`~bayesmeta.predictions.prediction.Prediction` (or a
mean) and targets ``[*B, N, O]``; classification metrics take a
:class:`~bayesmeta.ClassPrediction` and labels ``[*B, N]``. Each returns one
value per task ``[*B]``, so that a benchmark can report the mean over tasks
with a 95% confidence interval (:func:`mean_ci`). The expected calibration
error pools points over tasks (:func:`expected_calibration_error`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bayesmeta._checks import check_tensor, fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction
from bayesmeta.scoring.calibration import (
    PACOH_LEVELS,
    calibration_curve,
    regression_calibration_error,
)
from bayesmeta.scoring.reliability import (
    ECE_BINS,
    Reliability,
    expected_calibration_error,
    reliability,
)

__all__ = [
    "ECE_BINS",
    "PACOH_LEVELS",
    "Reliability",
    "accuracy",
    "brier",
    "calibration_curve",
    "coverage",
    "crps",
    "expected_calibration_error",
    "mean_ci",
    "mse",
    "nll",
    "regression_calibration_error",
    "reliability",
]


def mse(prediction: Prediction | Tensor, y: Tensor) -> Tensor:
    """Mean squared error of the predictive mean, per task ``[*B]``."""
    if isinstance(prediction, Prediction):
        return (prediction.mean - prediction.check_targets(y)).pow(2).mean(dim=(-1, -2))
    mean = check_tensor("prediction", prediction)
    yt = check_tensor("y", y)
    if yt.shape != mean.shape:
        raise ShapeError(
            f"y must have the prediction's shape {fmt_shape(mean.shape)}, got {fmt_shape(yt.shape)}"
        )
    return (mean - yt).pow(2).mean(dim=(-1, -2))


def nll(prediction: Prediction | ClassPrediction, y: Tensor) -> Tensor:
    """Mean negative log predictive density (or probability) per query point, per task ``[*B]``."""
    return -prediction.log_prob(y).mean(-1)


def accuracy(prediction: ClassPrediction, y: Tensor) -> Tensor:
    """Fraction of query points whose most probable class is the label, per task ``[*B]``."""
    y = prediction.check_labels(y)
    return (prediction.predicted == y).to(prediction.sample_log_probs.dtype).mean(-1)


def brier(prediction: ClassPrediction, y: Tensor) -> Tensor:
    """Brier score ``sum_c (p_c - 1[y = c])^2``, mean over points, per task ``[*B]``.

    Lies in ``[0, 2]``; lower is better.
    """
    y = prediction.check_labels(y)
    p = prediction.probs
    onehot = torch.nn.functional.one_hot(y, prediction.num_classes).to(p.dtype)
    return (p - onehot).pow(2).sum(-1).mean(-1)


def coverage(prediction: Prediction, y: Tensor, level: float = 0.9) -> Tensor:
    """Fraction of targets inside the central ``level`` interval, per task ``[*B]``."""
    lower, upper = prediction.interval(level)
    y = prediction.check_targets(y)
    inside = (y >= lower) & (y <= upper)
    return inside.to(y.dtype).mean(dim=(-1, -2))


def crps(prediction: Prediction, y: Tensor) -> Tensor:
    """Continuous ranked probability score (lower is better), per task ``[*B]``.

    Closed form for a Gaussian predictive (a point estimate with noise);
    for a mixture of ``S`` Gaussians, the closed form of Grimit et al. (2006)
    ``E|X - y| - E|X - X'| / 2`` with pairwise terms over the ``S`` components;
    for another observation model (e.g. a Student-t), the same expression
    over seeded Monte Carlo draws of the predictive (:meth:`Prediction.mc_draws`).
    """
    y = prediction.check_targets(y)
    f = prediction.function_samples
    if prediction.observation is not None:
        # Empirical CRPS of seeded Monte Carlo draws of the predictive, with
        # E|X - X'| from the sorted draws: (2 / M^2) sum_i (2 i - M - 1) x_(i).
        draws = prediction.mc_draws()
        m = draws.shape[0]
        miss = (draws - y).abs().mean(0)
        ranks = torch.arange(1, m + 1, dtype=draws.dtype, device=draws.device)
        weights = (2.0 * ranks - m - 1.0).reshape(m, *([1] * (draws.dim() - 1)))
        spread = 2.0 * (weights * draws.sort(0).values).sum(0) / (m * m)
        return (miss - 0.5 * spread).mean(dim=(-1, -2))
    if prediction.noise_scale is None:
        # Empirical CRPS of the function samples (a sum of point masses).
        term1 = (f - y).abs().mean(0)
        term2 = sum((fs - f).abs().mean(0) for fs in f) / f.shape[0]
        return (term1 - 0.5 * term2).mean(dim=(-1, -2))
    sigma = prediction.noise_scale.expand_as(prediction.mean)

    def abs_normal_mean(mu: Tensor, s: Tensor) -> Tensor:
        # E|Z| for Z ~ N(mu, s^2)
        z = mu / s
        normal = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
        return s * math.sqrt(2.0 / math.pi) * torch.exp(-0.5 * z * z) + mu * (
            2.0 * normal.cdf(z) - 1.0
        )

    term1 = abs_normal_mean(f - y, sigma).mean(0)
    # Pairwise term one row at a time: memory O(S), not O(S^2).
    pair_sigma = math.sqrt(2.0) * sigma
    term2 = sum(abs_normal_mean(fs - f, pair_sigma).mean(0) for fs in f) / f.shape[0]
    return (term1 - 0.5 * term2).mean(dim=(-1, -2))


def mean_ci(values: Tensor, level: float = 0.95) -> tuple[float, float]:
    """Mean of per-task values and the half-width of its normal-approximation CI.

    Returns
    -------
    tuple of float
        ``(mean, half_width)``; the half-width is 0 for a single value.

    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    v = values.detach().double().reshape(-1)
    if v.numel() == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(v.mean())
    if v.numel() == 1:
        return mean, 0.0
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    return mean, float(z * v.std(unbiased=True) / math.sqrt(v.numel()))
