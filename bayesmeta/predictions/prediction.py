"""Predictions with uncertainty, shared by every regression learner.

A :class:`Prediction` describes the predictive distribution at each query
point as a mixture: ``S`` function values ``f_s(x)`` (samples of the task
posterior; ``S = 1`` for a point estimate) each blurred by the likelihood's
observation noise: Gaussian of standard deviation ``sigma`` (closed forms), or
any observation model ``f -> Distribution`` (a Student-t, say), whose own
log density, mean and variance are used, and whose CDF and quantiles are
computed by Monte Carlo where the distribution has no closed form. The
spread of the per-sample means is the *epistemic* part of the uncertainty,
the noise the *aleatoric* part.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import torch
from torch import Tensor
from torch.distributions import Distribution

from bayesmeta._checks import check_tensor, fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.model.likelihoods import per_output

__all__ = ["Prediction"]

_BISECTION_STEPS = 60
#: Draws of the observation noise per function sample where a likelihood's CDF
#: has no closed form (about 2000 predictive draws in all, at least 8 per sample).
_MC_DRAWS = 2000
_MC_SEED = 0


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
    observation
        The likelihood's observation model ``f -> Distribution`` (one event per
        point, the outputs folded in), used instead of Gaussian noise when
        given (``noise_scale`` must then be ``None``).

    Attributes
    ----------
    mean : Tensor
        Predictive mean ``[*B, N, O]``.

    """

    function_samples: Tensor
    noise_scale: Tensor | None = None
    observation: Callable[[Tensor], Distribution] | None = None

    def __post_init__(self) -> None:
        f = self.function_samples
        if not isinstance(f, Tensor) or f.dim() < 3:
            raise ShapeError("function_samples must be a tensor of shape [S, *B, N, O]")
        if self.observation is not None:
            if self.noise_scale is not None:
                raise ValueError(
                    "give a prediction a noise_scale or an observation model, not both"
                )
            if not callable(self.observation):
                raise TypeError("observation must be a callable f -> Distribution")
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
    def has_noise_model(self) -> bool:
        """Whether the predictive density is defined (Gaussian noise or an observation model)."""
        return self.noise_scale is not None or self.observation is not None

    @property
    def num_samples(self) -> int:
        """Number of function samples ``S``."""
        return int(self.function_samples.shape[0])

    def _observed(self) -> Distribution:
        assert self.observation is not None
        return self.observation(self.function_samples)

    def _sample_means(self) -> Tensor:
        """The mean of ``y`` under each function sample ``[S, *B, N, O]``."""
        if self.observation is None:
            return self.function_samples
        return self._observed().mean

    @property
    def mean(self) -> Tensor:
        """Predictive mean ``[*B, N, O]``."""
        return self._sample_means().mean(0)

    @property
    def epistemic_std(self) -> Tensor:
        """Spread of the per-sample means ``[*B, N, O]`` (zero for a point estimate)."""
        if self.num_samples == 1:
            return torch.zeros_like(self.mean)
        return self._sample_means().std(0, unbiased=False)

    @property
    def aleatoric_std(self) -> Tensor:
        """Observation-noise standard deviation ``[*B, N, O]``.

        For an observation model, the root of its variance averaged over the
        function samples (infinite where the variance is, e.g. a Student-t
        with ``df <= 2``).
        """
        if self.observation is not None:
            return self._observed().variance.mean(0).sqrt()
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
        if self.noise_scale is None and self.observation is None:
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
        if self.observation is not None:
            per_sample = self._observed().log_prob(y)
        else:
            dist = torch.distributions.Normal(self.function_samples, self._noise())
            per_sample = dist.log_prob(y).sum(-1)
        return torch.logsumexp(per_sample, dim=0) - math.log(self.num_samples)

    def cdf(self, y: Tensor) -> Tensor:
        """Predictive CDF at ``y`` ``[*B, N, O]``, per output (for PIT and calibration).

        For an observation model without a closed-form CDF (e.g. a Student-t),
        the fraction of Monte Carlo predictive draws at or below ``y``.
        """
        y = self.check_targets(y)
        if self.observation is not None:
            base = per_output(self._observed())
            try:
                return base.cdf(y).mean(0)
            except NotImplementedError:
                return (self.mc_draws() <= y).to(y.dtype).mean(0)
        if self.noise_scale is None:
            return (self.function_samples <= y).to(y.dtype).mean(0)
        dist = torch.distributions.Normal(self.function_samples, self.noise_scale)
        return dist.cdf(y).mean(0)

    def mc_draws(self) -> Tensor:
        """Monte Carlo predictive draws ``[M, *B, N, O]`` from the observation model, seeded.

        ``M`` is about ``_MC_DRAWS`` (at least 8 per function sample); the
        draws come from a fixed seed, so repeated calls agree and torch's
        global random state is left as it was.
        """
        per = max(8, -(-_MC_DRAWS // self.num_samples))
        f = self.function_samples
        with torch.random.fork_rng(devices=[f.device] if f.is_cuda else []):
            torch.manual_seed(_MC_SEED)
            draws = self._observed().sample((per,))
        return draws.reshape(-1, *draws.shape[2:])

    def quantile(self, q: float) -> Tensor:
        """The ``q``-quantile of the predictive distribution per point ``[*B, N, O]``."""
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile level must lie in (0, 1), got {q}")
        f = self.function_samples
        if self.observation is not None:
            return torch.quantile(self.mc_draws(), q, dim=0)
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
        if self.observation is not None:
            if generator is not None:
                seed = int(torch.randint(2**62, (1,), generator=generator))
                with torch.random.fork_rng(devices=[f.device] if f.is_cuda else []):
                    torch.manual_seed(seed)
                    return self.observation(draws).sample()
            return self.observation(draws).sample()
        if self.noise_scale is None:
            return draws
        eps = torch.randn(draws.shape, generator=generator, dtype=f.dtype).to(f.device)
        return draws + self.noise_scale * eps

    def to(self, device: torch.device | str) -> Prediction:
        """Return the prediction on ``device``."""
        noise = None if self.noise_scale is None else self.noise_scale.to(device)
        return Prediction(self.function_samples.to(device), noise, self.observation)
