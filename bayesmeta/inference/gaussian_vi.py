"""Variational inference for diagonal Gaussian task posteriors, vectorised over tasks.

The task objective is the negative ELBO per data point,

    F_t(q) = E_q[ mean_j -log p(y_tj | f(x_tj; theta)) ] + kl_weight * KL(q || p) / N_t,

estimated with ``S`` reparameterised samples ``theta = loc + scale * eps``.
:func:`free_energy` computes it for all tasks at once; a test checks that
``N_t * F_t`` summed over tasks equals Pyro's ``TraceMeanField_ELBO`` loss on
the learner's model (:class:`~bayesmeta.model.TaskModel`) with a
:class:`~bayesmeta.guides.NormalGuide`.
:func:`gaussian_steps` adapts ``q`` by gradient steps on ``F_t`` (Bayesian MAML's
inner loop), with the gradients written out so that they stay differentiable
for the outer (second-order) meta-gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from bayesmeta.model.likelihoods import Likelihood
from bayesmeta.model.priors import GaussianPrior, Normal, WeightPrior
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.nets.losses import ScaledLoss
from bayesmeta.posteriors.gaussian import standard_normal

__all__ = [
    "DistributionLoss",
    "Route",
    "ScaleUpdate",
    "free_energy",
    "gaussian_steps",
]

ScaleUpdate = Literal["gradient", "natural"]
Route = Literal["auto", "autograd"]


class DistributionLoss:
    """The mean negative log-likelihood per point from the likelihood's distribution.

    ``(out, y) -> -mean_n log p(y_n | out_n)`` ``[*B]``, computed from
    ``likelihood.distribution(out).log_prob(y)`` and with no closed-form output
    gradient, so that inner loops differentiate it by autograd: the generic
    route that the fast paths are tested against.
    """

    def __init__(self, likelihood: Likelihood) -> None:
        self.likelihood = likelihood

    def __call__(self, out: Tensor, y: Tensor) -> Tensor:
        """``[*B]``."""
        return -self.likelihood.distribution(out).log_prob(y).mean(-1)


def free_energy(
    fnet: FunctionalNet,
    prior: GaussianPrior,
    likelihood: Likelihood,
    loc: Tensor,
    log_scale: Tensor,
    x: Tensor,
    y: Tensor,
    *,
    num_samples: int = 1,
    kl_weight: float = 1.0,
    eps: Tensor | None = None,
) -> Tensor:
    """Negative ELBO per data point of each task.

    Parameters
    ----------
    fnet, prior, likelihood
        The model.
    loc, log_scale
        Variational parameters ``[*B, P]``.
    x, y
        Data ``[*B, N, *features]`` and targets.
    num_samples
        Monte Carlo samples ``S`` (ignored when ``eps`` is given).
    kl_weight
        Weight of the KL term (1 for the ELBO).
    eps
        Standard normal noise ``[S, *B, P]`` to use instead of fresh draws.

    Returns
    -------
    Tensor
        ``[*B]``.

    """
    if eps is None:
        eps = standard_normal((num_samples, *loc.shape), loc)
    theta = loc + log_scale.exp() * eps
    data = likelihood(fnet(theta, x), y).mean(0)  # [S, *B] -> [*B]
    kl = prior.kl_from(loc, log_scale)
    return data + kl_weight * kl / x.shape[-1 - fnet.feature_dims]


def gaussian_steps(
    fnet: FunctionalNet,
    prior: WeightPrior,
    likelihood: Likelihood,
    x: Tensor,
    y: Tensor,
    *,
    steps: int,
    lr: float,
    num_samples: int = 1,
    kl_weight: float = 1.0,
    differentiable: bool = True,
    first_order: bool = False,
    init: tuple[Tensor, Tensor] | None = None,
    generator: torch.Generator | None = None,
    scale_update: ScaleUpdate = "gradient",
    scale_rate: float = 0.5,
    route: Route = "auto",
) -> tuple[Tensor, Tensor]:
    """Adapt ``q(theta_t)`` by gradient steps on each task's free energy.

    Every task starts from the prior (``loc = prior.loc``, ``log_scale =
    log prior.scale``) unless ``init`` is given, and takes ``steps`` steps of
    size ``lr`` on :func:`free_energy` of its own data, all tasks at once.

    Parameters
    ----------
    fnet, prior, likelihood
        The model. A :class:`~bayesmeta.priors.Normal` prior's part of the
        objective is exact (a proximal step on the mean, its precision in the
        natural update); any other prior's enters through the gradient of its
        log density at the same draws (and, for the natural update, the same
        reparameterisation estimate of its curvature as the data term's),
        with ``q`` started at the prior's location and standard deviation.
    x, y
        Support data ``[T, K, *features]`` and targets.
    steps, lr
        Number and size of the steps; each step is preconditioned by
        ``likelihood.step_scale()`` (``2 sigma^2`` for a Gaussian likelihood,
        so that ``lr`` means what it means for MAML on the squared error).
    num_samples
        Reparameterised samples per step.
    kl_weight
        Weight of the KL term.
    differentiable
        Keep the graph to the prior's and likelihood's parameters (for
        meta-training); ``False`` returns detached results.
    first_order
        Treat each step's gradient as a constant.
    init
        Starting ``(loc, log_scale)``, each ``[T, P]``.
    generator
        Random generator for the reparameterisation noise. With ``T >= steps``
        one ``[S, T, P]`` draw is rotated over the tasks from step to step
        (each task's draws stay independent across its own steps); otherwise
        every step draws afresh.
    scale_update
        How ``q``'s scales move. ``"gradient"``: gradient steps on
        ``log scale``, like the mean's. ``"natural"``: a natural-gradient
        (variational online Newton) step on the precision ``lambda = 1 / s^2``,
        ``lambda' = (1 - rate) lambda + rate (K h / kl_weight + 1 / sigma^2)``,
        with ``h = max(E[g eps] / s, 0)`` the reparameterisation estimate of the
        data term's diagonal curvature: the scales then reach their
        data-determined size in a few steps (gradient steps on ``log s`` move
        by ``O(s^2)``, i.e. hardly at all for a tight prior), and never exceed
        the prior's. Needs ``kl_weight > 0``.
    scale_rate
        The ``rate`` of the natural update, in ``(0, 1]``.
    route
        How the data term's gradient is computed. ``"auto"``: the registered
        fast path where there is one (a likelihood's closed-form output
        gradient and the network's batched backward pass, e.g. an MLP), else
        autograd. ``"autograd"``: always autograd through the network on the
        likelihood's Pyro distribution ``log_prob`` (the generic route; the
        fast path is tested equal to it step for step).

    Returns
    -------
    tuple of Tensor
        ``(loc, log_scale)``, each ``[T, P]``.

    """
    if scale_update not in ("gradient", "natural"):
        raise ValueError(f"scale_update must be 'gradient' or 'natural', got {scale_update!r}")
    if scale_update == "natural" and not (kl_weight > 0 and 0 < scale_rate <= 1):
        raise ValueError(
            "the natural scale update needs kl_weight > 0 and 0 < scale_rate <= 1, got "
            f"kl_weight={kl_weight}, scale_rate={scale_rate}"
        )
    t = x.shape[0]
    # A Normal prior's part of the objective is taken in closed form (below); any
    # other prior's (Laplace, Student-t) by the gradient and curvature of its log
    # density at the same draws, through autograd.
    closed = isinstance(prior, Normal)
    p_loc = prior.loc
    p_log_scale = prior.log_scale_per_weight() if closed else prior.stddev().log()
    if init is None:
        loc, log_scale = p_loc.expand(t, -1), p_log_scale.expand(t, -1)
    else:
        loc, log_scale = init
    step = lr * likelihood.step_scale()
    if not differentiable:
        loc, log_scale = loc.detach(), log_scale.detach()
        p_loc, p_log_scale = p_loc.detach(), p_log_scale.detach()
        step = step.detach() if isinstance(step, Tensor) else step
    second_order = differentiable and not first_order
    s = num_samples
    xs = x.unsqueeze(0).expand(s, *x.shape).reshape(s * t, *x.shape[1:])
    ys = y.unsqueeze(0).expand(s, *y.shape).reshape(s * t, *y.shape[1:])
    # With c = kl_weight / K, v = sigma^2 the prior variance and g the gradient
    # of the data term, the free energy's prior part is stiff in loc: its
    # curvature is c / v, and with a = step c / v > 2 (a tight learned prior)
    # plain gradient steps oscillate and blow up. That part is therefore taken
    # implicitly (a proximal step, exact for this quadratic):
    #   loc' = argmin_m  step <g, m> + |m - loc|^2 / 2 + a |m - mu|^2 / 2
    #        = (loc - step g + a mu) / (1 + a),
    # which keeps the fixed point and is the plain step when a -> 0. In log s
    # the prior part's curvature is 2 c s^2 / v, so a step of it is
    # 2 step c (s / sigma)^2, small while q's scale stays near the prior's
    # (where it starts; the data only shrink it): there the plain step
    #   log s' = log s - step (s E[g eps] + c s^2 / v - c)
    #          = log s + step c - s (E[step g eps] + a s)
    # is used. The prior's part is folded into per-weight constants computed
    # once, and `step` scales the loss (the small output gradient) rather than g.
    p_precision = (-2.0 * p_log_scale).exp()
    grow = step * kl_weight / x.shape[1]
    a = grow * p_precision
    keep = 1.0 / (1.0 + a)
    pull = (1.0 - keep) * p_loc
    natural = scale_update == "natural"
    # Started at the prior, every task shares the prior's [P] scale and
    # precision in the first step: broadcasting them skips [T, P] passes.
    at_prior = init is None
    if natural:
        # The natural update keeps the precision as its state: scale = rsqrt.
        precision = p_precision.expand(t, -1) if at_prior else (-2.0 * log_scale).exp()
        prior_part = scale_rate * p_precision
        data_part = scale_rate / grow
    if route not in ("auto", "autograd"):
        raise ValueError(f"route must be 'auto' or 'autograd', got {route!r}")
    scaled = ScaledLoss(likelihood if route == "auto" else DistributionLoss(likelihood), step)
    shape = (t, loc.shape[-1]) if s == 1 else (s, t, loc.shape[-1])
    # Noise: with at least as many tasks as steps, one draw serves all steps,
    # rotated over the tasks (task t uses row t - i at step i), so that each
    # task's noise is still independent across its steps and samples. Drawing
    # normals, not arithmetic, dominated the cost of a variational step.
    rotate = t >= steps
    if rotate:
        base = standard_normal(shape, loc, generator)
    with torch.enable_grad():
        for i in range(steps):
            first = i == 0 and at_prior
            eps = base.roll(i, dims=-2) if rotate else standard_normal(shape, loc, generator)
            if first:
                scale = p_log_scale.exp()
            else:
                scale = precision.rsqrt() if natural else log_scale.exp()
            noise = scale * eps
            theta = loc + noise
            if not second_order:
                theta = theta.detach()
            if not closed:
                # d(-log p)/d theta and E[. eps] (or E[. noise] for the natural update)
                prior_g = prior.neg_log_prob_grad(theta, create_graph=second_order)
                prior_g_eps = prior_g * (noise if natural else eps)
                if s > 1:
                    prior_g, prior_g_eps = prior_g.mean(0), prior_g_eps.mean(0)
            params = fnet.unflatten(theta.reshape(s * t, -1))
            grads = fnet.loss_grad(params, xs, ys, scaled, create_graph=second_order)
            step_g = fnet.flatten(grads).reshape(shape)
            # E[step g eps] (gradient update), or E[step g eps / s] = E[step g noise] p
            # (natural update; a product, cheaper to differentiate than a division).
            step_g_eps = step_g * (noise if natural else eps)
            if s > 1:
                step_g, step_g_eps = step_g.mean(0), step_g_eps.mean(0)
            if not second_order:
                step_g, step_g_eps = step_g.detach(), step_g_eps.detach()
            # Plain products, not addcmul: addcmul's backward spends an extra
            # pass per input multiplying by its `value`.
            if not closed:
                loc = loc - step_g - grow * prior_g
                if natural:
                    curvature = (step_g_eps * precision).relu()
                    prior_h = (prior_g_eps * precision).relu()  # E[g_prior eps] / s
                    kept = (1.0 - scale_rate) * precision + scale_rate * prior_h
                    precision = kept + curvature * data_part
                else:
                    log_scale = log_scale + grow - scale * (step_g_eps + grow * prior_g_eps)
            elif natural:
                loc = keep * (loc - step_g) + pull
                curvature = (step_g_eps * precision).relu()  # step * h, clipped at 0
                if first:  # (1 - rate) prior + rate prior = prior
                    precision = p_precision + curvature * data_part
                else:
                    kept = torch.add(prior_part, precision, alpha=1.0 - scale_rate)
                    precision = kept + curvature * data_part
            else:
                loc = keep * (loc - step_g) + pull
                log_scale = log_scale + grow - scale * (step_g_eps + a * scale)
            if not differentiable:
                loc, log_scale = loc.detach(), log_scale.detach()
                if natural:
                    precision = precision.detach()
    if natural:
        log_scale = -0.5 * precision.log()
    return loc, log_scale
