"""Diagonal Gaussian task posteriors ``q(theta_t) = N(loc_t, diag(scale_t^2))``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.guides.fixed import NormalGuide
from bayesmeta.model.likelihoods import Observation
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction

__all__ = ["GaussianTaskPosterior", "SampledPosterior", "standard_normal"]


def standard_normal(
    shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Standard normal draws of ``shape`` on ``like``'s device and dtype.

    Drawn as ``torch.distributions`` draws them (``empty(...).normal_()``), so
    that under the same seed the vectorised ELBO and Pyro's see the same noise.
    A ``generator`` of another device (a CPU generator, as seeded evaluation
    passes, for weights on a GPU) draws on its own device, and the draws are
    moved to ``like``'s: the same numbers on every device.
    """
    device = like.device if generator is None else generator.device
    out = torch.empty(shape, dtype=like.dtype, device=device).normal_(generator=generator)
    return out.to(like.device)


class SampledPosterior:
    """What every weight posterior shares: the posterior predictive from weight samples.

    Subclasses provide ``fnet``, ``loc`` (``[*B, P]``), ``noise_scale``,
    ``classification`` (the network's outputs are class scores),
    ``observation`` (the likelihood's observation model, where predictions
    are not Gaussian), ``batch_shape``, ``sample(num_samples, generator=...)``
    and ``guide`` (a Pyro guide for the model's ``"theta"`` site).
    """

    fnet: FunctionalNet
    loc: Tensor
    noise_scale: Tensor | None
    classification: bool
    observation: Observation | None = None

    @property
    def guide(self) -> Callable[..., Any]:
        """A Pyro guide ``guide(x, y=None)`` for ``learner.model``'s ``"theta"`` site.

        ``pyro.infer.Predictive(learner.model, guide=post.guide, num_samples=S)(x)``
        then draws ``"theta"`` from this posterior and ``"y"`` from the
        likelihood, agreeing with :meth:`predict`.
        """
        raise NotImplementedError(f"{type(self).__name__} has no Pyro guide")

    @property
    def batch_shape(self) -> torch.Size:
        """``()`` for one task, ``(T,)`` for a batch."""
        return self.loc.shape[:-1]

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw weights ``[num_samples, *B, P]``."""
        raise NotImplementedError

    def log_prob(self, theta: Tensor) -> Tensor:
        """Log density of weights ``[S, *B, P]`` under the posterior: ``[S, *B]``."""
        raise NotImplementedError(f"{type(self).__name__} has no density")

    def predict(
        self, query_x: Tensor, *, num_samples: int = 100, generator: torch.Generator | None = None
    ) -> Prediction | ClassPrediction:
        """Posterior predictive at ``query_x`` ``[*B, Q, *features]``.

        Parameters
        ----------
        query_x
            Query inputs, with the same batch shape as the posterior.
        num_samples
            Weight samples ``S`` (Monte Carlo over the posterior).
        generator
            Random generator for the weight samples.

        Returns
        -------
        Prediction or ClassPrediction
            For regression, ``S`` function samples ``[S, *B, Q, O]`` with the
            likelihood's noise scale: mean, epistemic and aleatoric standard
            deviations, intervals and log densities. For classification, the
            ``S`` samples' class probabilities ``[S, *B, Q, C]``: mean
            probabilities and the entropy split into aleatoric and epistemic
            (mutual information) parts.

        """
        x = self.fnet.check_inputs(
            "query_x", query_x, self.batch_shape, like=self.loc, owner="the posterior's weights"
        )
        with torch.no_grad():
            theta = self.sample(num_samples, generator=generator)
            f = self.fnet(theta, x.to(self.loc.device))
        if self.classification:
            return ClassPrediction.from_logits(f)
        return Prediction(f, self.noise_scale, self.observation)


@dataclass(frozen=True, eq=False)
class GaussianTaskPosterior(SampledPosterior):
    """The adapted posterior over the weights of one task or a batch of tasks.

    Attributes
    ----------
    fnet : FunctionalNet
        The network the weights belong to.
    loc : Tensor
        Posterior means ``[*B, P]`` (``B = ()`` for one task, ``(T,)`` for ``T``).
    log_scale : Tensor
        Log posterior standard deviations ``[*B, P]``.
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
    log_scale: Tensor
    noise_scale: Tensor | None = None
    classification: bool = False
    elbo_trace: Tensor | None = None
    observation: Observation | None = None

    def __post_init__(self) -> None:
        if self.loc.shape != self.log_scale.shape or self.loc.shape[-1:] != (self.fnet.num_params,):
            raise ShapeError(
                f"loc and log_scale must both be [*B, P] with P = {self.fnet.num_params}, got "
                f"{fmt_shape(self.loc.shape)} and {fmt_shape(self.log_scale.shape)}"
            )

    @property
    def scale(self) -> Tensor:
        """Posterior standard deviations ``[*B, P]``."""
        return self.log_scale.exp()

    @property
    def guide(self) -> NormalGuide:
        """``N(loc, diag(scale^2))`` as a Pyro guide for the model's ``"theta"``."""
        return NormalGuide(self.loc, self.scale)

    def log_prob(self, theta: Tensor) -> Tensor:
        """Log density of weights ``[S, *B, P]``: ``[S, *B]``.

        Weights with zero spread (held fixed) are left out of the density.
        """
        free = self.log_scale > -math.inf
        z = (theta - self.loc) / self.scale.where(free, 1.0)
        per = -0.5 * z * z - self.log_scale.where(free, 0.0) - 0.5 * math.log(2 * math.pi)
        return per.where(free, 0.0).sum(-1)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw weights ``[num_samples, *B, P]``."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        eps = standard_normal((num_samples, *self.loc.shape), self.loc, generator)
        return self.loc + self.scale * eps
