"""How good is a variational task posterior? The PSIS k-hat diagnostic, vectorised over tasks.

Draw ``theta_s ~ q`` and weight each draw by the exact unnormalised posterior,
``log w_s = log p(theta_s) + sum_j log p(y_j | f(x_j; theta_s)) - log q(theta_s)``.
If ``q`` were the posterior, the weights would be constant. Their upper tail is
fitted with a generalised Pareto distribution; its shape ``k`` (Yao et al.
2018, "Yes, but did it work?") reads:

- ``k < 0.5``: good, ``q`` is close to the posterior;
- ``0.5 <= k <= 0.7``: usable, ``q`` is a rough approximation;
- ``k > 0.7``: unreliable, ``q`` misses much of the posterior (typically it is
  too narrow, or misses a mode).

The tail fit is Pyro's (``pyro.infer.importance.psis_diagnostic`` and
``pyro.ops.stats.fit_generalized_pareto``); the log weights of all tasks come
from one vectorised computation rather than a Pyro trace per task (a test
checks them against Pyro's traces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pyro.ops.stats import fit_generalized_pareto
from torch import Tensor

from bayesmeta._checks import check_pair, fmt_shape
from bayesmeta.diagnostics._model import adaptation_model
from bayesmeta.errors import ShapeError
from bayesmeta.model.likelihoods import Likelihood
from bayesmeta.model.priors import GaussianPrior
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import SampledPosterior

__all__ = [
    "KHAT_GOOD",
    "KHAT_USABLE",
    "VIQuality",
    "khat_reading",
    "log_joint",
    "pareto_khat",
    "psis_diagnostic",
    "vi_quality",
]

#: ``k`` below this: ``q`` is a good approximation of the posterior.
KHAT_GOOD = 0.5
#: ``k`` up to this: usable; above it, unreliable.
KHAT_USABLE = 0.7


def khat_reading(k: float) -> str:
    """``"good"``, ``"usable"`` or ``"unreliable"`` for a k-hat value."""
    if k < KHAT_GOOD:
        return "good"
    return "usable" if k <= KHAT_USABLE else "unreliable"


@dataclass(frozen=True, eq=False)
class VIQuality:
    """The PSIS diagnostic of one task posterior or a batch.

    Attributes
    ----------
    khat : Tensor
        Pareto shape per task ``[*B]`` (``-inf`` when the weights are constant:
        ``q`` is the posterior).
    log_weights : Tensor
        The importance log weights ``[S, *B]``.

    """

    khat: Tensor
    log_weights: Tensor

    @property
    def readings(self) -> list[str]:
        """The reading of each task's ``k`` (flattened over the batch)."""
        return [khat_reading(float(k)) for k in self.khat.reshape(-1)]

    def fractions(self) -> dict[str, float]:
        """Fraction of tasks read as good, usable and unreliable."""
        r = self.readings
        return {name: r.count(name) / len(r) for name in ("good", "usable", "unreliable")}

    @property
    def relative_ess(self) -> Tensor:
        """Importance-sampling efficiency ``(sum w)^2 / (S sum w^2)`` per task ``[*B]``."""
        w = (self.log_weights - self.log_weights.amax(0)).exp()
        return w.sum(0).pow(2) / (w.pow(2).sum(0) * w.shape[0])


def log_joint(
    fnet: FunctionalNet,
    prior: GaussianPrior,
    likelihood: Likelihood,
    theta: Tensor,
    x: Tensor,
    y: Tensor,
) -> Tensor:
    """``log p(theta) + sum_j log p(y_j | f(x_j; theta))`` for weights ``[S, *B, P]``: ``[S, *B]``.

    ``x`` ``[*B, K, *features]`` and ``y`` are the tasks' support data.
    """
    return prior.log_prob(theta) + likelihood.point_log_prob(fnet(theta, x), y).sum(-1)


def pareto_khat(log_weights: Tensor) -> Tensor:
    """The generalised Pareto shape of each column's upper tail: ``[S, *B] -> [*B]``.

    Pyro's procedure per task: the largest ``min(0.2 S, 3 sqrt(S))`` weights
    form the tail. Constant weights give ``-inf``.
    """
    if log_weights.dim() < 1 or log_weights.shape[0] < 100:
        raise ValueError(
            f"need at least 100 draws per task for a tail fit, got {fmt_shape(log_weights.shape)}"
        )
    s = log_weights.shape[0]
    flat = log_weights.detach().double().reshape(s, -1)
    cut = math.ceil(min(0.2 * s, 3.0 * math.sqrt(s))) + 1
    out = torch.empty(flat.shape[1], dtype=torch.float64)
    for t in range(flat.shape[1]):
        lw = torch.sort(flat[:, t] - flat[:, t].max()).values
        if not bool(torch.isfinite(lw).all()):
            out[t] = math.inf  # q puts mass where the posterior has none
            continue
        if float(lw[-1] - lw[0]) < 1e-9:
            out[t] = -math.inf
            continue
        cutoff = max(math.log(1e-15), float(lw[-cut]))
        tail = lw[lw > cutoff]
        out[t] = (
            fit_generalized_pareto(tail.exp() - math.exp(cutoff))[0]
            if len(tail) >= 5
            else -math.inf
        )
    return out.reshape(log_weights.shape[1:]).to(log_weights.dtype)


def psis_diagnostic(
    posterior: SampledPosterior,
    prior: GaussianPrior,
    likelihood: Likelihood,
    support_x: Tensor,
    support_y: Tensor,
    *,
    num_samples: int = 1000,
    generator: torch.Generator | None = None,
) -> VIQuality:
    """PSIS k-hat of ``posterior`` against ``prior x likelihood`` on the support data.

    Parameters
    ----------
    posterior
        A weight posterior with ``sample`` and ``log_prob`` (Gaussian or
        low-rank), batch shape ``()`` or ``(T,)``.
    prior, likelihood
        The model the posterior approximates (the learner's).
    support_x, support_y
        The data it was fitted to, ``[*B, K, *features]`` and targets.
    num_samples
        Draws ``S`` from ``q`` (the tail fit needs a few hundred at least).
    generator
        Seeds the draws.

    Returns
    -------
    VIQuality

    """
    batch = tuple(posterior.batch_shape)
    x, y = check_pair("support", support_x, support_y, batch=batch, allow_empty=False)
    if prior.num_params != posterior.fnet.num_params:
        raise ShapeError(
            f"the prior is over {prior.num_params} weights but the posterior over "
            f"{posterior.fnet.num_params}"
        )
    device = posterior.loc.device
    with torch.no_grad():
        theta = posterior.sample(num_samples, generator=generator)
        lw = log_joint(
            posterior.fnet, prior, likelihood, theta, x.to(device), y.to(device)
        ) - posterior.log_prob(theta)
    return VIQuality(pareto_khat(lw), lw)


def vi_quality(
    learner: object,
    posterior: SampledPosterior,
    support_x: Tensor,
    support_y: Tensor,
    **kwargs: object,
) -> VIQuality:
    """:func:`psis_diagnostic` with the prior and likelihood a learner adapted under.

    ``BayesianMAML`` adapts under its learned ``prior``; ``VariationalMetaLearner``
    under ``learned_prior()`` (the hyper-posterior's mean). Other arguments are
    :func:`psis_diagnostic`'s.
    """
    _, prior, likelihood = adaptation_model(learner, "vi_quality", "psis_diagnostic")
    return psis_diagnostic(posterior, prior, likelihood, support_x, support_y, **kwargs)  # type: ignore[arg-type]
