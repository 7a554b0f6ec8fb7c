"""Predictions with uncertainty, shared by every regression learner.

A :class:`Prediction` describes the predictive distribution at each query
point as a mixture: ``S`` function values ``f_s(x)`` (samples of the task
posterior; ``S = 1`` for a point estimate) each blurred by Gaussian observation
noise of standard deviation ``sigma``. The spread of the ``f_s`` is the
*epistemic* part of the uncertainty, ``sigma`` the *aleatoric* part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import torch
from torch import Tensor

from bayesmeta.errors import ShapeError
from bayesmeta.tasks._checks import check_tensor, fmt_shape

__all__ = ["Prediction"]

_BISECTION_STEPS = 60


@dataclass(frozen=True, eq=False)
class Prediction:
    """Predictive distribution at a set of query points.

    Parameters
    ----------
    function_samples
        Function values ``[S, *B, N, O]`` from ``S`` posterior samples of the
        weights (``S = 1`` for a point estimate such as MAML's).
    noise_scale
        Observation-noise standard deviation, broadcastable to ``[*B, N, O]``
        (a scalar, one value per output, or per task), or ``None`` when no
        noise model was fitted; then only the mean (and, for ``S > 1``, the
        epistemic spread) is defined.

    Attributes
    ----------
    mean : Tensor
        Predictive mean ``[*B, N, O]``.

    """

    function_samples: Tensor
    noise_scale: Tensor | None = None

    def __post_init__(self) -> None:
        f = self.function_samples
        if not isinstance(f, Tensor) or f.dim() < 3:
            raise ShapeError("function_samples must be a tensor of shape [S, *B, N, O]")
        if self.noise_scale is not None:
            s = torch.as_tensor(self.noise_scale, dtype=f.dtype, device=f.device)
            try:
                fits = torch.broadcast_shapes(s.shape, f.shape[1:]) == f.shape[1:]
            except RuntimeError:
                fits = False
            if not fits:
                raise ShapeError(
                    f"noise_scale of shape {fmt_shape(s.shape)} does not broadcast to the "
                    f"predictions {fmt_shape(f.shape[1:])}"
                )
            if bool((s <= 0).any()) or not bool(torch.isfinite(s).all()):
                raise ValueError("noise_scale must be positive and finite")
            object.__setattr__(self, "noise_scale", s)

    @classmethod
    def point(cls, mean: Tensor, noise_scale: Tensor | None = None) -> Prediction:
        """A point prediction ``[*B, N, O]`` with optional Gaussian noise."""
        return cls(mean.unsqueeze(0), noise_scale)

    @property
    def num_samples(self) -> int:
        """Number of function samples ``S``."""
        return int(self.function_samples.shape[0])

    @property
    def mean(self) -> Tensor:
        """Predictive mean ``[*B, N, O]``."""
        return self.function_samples.mean(0)

    @property
    def epistemic_std(self) -> Tensor:
        """Spread of the function samples ``[*B, N, O]`` (zero for a point estimate)."""
        if self.num_samples == 1:
            return torch.zeros_like(self.mean)
        return self.function_samples.std(0, unbiased=False)

    @property
    def aleatoric_std(self) -> Tensor:
        """Observation-noise standard deviation ``[*B, N, O]``."""
        return self._noise().expand_as(self.mean)

    @property
    def std(self) -> Tensor:
        """Total predictive standard deviation ``sqrt(epistemic^2 + aleatoric^2)``.

        Raises
        ------
        ValueError
            For a point estimate without a noise model, whose uncertainty is
            unknown (not zero).

        """
        if self.noise_scale is None:
            if self.num_samples == 1:
                self._noise()  # raises: a bare point estimate has no spread to report
            return self.epistemic_std
        return torch.sqrt(self.epistemic_std.pow(2) + self.aleatoric_std.pow(2))

    def _noise(self) -> Tensor:
        if self.noise_scale is None:
            raise ValueError(
                "this prediction has no noise model, so its predictive density and intervals "
                "are undefined; fit one first (e.g. MAML.fit_noise_scale(batch))"
            )
        return self.noise_scale

    def check_targets(self, y: Tensor) -> Tensor:
        """Validate targets ``[*B, N, O]``; return them in the prediction's dtype and device.

        Raises
        ------
        ShapeError
            If ``y`` does not have the prediction's shape.
        ValueError
            If ``y`` holds NaN or infinite values.

        """
        yt = check_tensor("y", y)
        if yt.shape != self.mean.shape:
            raise ShapeError(
                f"y (the targets) must have the prediction's shape [*B, N, O] = "
                f"{fmt_shape(self.mean.shape)}, got {fmt_shape(yt.shape)}"
            )
        return yt.to(self.mean.device, self.mean.dtype)

    def log_prob(self, y: Tensor) -> Tensor:
        """Log predictive density of each query point.

        Parameters
        ----------
        y
            Targets ``[*B, N, O]``.

        Returns
        -------
        Tensor
            ``[*B, N]``: ``log (1/S) sum_s prod_o Normal(y_o | f_s, sigma)``.

        """
        y = self.check_targets(y)
        dist = torch.distributions.Normal(self.function_samples, self._noise())
        per_sample = dist.log_prob(y).sum(-1)
        return torch.logsumexp(per_sample, dim=0) - math.log(self.num_samples)

    def cdf(self, y: Tensor) -> Tensor:
        """Predictive CDF at ``y`` ``[*B, N, O]``, per output (for PIT and calibration)."""
        y = self.check_targets(y)
        if self.noise_scale is None:
            return (self.function_samples <= y).to(y.dtype).mean(0)
        dist = torch.distributions.Normal(self.function_samples, self.noise_scale)
        return dist.cdf(y).mean(0)

    def quantile(self, q: float) -> Tensor:
        """The ``q``-quantile of the predictive distribution per point ``[*B, N, O]``."""
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile level must lie in (0, 1), got {q}")
        f = self.function_samples
        if self.noise_scale is None:
            if self.num_samples == 1:
                self._noise()  # raises: a bare point estimate has no quantiles
            return torch.quantile(f, q, dim=0)
        sigma = self.noise_scale
        if self.num_samples == 1:
            return f[0] + sigma * NormalDist().inv_cdf(q)
        # Bisection on the mixture CDF, between bounds that contain the quantile.
        z = 8.0 * sigma.expand_as(self.mean)
        lo, hi = f.min(0).values - z, f.max(0).values + z
        dist = torch.distributions.Normal(f, sigma)
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            below = dist.cdf(mid).mean(0) < q
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def interval(self, level: float = 0.9) -> tuple[Tensor, Tensor]:
        """Central predictive interval of probability ``level``.

        Returns
        -------
        tuple of Tensor
            ``(lower, upper)``, each ``[*B, N, O]``.

        """
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must lie in (0, 1), got {level}")
        tail = 0.5 * (1.0 - level)
        return self.quantile(tail), self.quantile(1.0 - tail)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``[num_samples, *B, N, O]`` values from the predictive distribution."""
        f = self.function_samples
        idx = torch.randint(self.num_samples, (num_samples,), generator=generator, device="cpu")
        draws = f[idx.to(f.device)]
        if self.noise_scale is None:
            return draws
        eps = torch.randn(draws.shape, generator=generator, dtype=f.dtype).to(f.device)
        return draws + self.noise_scale * eps

    def to(self, device: torch.device | str) -> Prediction:
        """Return the prediction on ``device``."""
        noise = None if self.noise_scale is None else self.noise_scale.to(device)
        return Prediction(self.function_samples.to(device), noise)
