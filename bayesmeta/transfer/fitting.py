"""Fit target-task weights under a prior centred on source weights, all tasks at once.

One objective covers the model-based transfer methods. For target task ``t``
with points ``j`` (optionally weighted by ``w_tj``, e.g. importance weights of
source points), and per-tensor prior scales ``sigma_tg``:

- ``"bayes"``: the negative ELBO of a mean-field Gaussian ``q_t(theta)``,
  ``-sum_j w_tj E_q log p(y_tj | f(x_tj; theta)) + KL(q_t || N(mu, sigma_t^2))``;
- ``"map"``: ``-sum_j w_tj log p(y_tj | f(x_tj; theta_t)) - log N(theta_t; mu, sigma_t^2)``,
  i.e. L2-SP (Li et al. 2018): weight decay towards the source weights ``mu``;
- ``"finetune"``: the data term alone, started at ``mu`` (the flat-prior limit).

The prior scales and the Gaussian noise scale are either fixed or learned by
maximising the same objective (empirical Bayes, type-II maximum likelihood
for ``"bayes"``), per task or shared by all tasks. Each task's parameters
enter only its own term, so one Adam run over the sum fits all tasks at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.distributions import Normal, kl_divergence
from tqdm.auto import tqdm

from bayesmeta.errors import NonFiniteLossError
from bayesmeta.learners.training import show_progress
from bayesmeta.model.likelihoods import categorical_point_log_prob
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import standard_normal

__all__ = ["Method", "TransferFit", "fit_transfer"]

Method = Literal["bayes", "map", "finetune"]

#: ``q`` starts at the prior's mean with this fraction of its scale when the prior
#: scale is fixed. With a learned (empirical-Bayes) scale, ``q`` starts at the prior
#: itself: weights the data do not inform then sit at the objective's optimum
#: (``q`` equal to the prior) from the start, instead of dragging the prior scale
#: down towards a narrow starting ``q``.
FIXED_PRIOR_INIT_RATIO = 0.1


@dataclass(frozen=True, eq=False)
class TransferFit:
    """The result of :func:`fit_transfer`.

    Attributes
    ----------
    loc : Tensor
        ``q``'s means, or the point estimates, ``[T, P]``.
    log_scale : Tensor or None
        ``q``'s log standard deviations ``[T, P]`` (``"bayes"`` only; zero
        spread on frozen weights is ``-inf``).
    prior_log_scale : Tensor
        Log prior scale per weight group, ``[T, G]`` or ``[1, G]`` when shared.
    log_noise : Tensor or None
        Log Gaussian noise scale per output, ``[T, O]`` or ``[1, O]``; ``None``
        for classification.
    losses : Tensor
        The objective per point, averaged over tasks, at every step ``[steps]``.

    """

    loc: Tensor
    log_scale: Tensor | None
    prior_log_scale: Tensor
    log_noise: Tensor | None
    losses: Tensor


def fit_transfer(
    fnet: FunctionalNet,
    centre: Tensor,
    groups: Tensor,
    prior_log_scale: Tensor,
    log_noise: Tensor | None,
    x: Tensor,
    y: Tensor,
    *,
    method: Method,
    weights: Tensor | None = None,
    free: Tensor | None = None,
    init: Tensor | None = None,
    learn_prior: bool = False,
    learn_noise: bool = False,
    steps: int,
    lr: float,
    num_samples: int = 4,
    generator: torch.Generator | None = None,
    progress: bool | None = False,
) -> TransferFit:
    """Fit ``T`` tasks' weights under the transfer prior ``N(centre, sigma^2)``.

    Parameters
    ----------
    fnet
        The target network.
    centre
        Prior mean ``mu`` ``[P]`` (the source weights).
    groups
        Group index of each weight ``[P]`` (long, values ``0..G-1``): weights
        of a group share a prior scale.
    prior_log_scale
        Starting log prior scales ``[T, G]`` (per task) or ``[1, G]`` (shared).
    log_noise
        Starting log noise scale ``[T, O]`` or ``[1, O]`` for a Gaussian
        likelihood; ``None`` for class labels (a categorical likelihood).
    x, y
        Inputs ``[T, N, *features]`` and targets ``[T, N, O]`` (regression) or
        labels ``[T, N]``.
    method
        ``"bayes"``, ``"map"`` or ``"finetune"`` (see the module docstring).
    weights
        Per-point likelihood weights ``[T, N]`` (default 1).
    free
        Which weights are fitted ``[P]`` (bool); the others stay at ``centre``.
    init
        Starting weights ``[P]`` (default ``centre``).
    learn_prior, learn_noise
        Learn the prior scales (``"bayes"`` only) / the noise scale.
    steps, lr
        Adam steps and learning rate (cosine-annealed to 0).
    num_samples
        Monte Carlo samples of ``q`` per step (``"bayes"``).
    generator
        Seeds the Monte Carlo noise.
    progress
        Show a progress bar (``None``: only on a terminal).

    Returns
    -------
    TransferFit

    Raises
    ------
    NonFiniteLossError
        If the objective turns NaN or infinite (nothing is updated with it).

    """
    t = x.shape[0]
    free_f = torch.ones_like(centre) if free is None else free.to(centre.dtype)
    start = centre if init is None else init
    loc = nn.Parameter(start.detach().expand(t, -1).clone())
    trainable: list[nn.Parameter] = [loc]
    log_scale: nn.Parameter | None = None
    if method == "bayes":
        ratio = 1.0 if learn_prior else FIXED_PRIOR_INIT_RATIO
        s0 = (prior_log_scale.detach()[:, groups] + math.log(ratio)).expand(t, -1)
        log_scale = nn.Parameter(s0.clone())
        trainable.append(log_scale)
    p_log = prior_log_scale.detach().clone()
    noise = None if log_noise is None else nn.Parameter(log_noise.detach().clone())
    em = learn_prior and method == "bayes"
    if noise is not None and learn_noise:
        trainable.append(noise)
    w = torch.ones(y.shape[:2], dtype=x.dtype, device=x.device) if weights is None else weights
    n = w.sum(-1).clamp_min(1e-12)  # [T]
    opt = torch.optim.Adam(trainable, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    losses = torch.empty(steps)
    show = show_progress(progress)
    for it in tqdm(range(steps), desc=f"transfer ({method})", disable=not show, leave=False):
        objective = _objective(
            fnet,
            centre,
            groups,
            p_log,
            noise,
            loc,
            log_scale,
            free_f,
            x,
            y,
            w,
            method,
            num_samples,
            generator,
        )
        value = float(objective.detach().div(n).mean())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the transfer objective ({method}) became {value} at step {it}; lower lr, "
                "or check the target data for extreme values"
            )
        losses[it] = value
        opt.zero_grad(set_to_none=True)
        objective.div(n).sum().backward()
        opt.step()
        schedule.step()
        if em:
            assert log_scale is not None
            with torch.no_grad():
                p_log.copy_(_prior_m_step(centre, groups, loc, log_scale, free_f, p_log.shape[0]))
    frozen = free_f == 0
    with torch.no_grad():
        out_loc = torch.where(frozen, centre, loc.detach())
        out_scale = None
        if log_scale is not None:
            out_scale = log_scale.detach().masked_fill(frozen, -math.inf)
    return TransferFit(
        loc=out_loc,
        log_scale=out_scale,
        prior_log_scale=p_log.detach(),
        log_noise=None if noise is None else noise.detach(),
        losses=losses,
    )


def _objective(
    fnet: FunctionalNet,
    centre: Tensor,
    groups: Tensor,
    prior_log_scale: Tensor,
    log_noise: Tensor | None,
    loc: Tensor,
    log_scale: Tensor | None,
    free: Tensor,
    x: Tensor,
    y: Tensor,
    w: Tensor,
    method: Method,
    num_samples: int,
    generator: torch.Generator | None,
) -> Tensor:
    """The objective of each task, summed over its points: ``[T]``."""
    delta = (loc - centre) * free
    p_log = prior_log_scale[:, groups]  # [T or 1, P]
    if log_scale is None:
        theta = (centre + delta).unsqueeze(0)  # [1, T, P]
    else:
        eps = standard_normal((num_samples, *loc.shape), loc, generator)
        theta = centre + delta + free * log_scale.exp() * eps  # [S, T, P]
    log_lik = point_log_lik(fnet(theta, x), y, log_noise).mul(w).sum(-1).mean(0)  # [T]
    if method == "finetune":
        return -log_lik
    prior = Normal(centre, p_log.exp())
    if log_scale is None:  # MAP: minus the log prior density of the free weights
        return -log_lik - (prior.log_prob(centre + delta) * free).sum(-1)
    kl = kl_divergence(Normal(centre + delta, log_scale.exp()), prior)
    return -log_lik + (kl * free).sum(-1)


def _prior_m_step(
    centre: Tensor, groups: Tensor, loc: Tensor, log_scale: Tensor, free: Tensor, rows: int
) -> Tensor:
    """The prior log scales that maximise the ELBO for the current ``q``: ``[rows, G]``.

    ``sigma_g^2`` is the mean of ``s^2 + (m - mu)^2`` over the free weights of
    group ``g`` (and over the tasks when ``rows == 1``), the exact maximiser of
    ``-KL(q || N(mu, sigma^2))``: a variational EM step, monotone in the ELBO.
    """
    second = ((2 * log_scale).exp() + (loc - centre).pow(2)) * free  # [T, P]
    if rows == 1:
        second = second.sum(0, keepdim=True)
    num_groups = int(groups.max()) + 1
    total = second.new_zeros(second.shape[0], num_groups).index_add_(1, groups, second)
    count = free.new_zeros(num_groups).index_add_(0, groups, free) * (loc.shape[0] // rows)
    return 0.5 * (total / count.clamp_min(1)).clamp_min(1e-12).log()


def point_log_lik(out: Tensor, y: Tensor, log_noise: Tensor | None) -> Tensor:
    """Log-likelihood of each point, ``[S, T, N]`` from outputs ``[S, T, N, O]``.

    A Gaussian with per-task (or shared) noise ``exp(log_noise)`` ``[T or 1, O]``
    for regression targets; a categorical on the logits when ``log_noise`` is
    ``None`` (``y`` holds labels ``[T, N]``).
    """
    if log_noise is None:
        return categorical_point_log_prob(out, y)
    return Normal(out, log_noise.unsqueeze(-2).exp()).log_prob(y).sum(-1)  # noise [T or 1, 1, O]
