"""Simulation-based calibration (SBC) of task-posterior inference.

Talts et al. (2018): draw weights from the prior, ``theta_n ~ p(theta)``, then
data from the likelihood, ``y_n ~ p(y | f(x; theta_n))``, infer the posterior
``q_n`` from ``(x, y_n)`` and rank each summary ``s(theta_n)`` among ``L``
draws from ``q_n``. If inference is exact, the ranks are uniform on
``0..L``, whatever the model: a U shape says the posteriors are too narrow, a
hump too wide, a slope biased. Summaries are a few weights and the function's
value at a few inputs. All ``N`` simulated tasks are adapted as one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.diagnostics._model import adaptation_model, draw_targets
from bayesmeta.model.likelihoods import CategoricalLikelihood, GaussianLikelihood, Likelihood
from bayesmeta.model.priors import GaussianPrior
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import SampledPosterior

__all__ = ["SBCResult", "learner_sbc", "simulation_based_calibration"]


@dataclass(frozen=True, eq=False)
class SBCResult:
    """Ranks of the true summaries among posterior draws.

    Attributes
    ----------
    ranks : Tensor
        ``[N, M]``: for each of ``N`` simulations and ``M`` summaries, how many
        of the ``L`` posterior draws fall below the true value (``0..L``).
    num_draws : int
        ``L``.
    names : tuple of str
        The summaries' names, ``M``.

    """

    ranks: Tensor
    num_draws: int
    names: tuple[str, ...]

    def histogram(self, bins: int = 10) -> Tensor:
        """Rank counts per summary ``[M, bins]`` (equal-width bins over ``0..L``)."""
        check_count("bins", bins, minimum=2)
        idx = (self.ranks.double() * bins / (self.num_draws + 1)).long().clamp_max(bins - 1)
        hist = torch.zeros(self.ranks.shape[1], bins, dtype=torch.long)
        return hist.scatter_add_(1, idx.T, torch.ones_like(idx.T))

    def p_values(self, bins: int = 10) -> Tensor:
        """Chi-square test of uniform ranks per summary ``[M]`` (small: miscalibrated)."""
        hist = self.histogram(bins).double()
        expected = hist.sum(1, keepdim=True) / bins
        stat = ((hist - expected).pow(2) / expected).sum(1)
        return torch.special.gammaincc(torch.tensor((bins - 1) / 2.0), stat / 2.0)

    def mean_rank(self) -> Tensor:
        """Mean rank per summary, scaled to ``[0, 1]`` (0.5 when calibrated) ``[M]``."""
        return self.ranks.double().mean(0) / self.num_draws


def simulation_based_calibration(
    fnet: FunctionalNet,
    prior: GaussianPrior,
    likelihood: Likelihood,
    adapt: Callable[[Tensor, Tensor], SampledPosterior],
    design_x: Tensor,
    *,
    num_simulations: int = 200,
    num_draws: int = 99,
    weights: Sequence[int] | None = None,
    function_x: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> SBCResult:
    """Run SBC for an inference procedure ``adapt`` under ``prior`` and ``likelihood``.

    Parameters
    ----------
    fnet, prior, likelihood
        The model the data are simulated from (Gaussian or categorical
        likelihood).
    adapt
        ``adapt(x [N, K, *features], y) -> posterior`` with ``sample`` (batch
        ``[N]``): the inference being checked, e.g. a learner's ``adapt``.
    design_x
        The inputs of every simulated task ``[K, *features]``.
    num_simulations
        ``N``.
    num_draws
        Posterior draws ``L`` per simulation.
    weights
        Indices of weights to use as summaries (default: the first weight of
        each parameter tensor).
    function_x
        Inputs ``[Q, *features]`` whose function values (first output) are
        also summaries (default: none).
    generator
        Seeds the simulations and draws.

    Returns
    -------
    SBCResult

    """
    n = check_count("num_simulations", num_simulations, minimum=2)
    check_count("num_draws", num_draws, minimum=1)
    x1 = fnet.check_inputs("design_x", design_x, ())
    if weights is None:
        starts = [sum(fnet.numels[:i]) for i in range(len(fnet.numels))]
        idx = torch.tensor(starts)
        names = [f"{name}[0]" for name in fnet.names]
    else:
        idx = torch.as_tensor(list(weights), dtype=torch.long)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= fnet.num_params):
            raise ValueError(f"weights must index 0..{fnet.num_params - 1}, got {list(weights)}")
        names = [f"weight {int(i)}" for i in idx]
    fx = None if function_x is None else fnet.check_inputs("function_x", function_x, ())
    if fx is not None:
        names += [f"f(x_{q})" for q in range(fx.shape[0])]
    with torch.no_grad():
        loc, scale = prior.loc.detach(), prior.scale.detach()
        eps = torch.randn((n, loc.shape[0]), generator=generator, dtype=loc.dtype)
        theta = loc + scale * eps.to(loc.device)  # [N, P]
        x = x1.to(loc.device).expand(n, *x1.shape)
        y = _simulate(likelihood, fnet(theta, x), generator)
    posterior = adapt(x, y)
    with torch.no_grad():
        draws = posterior.sample(num_draws, generator=generator)  # [L, N, P]
        truth = _summaries(fnet, theta.unsqueeze(0), idx, fx, n)  # [1, N, M]
        ranks = (_summaries(fnet, draws, idx, fx, n) < truth).sum(0)
    return SBCResult(ranks.cpu(), num_draws, tuple(names))


def learner_sbc(learner: object, design_x: Tensor, **kwargs: object) -> SBCResult:
    """SBC of a learner's own ``adapt`` under the prior and likelihood it adapts with.

    ``BayesianMAML`` (its ``prior``) and ``VariationalMetaLearner`` (its
    ``learned_prior()``); other arguments are
    :func:`simulation_based_calibration`'s.
    """
    fnet, prior, likelihood = adaptation_model(
        learner, "learner_sbc", "simulation_based_calibration"
    )
    adapt = learner.adapt  # type: ignore[attr-defined]
    return simulation_based_calibration(fnet, prior, likelihood, adapt, design_x, **kwargs)  # type: ignore[arg-type]


def _simulate(likelihood: Likelihood, out: Tensor, generator: torch.Generator | None) -> Tensor:
    """Targets drawn from ``p(y | out)``: ``[N, K, O]`` values or ``[N, K]`` labels."""
    if isinstance(likelihood, GaussianLikelihood):
        return draw_targets(out, likelihood.scale.detach(), False, generator)
    if isinstance(likelihood, CategoricalLikelihood):
        return draw_targets(out, None, True, generator)
    observation = likelihood.observation()
    if observation is not None:  # the likelihood's own distribution (e.g. Student-t)
        return draw_targets(out, None, False, generator, observation)
    raise TypeError(
        f"cannot simulate data from a {type(likelihood).__name__}: SBC needs a generative "
        "likelihood (a distribution to draw from, not the squared-error loss)"
    )


def _summaries(
    fnet: FunctionalNet, theta: Tensor, idx: Tensor, fx: Tensor | None, n: int
) -> Tensor:
    """Summaries ``[S, N, M]`` of weights ``[S, N, P]``."""
    parts = [theta[..., idx.to(theta.device)]]
    if fx is not None:
        xq = fx.to(theta.device).expand(n, *fx.shape)
        parts.append(fnet(theta, xq)[..., 0])
    return torch.cat(parts, -1)
