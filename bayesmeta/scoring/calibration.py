"""Calibration of regression predictions: PIT values, PACOH's calibration error, coverage.

A predictive distribution is calibrated when, for every level ``q``, a
fraction ``q`` of the targets falls at or below its predictive ``q``-quantile,
i.e. has a predictive CDF value ``F(y) <= q`` (Kuleshov et al., 2018). The
calibration error of PACOH (Rothfuss et al., 2021) is the mean absolute gap
between ``q`` and that observed frequency over a grid of levels. Equivalently,
the probability integral transform (PIT) values ``F(y)`` of a calibrated
prediction are uniform on ``[0, 1]``: a U-shaped PIT histogram means
over-confidence, a hump under-confidence, a slope bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.predictions.prediction import Prediction

__all__ = [
    "COVERAGE_LEVELS",
    "PACOH_LEVELS",
    "calibration_curve",
    "coverage_curve",
    "pit_values",
    "regression_calibration_error",
]

#: The authors' levels: ``linspace(0.05, 0.95, 20)``, 20 evenly spaced levels
#: (a step of 0.9 / 19, not 0.05).
PACOH_LEVELS: tuple[float, ...] = tuple(0.05 + 0.9 * i / 19 for i in range(20))

#: Nominal levels of the central intervals in :func:`coverage_curve`: 0.1, 0.2, ..., 0.9.
COVERAGE_LEVELS: tuple[float, ...] = tuple(i / 10 for i in range(1, 10))


def _levels(
    levels: Sequence[float] | Tensor | None, like: Tensor, default: tuple[float, ...] = PACOH_LEVELS
) -> Tensor:
    values = default if levels is None else levels
    lv = torch.as_tensor(values, dtype=like.dtype, device=like.device)
    if lv.dim() != 1 or lv.numel() == 0:
        raise ValueError(
            f"levels must be a non-empty 1-D sequence, got shape {fmt_shape(lv.shape)}"
        )
    if not bool(torch.isfinite(lv).all()) or bool(((lv < 0) | (lv > 1)).any()):
        raise ValueError(f"levels must lie in [0, 1], got {lv.tolist()}")
    return lv


def _pit(prediction: Prediction, y: Tensor) -> Tensor:
    """Predictive CDF values ``[*B, N * O]`` (the probability integral transform)."""
    if not isinstance(prediction, Prediction):
        raise TypeError(f"prediction must be a Prediction, got {type(prediction).__name__}")
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.shape != prediction.mean.shape:
        raise ShapeError(
            f"y must have the prediction's shape [*B, N, O] = {fmt_shape(prediction.mean.shape)}, "
            f"got {fmt_shape(y.shape)}"
        )
    if y.shape[-2] * y.shape[-1] == 0:
        raise ValueError("y must hold at least one target (N >= 1 and O >= 1)")
    u = prediction.cdf(y)
    return u.reshape(*u.shape[:-2], -1)


def _frequencies(u: Tensor, lv: Tensor) -> Tensor:
    """Fraction of ``u [..., M]`` at or below each level ``lv [L]``: ``[..., L]``."""
    return (u.unsqueeze(-1) <= lv).to(u.dtype).mean(-2)


def regression_calibration_error(
    prediction: Prediction,
    y: Tensor,
    levels: Sequence[float] | None = None,
    *,
    reduction: Literal["mean_abs", "rms"] = "mean_abs",
) -> Tensor:
    """PACOH's calibration error of a regression prediction, per task.

    For each level ``q_j`` the observed frequency ``p_j`` is the fraction of a
    task's targets whose predictive CDF value ``F(y)`` is at most ``q_j``; the
    error is ``(1 / L) sum_j |p_j - q_j|``. 0 means calibrated; it is at most
    ``max(q, 1 - q)`` averaged over the levels. Multi-output targets are
    pooled: each of the ``N * O`` values counts once.

    This is ``calib_error`` of PACOH-NN (``pacoh_nn/modules/likelihood.py`` in
    ``jonasrothfuss/pacoh_nn``). The PACOH-GP code
    (``meta_learn/abstract.py`` in ``jonasrothfuss/meta_learning_pacoh``)
    uses the root mean square of the gaps instead: ``reduction="rms"``.
    Both report the mean over test tasks of this per-task value.

    Parameters
    ----------
    prediction
        Predictive distribution ``[*B, N, O]`` (``prediction.cdf`` is used; a
        prediction without a noise model uses the empirical CDF of its
        function samples).
    y
        Targets ``[*B, N, O]``.
    levels
        Levels ``q_j`` in ``[0, 1]``; default :data:`PACOH_LEVELS`, the
        authors' ``linspace(0.05, 0.95, 20)``.
    reduction
        ``"mean_abs"`` (default, PACOH-NN) or ``"rms"`` (PACOH-GP).

    Returns
    -------
    Tensor
        ``[*B]``: one calibration error per task.

    Raises
    ------
    ValueError
        If ``y`` does not match the prediction's shape, holds no target, or
        ``levels`` is empty or outside ``[0, 1]``.

    Examples
    --------
    >>> pred = Prediction.point(torch.zeros(1, 4, 1), torch.tensor(1.0))
    >>> y = torch.tensor([[[-1.15], [-0.32], [0.32], [1.15]]])  # F(y) = 1/8, 3/8, 5/8, 7/8
    >>> regression_calibration_error(pred, y, levels=[0.25, 0.5, 0.75])
    tensor([0.])
    >>> regression_calibration_error(pred, torch.zeros(1, 4, 1), levels=[0.25, 0.5, 0.75])
    tensor([0.3333])

    """
    if reduction not in ("mean_abs", "rms"):
        raise ValueError(f"reduction must be 'mean_abs' or 'rms', got {reduction!r}")
    u = _pit(prediction, y)
    lv = _levels(levels, u)
    gap = _frequencies(u, lv) - lv
    if reduction == "mean_abs":
        return gap.abs().mean(-1)
    return gap.pow(2).mean(-1).sqrt()


def calibration_curve(
    prediction: Prediction, y: Tensor, levels: Sequence[float] | None = None
) -> tuple[Tensor, Tensor]:
    """Observed frequency ``P(F(y) <= q)`` at each level ``q``, pooled over all tasks.

    Plot ``observed`` against ``levels``: a calibrated prediction lies on the
    diagonal, an over-confident one (too narrow) is S-shaped, flatter than the
    diagonal in the middle, and a biased one lies wholly above or below it.

    Parameters
    ----------
    prediction
        Predictive distribution ``[*B, N, O]``.
    y
        Targets ``[*B, N, O]``.
    levels
        Levels in ``[0, 1]``; default :data:`PACOH_LEVELS`.

    Returns
    -------
    tuple of Tensor
        ``(levels, observed)``, each ``[L]``: every target of every task
        counts once.

    """
    u = _pit(prediction, y).reshape(-1)
    lv = _levels(levels, u)
    return lv, _frequencies(u, lv)


def pit_values(prediction: Prediction, y: Tensor) -> Tensor:
    """Probability integral transform: the predictive CDF at each target.

    If the prediction is calibrated the values are uniform on ``[0, 1]``;
    draw them with :func:`~bayesmeta.scoring.plotting.plot_pit_histogram`.

    Parameters
    ----------
    prediction
        Predictive distribution ``[*B, N, O]`` (``prediction.cdf`` is used; a
        prediction without a noise model uses the empirical CDF of its
        function samples, whose values are multiples of ``1 / S``).
    y
        Targets ``[*B, N, O]``.

    Returns
    -------
    Tensor
        ``[*B, N * O]``: ``F(y)`` per target, the outputs of a point flattened
        after its index (``n * O + o``).

    Raises
    ------
    ShapeError
        If ``y`` does not match the prediction's shape.
    ValueError
        If ``y`` holds no target.

    Examples
    --------
    >>> pred = Prediction.point(torch.zeros(1, 3, 1), torch.tensor(1.0))
    >>> pit_values(pred, torch.tensor([[[-1.0], [0.0], [1.0]]]))
    tensor([[0.1587, 0.5000, 0.8413]])

    """
    return _pit(prediction, y)


def coverage_curve(
    prediction: Prediction, y: Tensor, levels: Sequence[float] | None = None
) -> tuple[Tensor, Tensor]:
    """Observed coverage of the central predictive intervals, pooled over all tasks.

    The central interval of level ``l`` holds the values whose predictive CDF
    lies in ``[(1 - l) / 2, (1 + l) / 2]``; its observed coverage is the
    fraction of targets inside it. A calibrated prediction covers a fraction
    ``l`` at every level; an over-confident (too narrow) one covers less.

    Parameters
    ----------
    prediction
        Predictive distribution ``[*B, N, O]``.
    y
        Targets ``[*B, N, O]``.
    levels
        Nominal levels in ``[0, 1]``; default :data:`COVERAGE_LEVELS`
        (0.1, 0.2, ..., 0.9).

    Returns
    -------
    tuple of Tensor
        ``(levels, observed)``, each ``[L]``: every target of every task
        counts once.

    Notes
    -----
    The interval is read off the PIT values, so for a noise model it equals
    ``prediction.interval(l)`` (and :func:`~bayesmeta.scoring.metrics.coverage`); for a
    prediction without one it uses the empirical CDF of the function samples
    rather than interpolated sample quantiles.

    Examples
    --------
    >>> pred = Prediction.point(torch.zeros(1, 4, 1), torch.tensor(1.0))
    >>> y = torch.tensor([[[-2.0], [-0.1], [0.1], [2.0]]])
    >>> coverage_curve(pred, y, levels=[0.5, 0.99])
    (tensor([0.5000, 0.9900]), tensor([0.5000, 1.0000]))

    """
    u = _pit(prediction, y).reshape(-1)
    lv = _levels(levels, u, COVERAGE_LEVELS)
    inside = (2.0 * u - 1.0).abs().unsqueeze(-1) <= lv
    return lv, inside.to(u.dtype).mean(0)
