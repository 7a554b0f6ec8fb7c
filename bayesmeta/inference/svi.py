"""Pyro SVI on the model, fitting a guide's own parameters only.

:func:`run_svi` drives ``Trace_ELBO`` with a torch Adam optimiser over the
parameters it is given, annealing the rate on a cosine, and takes gradients by
``torch.autograd.grad`` so that nothing else (the learner's meta-parameters)
collects any. :func:`seeded_by` (from :mod:`bayesmeta._seeding`) draws Pyro's noise from a
seed taken from a ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro.infer import Trace_ELBO
from torch import Tensor, nn

from bayesmeta._seeding import seeded_by
from bayesmeta.errors import NonFiniteLossError

__all__ = ["run_svi", "seeded_by"]


def run_svi(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    params: list[nn.Parameter],
    x: Tensor,
    y: Tensor,
    steps: int,
    lr: float,
    num_particles: int,
) -> Tensor:
    """``steps`` cosine-annealed Adam steps on Pyro's negative ELBO, updating only ``params``.

    Parameters
    ----------
    model, guide
        A Pyro model and guide taking ``(x, y)``.
    params
        The guide's parameters (the only ones updated).
    x, y
        The data ``[T, K, *features]`` and targets.
    steps, lr
        Adam steps and the initial learning rate.
    num_particles
        ELBO samples per step (vectorised over a plate when more than one).

    Returns
    -------
    Tensor
        The negative ELBO (summed over the tasks) before each step, ``[steps]``.

    Raises
    ------
    NonFiniteLossError
        If the ELBO turns NaN or infinite.

    """
    elbo = Trace_ELBO(
        num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1
    )
    opt = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    trace = torch.empty(steps)
    for it in range(steps):
        with pyro.validation_enabled(it == 0):  # Pyro's checks once; then NaNs reach the loss
            loss = elbo.differentiable_loss(model, guide, x, y)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the adaptation ELBO became {value} at step {it}; lower lr, or check the "
                "support data for extreme values"
            )
        trace[it] = value
        # autograd.grad, not backward: the prior's and likelihood's parameters
        # (the learner's meta-parameters) must not collect gradients here.
        grads = torch.autograd.grad(loss, params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        schedule.step()
    return trace
