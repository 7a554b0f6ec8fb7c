"""SVI for new tasks' weights under a fixed Gaussian prior, all tasks in one plate.

:func:`task_posterior_svi` fits ``q(theta_t)`` for ``T`` tasks at once with
Pyro's ``Trace_ELBO`` on the model (:class:`~bayesmeta.model.TaskModel`, the
``"tasks"`` plate), driven by a torch Adam optimiser over the guide's own
parameters only. Pyro's global parameter store is not used
(``module_local_params``), so calls never see each other's parameters.

Guides:

- ``"normal"``: Pyro's ``AutoNormal``, mean-field, one ``[T, P]`` mean and
  scale per task;
- ``"lowrank"``: per task ``N(m_t, W_t W_t^T + diag(d_t))``, parametrised as
  Pyro's ``AutoLowRankMultivariateNormal``. That autoguide itself flattens all
  latent sites into one vector, so over a plate of ``T`` tasks it would couple
  the tasks and share one rank-``R`` factor ``[T P, R]`` between them; here
  each task has its own ``[P, R]`` factor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pyro
import pyro.distributions as pdist
import torch
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroParam
from torch import Tensor, nn
from torch.distributions import constraints

from bayesmeta._seeding import seeded_by
from bayesmeta.inference.svi import run_svi
from bayesmeta.model.likelihoods import Likelihood
from bayesmeta.model.priors import WeightPrior
from bayesmeta.model.task_model import TaskModel
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import GaussianTaskPosterior
from bayesmeta.posteriors.lowrank import LowRankTaskPosterior

__all__ = ["INIT_SCALE_RATIO", "task_posterior_svi"]

#: Guides start at the prior mean with this fraction of the prior scale. Posteriors
#: are narrower than priors once data are seen, and a narrow start keeps the first
#: Monte Carlo gradients quiet (a start at the full prior scale, with a network's
#: many weights, makes the first function samples mostly noise).
INIT_SCALE_RATIO = 0.1


def task_posterior_svi(
    fnet: FunctionalNet,
    prior: WeightPrior,
    likelihood: Likelihood,
    x: Tensor,
    y: Tensor,
    *,
    guide: Literal["normal", "lowrank"] = "normal",
    rank: int = 10,
    steps: int,
    lr: float,
    num_particles: int = 1,
    generator: torch.Generator | None = None,
) -> GaussianTaskPosterior | LowRankTaskPosterior:
    """Fit each task's weight posterior by SVI; the prior and likelihood stay fixed.

    Parameters
    ----------
    fnet, prior, likelihood
        The model ``theta_t ~ prior``, ``y_t ~ likelihood(f(x_t; theta_t))``.
    x, y
        Data ``[T, K, *features]`` and targets (already checked).
    guide
        ``"normal"`` or ``"lowrank"`` (see the module docstring).
    rank
        Rank ``R`` of the low-rank guide.
    steps, lr
        Adam steps, and the learning rate, annealed to 0 on a cosine so that
        the last iterates settle instead of jittering at the Monte Carlo noise.
    num_particles
        ELBO samples per step (vectorised).
    generator
        Seeds the ELBO noise (and the low-rank factor's random start) without
        touching torch's global generator; ``None`` draws from the global one.

    Returns
    -------
    GaussianTaskPosterior or LowRankTaskPosterior
        Batch shape ``[T]``, with the likelihood's noise scale for predictions
        and the negative ELBO of every step in ``elbo_trace``.

    Raises
    ------
    NonFiniteLossError
        If the ELBO turns NaN or infinite.

    """
    if guide not in ("normal", "lowrank"):
        raise ValueError(
            f"guide must be 'normal' or 'lowrank', got {guide!r}; for any other Pyro guide "
            "use bayesmeta.inference.fit_guide (or learner.adapt(..., guide=AutoGuideClass))"
        )
    model = TaskModel(fnet, prior, likelihood)
    noise = likelihood.noise_scale()
    noise = None if noise is None else noise.detach()
    with seeded_by(generator, x.device), pyro.settings.context(module_local_params=True):
        if guide == "normal":
            auto = _auto_normal(model, prior, x, y)
            trace = run_svi(model, auto, list(auto.parameters()), x, y, steps, lr, num_particles)
            with torch.no_grad():
                loc, scale = auto.locs.theta.detach(), auto.scales.theta.detach()
            return GaussianTaskPosterior(
                fnet,
                loc,
                scale.log(),
                noise,
                likelihood.classification,
                elbo_trace=trace,
                observation=likelihood.observation(),
            )
        lowrank = _LowRankGuide(prior, x.shape[0], rank)
        trace = run_svi(model, lowrank, list(lowrank.parameters()), x, y, steps, lr, num_particles)
        with torch.no_grad():
            loc, factor, diag = (t.detach() for t in lowrank.parts())
        return LowRankTaskPosterior(
            fnet,
            loc,
            factor,
            diag,
            noise,
            likelihood.classification,
            elbo_trace=trace,
            observation=likelihood.observation(),
        )


class _LowRankGuide(nn.Module):
    """Per task ``N(loc, W W^T + diag(d))``, ``d = s^2``, ``W = factor * s``, ``s = softplus(raw)``.

    Pyro's ``AutoLowRankMultivariateNormal`` parametrisation and start
    (``s = init_scale / sqrt(2)``, ``factor ~ N(0, 1 / R)``: marginal variances
    near ``init_scale^2``), with ``init_scale = INIT_SCALE_RATIO * prior scale``.
    """

    def __init__(self, prior: WeightPrior, num_tasks: int, rank: int) -> None:
        super().__init__()
        loc = prior.loc.detach()
        s = (prior.scale.detach() * (INIT_SCALE_RATIO * 0.5**0.5)).expand(num_tasks, -1)
        self.loc = nn.Parameter(loc.expand(num_tasks, -1).clone())
        self.raw_scale = nn.Parameter(s + torch.log(-torch.expm1(-s)))  # softplus^-1
        shape = (num_tasks, loc.shape[0], rank)
        self.factor = nn.Parameter(
            torch.randn(shape, dtype=loc.dtype, device=loc.device) / rank**0.5
        )

    def parts(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(loc [T, P], W [T, P, R], d [T, P])``."""
        s = nn.functional.softplus(self.raw_scale)
        return self.loc, self.factor * s.unsqueeze(-1), s * s

    def forward(self, x: Tensor, y: Tensor) -> None:
        loc, factor, diag = self.parts()
        with pyro.plate("tasks", x.shape[0], dim=-1):
            pyro.sample("theta", pdist.LowRankMultivariateNormal(loc, factor, diag))


def _auto_normal(model: Callable[..., Any], prior: WeightPrior, x: Tensor, y: Tensor) -> AutoNormal:
    """``AutoNormal`` with every task's ``q`` at the prior mean and ``INIT_SCALE_RATIO`` scale."""
    guide = AutoNormal(model)
    with pyro.poutine.block():
        guide(x, y)  # builds the guide's sites from the model
    t = x.shape[0]
    loc, scale = prior.loc.detach(), prior.scale.detach() * INIT_SCALE_RATIO
    guide.locs.theta = PyroParam(loc.expand(t, -1).clone(), constraints.real, event_dim=1)
    guide.scales.theta = PyroParam(scale.expand(t, -1).clone(), guide.scale_constraint, event_dim=1)
    return guide
