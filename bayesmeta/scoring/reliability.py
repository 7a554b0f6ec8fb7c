"""Calibration of class predictions: reliability diagrams and expected calibration error.

A classifier is calibrated when, among the points it predicts with confidence
``p``, a fraction ``p`` is classified correctly. The points are grouped into
equal-width confidence bins; the expected calibration error (ECE, Guo et al.
2017) is the count-weighted mean absolute gap between each bin's accuracy and
its mean confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.predictions.class_prediction import ClassPrediction

__all__ = ["ECE_BINS", "Reliability", "expected_calibration_error", "reliability"]

#: Number of equal-width confidence bins of the benchmark protocol.
ECE_BINS = 15


@dataclass(frozen=True)
class Reliability:
    """The data of a reliability diagram.

    Attributes
    ----------
    edges : Tensor
        Bin edges ``[num_bins + 1]`` from 0 to 1 (bin ``b`` is ``(edges[b], edges[b+1]]``;
        the first bin also holds confidence 0).
    confidence : Tensor
        Mean confidence per bin ``[num_bins]`` (NaN for an empty bin).
    accuracy : Tensor
        Fraction correct per bin ``[num_bins]`` (NaN for an empty bin).
    count : Tensor
        Number of points per bin ``[num_bins]``.

    """

    edges: Tensor
    confidence: Tensor
    accuracy: Tensor
    count: Tensor

    @property
    def ece(self) -> float:
        """Expected calibration error: ``sum_b n_b |acc_b - conf_b| / n``."""
        n = self.count.sum()
        if int(n) == 0:
            raise ValueError("no points to compute a calibration error on")
        gap = (self.accuracy - self.confidence).abs().nan_to_num(0.0)
        return float((self.count * gap).sum() / n)

    @property
    def max_gap(self) -> float:
        """Maximum calibration error: the largest gap over non-empty bins."""
        gap = (self.accuracy - self.confidence).abs()
        gap = gap[self.count > 0]
        return float(gap.max()) if gap.numel() else 0.0


def _probs_and_labels(prediction: ClassPrediction | Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    probs = prediction.probs if isinstance(prediction, ClassPrediction) else prediction
    if not isinstance(probs, Tensor) or probs.dim() < 1:
        raise ShapeError("probabilities must be a tensor of shape [..., C]")
    if not isinstance(y, Tensor) or y.is_floating_point() or y.shape != probs.shape[:-1]:
        raise ShapeError(
            f"labels must be an integer tensor of shape {fmt_shape(probs.shape[:-1])}, got "
            f"{fmt_shape(getattr(y, 'shape', ()))}"
        )
    c = probs.shape[-1]
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= c):
        raise ValueError(f"labels must lie in 0..{c - 1}, got {int(y.min())}..{int(y.max())}")
    return probs.detach().reshape(-1, probs.shape[-1]), y.reshape(-1).to(probs.device)


def reliability(
    prediction: ClassPrediction | Tensor, y: Tensor, num_bins: int = ECE_BINS
) -> Reliability:
    """Bin the points by confidence and compare confidence with accuracy.

    Parameters
    ----------
    prediction
        A :class:`~bayesmeta.ClassPrediction` or probabilities ``[..., C]``.
    y
        Labels ``[...]``; all points are pooled (e.g. over tasks).
    num_bins
        Number of equal-width bins on ``[0, 1]``.

    Returns
    -------
    Reliability
        Per-bin mean confidence, accuracy and count, and the ECE.

    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be an int >= 1, got {num_bins!r}")
    probs, labels = _probs_and_labels(prediction, y)
    conf, pred = probs.max(-1)
    correct = (pred == labels).to(probs.dtype)
    edges = torch.linspace(0.0, 1.0, num_bins + 1, dtype=probs.dtype, device=probs.device)
    index = (torch.bucketize(conf, edges[1:-1], right=False)).clamp(0, num_bins - 1)
    count = torch.zeros(num_bins, dtype=probs.dtype, device=probs.device)
    count.index_add_(0, index, torch.ones_like(conf))
    conf_sum = torch.zeros_like(count).index_add_(0, index, conf)
    acc_sum = torch.zeros_like(count).index_add_(0, index, correct)
    nan = torch.full_like(count, float("nan"))
    safe = count.clamp_min(1.0)
    return Reliability(
        edges.cpu(),
        torch.where(count > 0, conf_sum / safe, nan).cpu(),
        torch.where(count > 0, acc_sum / safe, nan).cpu(),
        count.cpu(),
    )


def expected_calibration_error(
    prediction: ClassPrediction | Tensor, y: Tensor, num_bins: int = ECE_BINS
) -> float:
    """ECE over all points pooled (``num_bins`` equal-width bins; 15 by default)."""
    return reliability(prediction, y, num_bins).ece
