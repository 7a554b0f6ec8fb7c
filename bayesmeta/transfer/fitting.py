"""Fit target-task weights under a prior centred on source weights, all tasks at once.

The target tasks are one Pyro model, :class:`TransferModel`: in the plate
``"tasks"`` (dim -2), the free weights ``theta_t`` ``[T, 1, F]`` are drawn from
``N(mu, sigma_t^2)`` (per-tensor scales ``sigma_tg``, per task or shared) or,
for fine-tuning, from an improper flat prior; the frozen weights stay at the
source weights ``mu``; and in the plate ``"points"`` (dim -1), each target
``y_tj`` from a Gaussian on ``f(x_tj; theta_t)`` (noise per task or shared)
or a categorical on its logits. ``poutine.scale`` weights point ``j`` of task
``t`` by ``w_tj`` (e.g. importance weights of source points) and each task by
``1 / n_t`` (``n_t = sum_j w_tj``), so every task counts the same. Each method
is a guide and a Pyro ELBO on that model:

- ``"bayes"``: a mean-field Gaussian ``q_t(theta)`` under
  ``TraceMeanField_ELBO``: ``-sum_j w_tj E_q log p(y_tj | theta) + KL(q_t || prior)``,
  the KL in closed form (``kl_divergence``);
- ``"map"``: a ``Delta`` guide under ``Trace_ELBO``, i.e. minus the log joint
  density at ``theta_t``: L2-SP (Li et al. 2018), weight decay towards ``mu``;
- ``"finetune"``: a ``Delta`` guide under the flat prior: the data term alone,
  started at ``mu``.

The prior scales and the Gaussian noise scale are either fixed or learned by
maximising the same objective (empirical Bayes, type-II maximum likelihood
for ``"bayes"``: a closed-form EM step for the prior scales), per task or
shared by all tasks. Each task's parameters enter only its own term, so one
Adam run over the sum fits all tasks at once.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, cast

import pyro
import pyro.distributions as pdist
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch import Tensor, nn
from tqdm.auto import tqdm

from bayesmeta._progress import show_progress
from bayesmeta.errors import NonFiniteLossError
from bayesmeta.inference.svi import seeded_by
from bayesmeta.nets.functional import FunctionalNet

__all__ = ["Method", "TransferFit", "TransferModel", "fit_transfer", "transfer_loss"]

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


class TransferModel:
    """The Pyro model of ``T`` target tasks and its guides (see the module docstring).

    Parameters
    ----------
    fnet
        The target network.
    centre
        Prior mean ``mu`` ``[P]`` (the source weights).
    free
        Which weights are fitted ``[P]`` (bool; default all); the others stay
        at ``centre``.
    x, y
        Inputs ``[T, N, *features]`` and targets ``[T, N, O]`` or labels ``[T, N]``.
    weights
        Per-point likelihood weights ``[T, N]`` (default 1).

    """

    def __init__(
        self,
        fnet: FunctionalNet,
        centre: Tensor,
        free: Tensor | None,
        x: Tensor,
        y: Tensor,
        weights: Tensor | None = None,
    ) -> None:
        self.fnet, self.centre, self.x, self.y = fnet, centre, x, y
        mask = torch.ones_like(centre, dtype=torch.bool) if free is None else free.bool()
        self.index = mask.nonzero().squeeze(-1)  # [F]
        self.centre_free = centre[self.index]
        w = torch.ones(y.shape[:2], dtype=x.dtype, device=x.device) if weights is None else weights
        self.observed = w > 0  # zero-weight points are masked out (a scale must be positive)
        self.point_scale = torch.where(self.observed, w, torch.ones_like(w))  # [T, N]
        self.task_scale = w.sum(-1).clamp_min(1e-12).reciprocal().unsqueeze(-1)  # [T, 1]

    def full(self, theta: Tensor) -> Tensor:
        """All ``P`` weights from the free ones: ``[*B, F] -> [*B, P]`` (frozen at ``centre``)."""
        if self.index.numel() == self.centre.numel():
            return theta
        return self.centre.expand(*theta.shape[:-1], -1).index_copy(-1, self.index, theta)

    def model(self, prior_scale: Tensor | None, log_noise: Tensor | None) -> None:
        """``theta ~ N(mu, prior_scale^2)`` (flat if ``None``) per task; ``y`` given ``theta``.

        ``prior_scale`` is per free weight, ``[T, F]`` or ``[1, F]``;
        ``log_noise`` ``[T, O]`` or ``[1, O]``, or ``None`` for class labels.
        """
        t, n = self.point_scale.shape
        shape = torch.Size([t, 1, self.index.numel()])
        prior: pdist.TorchDistribution
        if prior_scale is None:
            prior = pdist.ImproperUniform(pdist.constraints.real, shape[:-1], shape[-1:])
        else:
            prior = pdist.Normal(self.centre_free, prior_scale.unsqueeze(-2)).expand(shape)
            prior = prior.to_event(1)
        with pyro.plate("tasks", t, dim=-2), poutine.scale(scale=self.task_scale):
            theta = pyro.sample("theta", prior)  # [*S, T, 1, F]
            out = self.fnet(self.full(theta.squeeze(-2)), self.x)  # [*S, T, N, O]
            like: pdist.TorchDistribution
            if log_noise is None:
                like = pdist.Categorical(logits=out)
            else:
                like = pdist.Normal(out, log_noise.exp().unsqueeze(-2)).to_event(1)
            with (
                pyro.plate("points", n, dim=-1),
                poutine.mask(mask=cast(torch.BoolTensor, self.observed)),
                poutine.scale(scale=self.point_scale),
            ):
                pyro.sample("y", like, obs=self.y)

    def guide(self, loc: Tensor, log_scale: Tensor | None) -> None:
        """``q(theta_t)``: ``N(loc, exp(log_scale)^2)``, or a point mass at ``loc`` if ``None``.

        ``loc`` and ``log_scale`` are ``[T, F]`` (the free weights).
        """
        q: pdist.TorchDistribution
        if log_scale is None:
            q = pdist.Delta(loc.unsqueeze(-2), event_dim=1)
        else:
            q = pdist.Normal(loc.unsqueeze(-2), log_scale.exp().unsqueeze(-2)).to_event(1)
        with pyro.plate("tasks", loc.shape[0], dim=-2), poutine.scale(scale=self.task_scale):
            pyro.sample("theta", q)


def transfer_loss(
    problem: TransferModel,
    method: Method,
    prior_scale: Tensor | None,
    log_noise: Tensor | None,
    loc: Tensor,
    log_scale: Tensor | None,
    num_samples: int = 1,
) -> Tensor:
    """Pyro's negative ELBO of ``problem``: the sum over tasks of each task's objective / ``n_t``.

    Parameters
    ----------
    problem
        The model and guides.
    method
        ``"bayes"``: ``TraceMeanField_ELBO`` (the KL in closed form) with
        ``num_samples`` vectorised particles; ``"map"``, ``"finetune"``:
        ``Trace_ELBO`` on the point mass (``log_scale=None``).
    prior_scale
        Prior standard deviation per free weight, ``[T, F]`` or ``[1, F]``
        (ignored for ``"finetune"``, whose prior is flat).
    log_noise
        Log Gaussian noise scale ``[T, O]`` or ``[1, O]``; ``None`` for labels.
    loc, log_scale
        The guide's parameters ``[T, F]`` (``log_scale=None``: a point mass).
    num_samples
        Monte Carlo particles (``"bayes"``).

    Returns
    -------
    Tensor
        The differentiable loss (a scalar); divided by ``T``, the objective
        per point averaged over tasks.

    """
    elbo = (
        TraceMeanField_ELBO(
            num_particles=num_samples, vectorize_particles=True, max_plate_nesting=2
        )
        if method == "bayes"
        else Trace_ELBO(max_plate_nesting=2)
    )
    prior_args = (None if method == "finetune" else prior_scale, log_noise)
    loss: Tensor = elbo.differentiable_loss(
        lambda: problem.model(*prior_args), lambda: problem.guide(loc, log_scale)
    )
    return loss


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
        Starting weights ``[P]`` or ``[T, P]`` (default ``centre``).
    learn_prior, learn_noise
        Learn the prior scales (``"bayes"`` only) / the noise scale.
    steps, lr
        Adam steps and learning rate (cosine-annealed to 0).
    num_samples
        Monte Carlo samples of ``q`` per step (``"bayes"``).
    generator
        Seeds the Monte Carlo noise (Pyro draws from torch's global generator,
        seeded from this one for the run; see
        :func:`~bayesmeta.inference.svi.seeded_by`).
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
    problem = TransferModel(fnet, centre, free, x, y, weights)
    idx = problem.index
    groups_free = groups[idx]
    start = (centre if init is None else init).detach()[..., idx]
    loc = nn.Parameter(start.expand(t, -1).clone())  # [T, F]
    trainable: list[nn.Parameter] = [loc]
    log_scale: nn.Parameter | None = None
    if method == "bayes":
        ratio = 1.0 if learn_prior else FIXED_PRIOR_INIT_RATIO
        s0 = (prior_log_scale.detach()[:, groups_free] + math.log(ratio)).expand(t, -1)
        log_scale = nn.Parameter(s0.clone())
        trainable.append(log_scale)
    p_log = prior_log_scale.detach().clone()
    noise = None if log_noise is None else nn.Parameter(log_noise.detach().clone())
    em = learn_prior and method == "bayes"
    if noise is not None and learn_noise:
        trainable.append(noise)
    opt = torch.optim.Adam(trainable, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    losses = torch.empty(steps)
    show = show_progress(progress)
    bar = tqdm(range(steps), desc=f"transfer ({method})", disable=not show, leave=False)
    with seeded_by(generator, centre.device), warnings.catch_warnings():
        # A NaN loss is reported below as NonFiniteLossError, not as Pyro's warning.
        warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
        for it in bar:
            with pyro.validation_enabled(it == 0):  # Pyro's checks once; then NaNs reach the loss
                loss = transfer_loss(
                    problem, method, p_log[:, groups_free].exp(), noise, loc, log_scale, num_samples
                )
            value = float(loss.detach()) / t  # per point, averaged over tasks
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the transfer objective ({method}) became {value} at step {it}; lower lr, "
                    "or check the target data for extreme values"
                )
            losses[it] = value
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            if em:
                assert log_scale is not None
                with torch.no_grad():
                    p_log.copy_(
                        _prior_m_step(
                            problem.centre_free, groups, groups_free, loc, log_scale, len(p_log)
                        )
                    )
    with torch.no_grad():
        out_loc = problem.full(loc.detach())
        out_scale = None
        if log_scale is not None:
            out_scale = torch.full_like(out_loc, -math.inf).index_copy(-1, idx, log_scale.detach())
    return TransferFit(
        loc=out_loc,
        log_scale=out_scale,
        prior_log_scale=p_log.detach(),
        log_noise=None if noise is None else noise.detach(),
        losses=losses,
    )


def _prior_m_step(
    centre: Tensor, groups: Tensor, groups_free: Tensor, loc: Tensor, log_scale: Tensor, rows: int
) -> Tensor:
    """The prior log scales that maximise the ELBO for the current ``q``: ``[rows, G]``.

    ``sigma_g^2`` is the mean of ``s^2 + (m - mu)^2`` over the free weights of
    group ``g`` (and over the tasks when ``rows == 1``), the exact maximiser of
    ``-KL(q || N(mu, sigma^2))``: a variational EM step, monotone in the ELBO.
    ``centre``, ``loc`` and ``log_scale`` hold the free weights only (``[F]``,
    ``[T, F]``), ``groups_free`` their groups; ``groups`` (all weights) sets ``G``.
    """
    second = (2 * log_scale).exp() + (loc - centre).pow(2)  # [T, F]
    if rows == 1:
        second = second.sum(0, keepdim=True)
    num_groups = int(groups.max()) + 1
    total = second.new_zeros(second.shape[0], num_groups).index_add_(1, groups_free, second)
    count = torch.bincount(groups_free, minlength=num_groups).to(second) * (loc.shape[0] // rows)
    return 0.5 * (total / count.clamp_min(1)).clamp_min(1e-12).log()
