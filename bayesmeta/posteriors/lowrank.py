"""Low-rank plus diagonal Gaussian task posteriors ``N(loc_t, W_t W_t^T + diag(d_t))``."""

from __future__ import annotations

from dataclasses import dataclass

import pyro.distributions as pdist
import torch
from torch import Tensor

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.guides.fixed import LowRankGuide
from bayesmeta.model.likelihoods import Observation
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import SampledPosterior, standard_normal

__all__ = ["LowRankTaskPosterior"]


@dataclass(frozen=True, eq=False)
class LowRankTaskPosterior(SampledPosterior):
    """A Gaussian posterior over one task's weights (or each of a batch's) with correlations.

    The covariance is ``cov_factor @ cov_factor^T + diag(cov_diag)``, the
    parametrisation of :class:`pyro.distributions.LowRankMultivariateNormal`
    and of Pyro's ``AutoLowRankMultivariateNormal``.

    Attributes
    ----------
    fnet : FunctionalNet
        The network the weights belong to.
    loc : Tensor
        Posterior means ``[*B, P]`` (``B = ()`` for one task, ``(T,)`` for ``T``).
    cov_factor : Tensor
        ``W``, ``[*B, P, R]`` for rank ``R``.
    cov_diag : Tensor
        ``d``, positive, ``[*B, P]``.
    noise_scale : Tensor or None
        The likelihood's observation-noise scale, for predictions.
    classification : bool
        The network's outputs are class scores (a categorical likelihood).
    elbo_trace : Tensor or None
        When the posterior was fitted by SVI, the negative ELBO (summed over
        the batch's tasks) at each step ``[steps]``: a flat tail says the fit
        converged.
    observation : callable or None
        The likelihood's observation model for predictions, where it is not
        Gaussian noise (see :class:`~bayesmeta.Prediction`).

    """

    fnet: FunctionalNet
    loc: Tensor
    cov_factor: Tensor
    cov_diag: Tensor
    noise_scale: Tensor | None = None
    classification: bool = False
    elbo_trace: Tensor | None = None
    observation: Observation | None = None

    @property
    def guide(self) -> LowRankGuide:
        """``N(loc, W W^T + diag(d))`` as a Pyro guide for the model's ``"theta"``."""
        return LowRankGuide(self.loc, self.cov_factor, self.cov_diag)

    def __post_init__(self) -> None:
        p = self.fnet.num_params
        if (
            self.loc.shape[-1:] != (p,)
            or self.cov_diag.shape != self.loc.shape
            or self.cov_factor.dim() != self.loc.dim() + 1
            or self.cov_factor.shape[:-1] != self.loc.shape
        ):
            raise ShapeError(
                f"loc [*B, P], cov_factor [*B, P, R] and cov_diag [*B, P] must share *B "
                f"and P = {p}, got {fmt_shape(self.loc.shape)}, "
                f"{fmt_shape(self.cov_factor.shape)} and {fmt_shape(self.cov_diag.shape)}"
            )
        if bool((self.cov_diag <= 0).any()):
            raise ValueError("cov_diag must be positive")

    @property
    def rank(self) -> int:
        """Rank ``R`` of the low-rank part."""
        return int(self.cov_factor.shape[-1])

    @property
    def scale(self) -> Tensor:
        """Marginal posterior standard deviations ``[*B, P]``."""
        return (self.cov_diag + self.cov_factor.pow(2).sum(-1)).sqrt()

    def covariance(self) -> Tensor:
        """The full covariance ``[*B, P, P]``."""
        w = self.cov_factor
        return w @ w.transpose(-1, -2) + torch.diag_embed(self.cov_diag)

    def distribution(self) -> pdist.LowRankMultivariateNormal:
        """The posterior as a Pyro distribution (batch shape ``B``, event ``[P]``)."""
        return pdist.LowRankMultivariateNormal(self.loc, self.cov_factor, self.cov_diag)

    def log_prob(self, theta: Tensor) -> Tensor:
        """Log density of weights ``[S, *B, P]``: ``[S, *B]``."""
        return self.distribution().log_prob(theta)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw weights ``[num_samples, *B, P]``."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        eps_w = standard_normal((num_samples, *self.batch_shape, self.rank), self.loc, generator)
        eps_d = standard_normal((num_samples, *self.loc.shape), self.loc, generator)
        low = (self.cov_factor @ eps_w.unsqueeze(-1)).squeeze(-1)
        return self.loc + low + self.cov_diag.sqrt() * eps_d
