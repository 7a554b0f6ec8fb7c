"""The class-mean posterior of :class:`~bayesmeta.BayesianProtoNet` and its predictives.

Given a support set, each class mean has the Normal posterior
``mu_c ~ N(mean_c, v_c I)`` (:class:`PrototypePosterior`). A query embedding ``z`` then
has the exact class probabilities ``p(c | z) ∝ N(z; mean_c, (v_c + sigma^2) I)``
(:func:`closed_form_log_probs`).

:func:`sample_log_probs` draws class means and returns each draw's class probabilities
``softmax_c(-||z - mu_c||^2 / (2 sigma^2))``, for the split of the predictive entropy
into aleatoric and epistemic parts. By default the draws come from the posterior given
the support set *and the query point*: ``p(mu | support, z)`` is a mixture over the
class ``z`` belongs to, so a draw picks a class ``c`` with its closed-form probability
and updates ``mu_c`` with ``z`` as one more example of it. The draws' average is then
the closed-form predictive (by the law of total probability), and the samples'
calibration is the closed form's. Drawn from the support posterior alone
(``query_update=False``, what Pyro's ``Predictive`` with the learner's guide samples),
the average ignores what ``z`` says about the means and is under-confident, markedly
so at few shots and wide embeddings.

Each draw needs only two scalars per query point and class: with ``mu = m + sqrt(v)
eps`` and ``eps`` split along ``z - m`` and across it,
``||z - mu||^2 = (||z - m|| - sqrt(v) a)^2 + v chi^2_{E-1}`` with ``a ~ N(0, 1)``,
so no ``[S, Q, N, E]`` tensor of drawn means is formed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from bayesmeta.learners.metric import squared_distances

__all__ = ["PrototypePosterior", "closed_form_log_probs", "sample_log_probs"]


class PrototypePosterior(NamedTuple):
    """Normal posterior of the class means given a support set.

    ``mu_c | support ~ N(mean_c, var_c I)``; a query embedding of class ``c``
    is ``N(mean_c, (var_c + obs_var) I)`` under the posterior predictive.

    Attributes
    ----------
    mean : Tensor
        Posterior means ``[*B, N, E]``.
    var : Tensor
        Posterior variance per coordinate ``[*B, N]``.
    obs_var : Tensor
        Observation variance ``sigma^2`` (a scalar).
    prior_mean : Tensor
        The prior mean ``m0`` ``[*B, E]``.

    """

    mean: Tensor
    var: Tensor
    obs_var: Tensor
    prior_mean: Tensor

    @property
    def predictive_var(self) -> Tensor:
        """Variance per coordinate of a new embedding of each class ``[*B, N]``."""
        return self.var + self.obs_var


def closed_form_log_probs(posterior: PrototypePosterior, zq: Tensor) -> Tensor:
    """Exact class log-probabilities ``[*B, Q, N]`` of query embeddings ``zq`` ``[*B, Q, E]``.

    ``log softmax_c log N(z; mean_c, (v_c + sigma^2) I)`` (equal class priors).
    """
    # With h = 1 / (2 s2): log N(z; m, s2 I) = (E/2) log h - h ||z - m||^2 plus a constant
    # that a softmax does not see; one fused addcmul for the scores.
    h = 0.5 / posterior.predictive_var.unsqueeze(-2)  # [*B, 1, N]
    e = zq.shape[-1]
    logits = torch.addcmul(h.log() * (0.5 * e), squared_distances(zq, posterior.mean), h, value=-1)
    return torch.log_softmax(logits, dim=-1)


def sample_log_probs(
    posterior: PrototypePosterior,
    zq: Tensor,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    query_update: bool = True,
) -> Tensor:
    """Per-draw class log-probabilities ``[S, *B, Q, N]`` under drawn class means.

    Parameters
    ----------
    posterior
        The class means' posterior given the support set ``[*B, N, E]``.
    zq
        Query embeddings ``[*B, Q, E]``.
    num_samples
        Draws ``S`` per query point.
    generator
        Random generator for the draws (``None``: torch's global one).
    query_update
        ``True`` (default): draw from ``p(mu | support, z)``, so that the draws'
        average is the closed-form predictive; ``False``: from the support
        posterior alone (see the module docstring).

    Returns
    -------
    Tensor
        ``log softmax_c(-||z - mu_c^s||^2 / (2 sigma^2))``.

    """
    mean, var, obs_var = posterior.mean, posterior.var, posterior.obs_var
    batch, (n, e), q = mean.shape[:-2], mean.shape[-2:], zq.shape[-2]
    shape = (num_samples, *batch, q, n)
    a = _normal(shape, generator, mean)
    chi2 = _chi2(e - 1, shape, generator, mean)
    dist = squared_distances(zq, mean).clamp_min(0).sqrt()  # [*B, Q, N]
    v = var.unsqueeze(-2).expand(*batch, q, n)
    if query_update:
        # The class each draw assigns z to, and that class's mean updated with z.
        log_p = closed_form_log_probs(posterior, zq)
        cls = _categorical(log_p, num_samples, generator)  # [S, *B, Q]
        hit = torch.nn.functional.one_hot(cls, n).bool()  # [S, *B, Q, N]
        v_new = 1.0 / (1.0 / var + 1.0 / obs_var)  # [*B, N]
        # z - m_new = (v_new / var) (z - mean): z moves its class mean towards itself.
        shrink = (v_new / var).unsqueeze(-2)  # [*B, 1, N]
        dist = torch.where(hit, dist * shrink, dist)
        v = torch.where(hit, v_new.unsqueeze(-2).expand_as(v), v)
    sq = (dist - v.sqrt() * a).pow(2) + v * chi2
    return torch.log_softmax(-sq / (2.0 * obs_var), dim=-1)


def _device(generator: torch.Generator | None, like: Tensor) -> torch.device:
    return like.device if generator is None else generator.device


def _normal(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    out = torch.randn(shape, generator=generator, dtype=like.dtype, device=_device(generator, like))
    return out.to(like.device)


def _chi2(
    df: int, shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor
) -> Tensor:
    """Chi-squared draws with ``df`` degrees of freedom (zeros for ``df = 0``)."""
    if df <= 0:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    conc = torch.full(shape, 0.5 * df, dtype=like.dtype, device=_device(generator, like))
    if generator is None:
        return (2.0 * torch._standard_gamma(conc)).to(like.device)
    # torch's Gamma sampler takes no generator: seed a forked global stream from it.
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    devices = [generator.device] if generator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = 2.0 * torch._standard_gamma(conc)
    return out.to(like.device)


def _categorical(log_p: Tensor, num_samples: int, generator: torch.Generator | None) -> Tensor:
    """Class draws ``[S, *B, Q]`` from log-probabilities ``[*B, Q, N]``."""
    flat = log_p.detach().exp().reshape(-1, log_p.shape[-1])
    flat = flat.to(_device(generator, log_p))
    draws = torch.multinomial(flat, num_samples, replacement=True, generator=generator)
    return draws.to(log_p.device).T.reshape(num_samples, *log_p.shape[:-1])
