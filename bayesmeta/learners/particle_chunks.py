"""Backpropagate an outer Monte Carlo objective a few particles at a time.

Bayesian MAML's outer objective averages over ``S`` weight draws from each task's
posterior: the log of the mean predictive density (or, for the ELBO, the mean
log-likelihood). Its gradient is a weighted sum of the draws' log-likelihood
gradients, ``sum_s w_s grad log p_s`` with ``w = softmax_s(log p_s)`` (``1/S`` for the
ELBO), so it can be built chunk by chunk once the weights are known: a first pass
without a graph gives them, then each chunk's weighted term is backpropagated while
the graph up to the draws (the inner loop) is kept. Peak memory holds one chunk's
activations instead of all ``S``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.model.likelihoods import Likelihood

__all__ = ["chunked_particle_backward", "outer_nll"]


def outer_nll(
    likelihood: Likelihood,
    out: Tensor,
    y: Tensor,
    objective: Literal["predictive", "elbo"] = "predictive",
) -> Tensor:
    """The outer objective's query term per task ``[T]`` from the draws' outputs.

    Parameters
    ----------
    likelihood
        The observation model (see :func:`chunked_particle_backward`).
    out
        Outputs of ``S`` weight draws ``[S, T, Q, O]``.
    y
        Query targets ``[T, Q, ...]``.
    objective
        ``"predictive"``: ``-mean_q log mean_s p(y_q | theta_s)``; ``"elbo"`` (and any
        objective with ``S = 1``): the mean over draws of the negative log-likelihood.

    """
    if objective == "elbo" or out.shape[0] == 1:
        return likelihood(out, y).mean(0)
    log_p = likelihood.point_log_prob(out, y)  # [S, T, Q]
    return -(torch.logsumexp(log_p, 0) - math.log(out.shape[0])).mean(-1)


def chunked_particle_backward(
    fnet: Callable[[Tensor, Tensor], Tensor],
    likelihood: Likelihood,
    theta: Tensor,
    x: Tensor,
    y: Tensor,
    penalty: Tensor,
    *,
    chunk: int,
    objective: Literal["predictive", "elbo"] = "predictive",
    weight: float = 1.0,
) -> tuple[Tensor, float]:
    """Accumulate the gradient of the outer objective in ``.grad``, ``chunk`` draws at a time.

    Parameters
    ----------
    fnet
        The functional network: ``fnet(theta, x)`` maps weights ``[S', T, P]`` and
        inputs ``[T, Q, *features]`` to outputs ``[S', T, Q, O]``.
    likelihood
        Gives ``point_log_prob(out, y)`` ``[S', T, Q]`` and ``likelihood(out, y)``, the
        negative log-likelihood per task ``[S', T]``.
    theta
        The draws ``[S, T, P]``, differentiable (their graph is kept between chunks).
    x, y
        Query inputs ``[T, Q, *features]`` and targets ``[T, Q, ...]``.
    penalty
        A per-task term added to the objective ``[T]`` (the weighted KL), backpropagated last.
    chunk
        Draws per backward pass.
    objective
        ``"predictive"``: ``-log mean_s p(y | theta_s)`` per query point; ``"elbo"``: the mean
        over draws of the negative log-likelihood.
    weight
        A factor on the gradient (not on the returned value): a chunk of tasks' share
        of the meta-batch (see :mod:`bayesmeta.learners.task_chunks`).

    Returns
    -------
    tuple
        The outputs of every draw ``[S, T, Q, O]`` (no graph) and the objective's value,
        ``mean_t(term_t + penalty_t)``. A non-finite value is returned before any backward.

    Raises
    ------
    ValueError
        If ``chunk`` is not a positive integer.

    """
    check_count("chunk", chunk, minimum=1)
    s = theta.shape[0]
    parts = [slice(i, min(i + chunk, s)) for i in range(0, s, chunk)]
    with torch.no_grad():
        out = torch.cat([fnet(theta[part], x) for part in parts])
        term = outer_nll(likelihood, out, y, objective)
        weights = (
            None if objective == "elbo" else torch.softmax(likelihood.point_log_prob(out, y), 0)
        )
        value = float((term + penalty.detach()).mean())
    if not math.isfinite(value):
        return out, value
    for part in parts:
        out_c = fnet(theta[part], x)
        if weights is None:
            loss = likelihood(out_c, y).sum(0) / s
        else:
            loss = -(weights[part] * likelihood.point_log_prob(out_c, y)).sum(0).mean(-1)
        (loss.mean() * weight).backward(retain_graph=True)
    (penalty.mean() * weight).backward()
    return out, value
