"""Bayesian linear regression on fixed features, in closed form, for many tasks at once.

Per task ``t`` and output ``o``, with features ``Phi`` ``[K, D]``, prior mean
``w0_o`` ``[D]``, prior precision ``alpha`` (shared by the outputs) and noise
``sigma_o``::

    w_o ~ N(w0_o, alpha^-1 I),    y_o | w_o ~ N(Phi w_o, sigma_o^2 I).

Everything goes through the thin SVD ``Phi = U diag(s) V^T`` (``r = min(K, D)``
singular values), taken once per task, so that no ``D x D`` or ``K x K`` system
is solved:

- evidence: ``y_o - Phi w0_o ~ N(0, sigma_o^2 I + Phi Phi^T / alpha)``, whose
  covariance has eigenvalues ``sigma_o^2 + s_i^2 / alpha`` along ``U`` and
  ``sigma_o^2`` elsewhere: ``O(r)`` per task and output, which matters because
  the hyper-parameter fits evaluate it hundreds of times;
- posterior: ``N(m_o, S_o)`` with ``S_o = alpha^-1 (I - V V^T) + V diag(lam_o) V^T``,
  ``lam_oi = sigma_o^2 / (alpha sigma_o^2 + s_i^2)``, the textbook
  ``(alpha I + Phi^T Phi / sigma_o^2)^-1``, and
  ``m_o = w0_o + V (s u_o / (alpha sigma_o^2 + s^2))`` with
  ``u_o = U^T (y_o - Phi w0_o)``. Replacing ``alpha^-1`` and ``lam`` by their
  square roots gives the symmetric square root of ``S_o``, which draws weights.

All of it runs in float64: the ``1 / sigma^2`` scales make float32 lose the
weakly determined directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from bayesmeta.errors import NonFiniteLossError
from bayesmeta.posteriors.gaussian import standard_normal

__all__ = [
    "NOISE_FLOOR",
    "LinearGaussianHead",
    "Spectrum",
    "empirical_bayes",
    "fit_hyperparameters",
    "log_evidence",
    "noise_floor",
    "spectrum",
]

#: Fitted noise scales stay above this fraction of the targets' root mean square.
#: With few points (``K = 1`` always) the evidence cannot tell noise from weight
#: uncertainty and may let ``sigma`` run to zero; the floor stops it there.
NOISE_FLOOR = 1e-3

_LOG_2PI = math.log(2.0 * math.pi)


class Spectrum(NamedTuple):
    """What the evidence and the posterior need from ``T`` tasks' features and targets.

    Attributes
    ----------
    s : Tensor
        Singular values of ``Phi`` ``[T, r]``.
    basis : Tensor
        Right singular vectors ``V^T`` ``[T, r, D]``.
    proj : Tensor
        Residuals ``y - Phi w0`` along the left singular vectors ``[T, r, O]``.
    rest : Tensor
        Squared norm of the residuals outside ``U``'s span ``[T, O]``.
    num_points : int
        ``K``.

    """

    s: Tensor
    basis: Tensor
    proj: Tensor
    rest: Tensor
    num_points: int


def spectrum(phi: Tensor, y: Tensor, prior_loc: Tensor) -> Spectrum:
    """Decompose features ``[T, K, D]`` and targets ``[T, K, O]`` under prior mean ``[O, D]``."""
    phi, y = phi.double(), y.double()
    resid = y - phi @ prior_loc.double().mT
    u, s, vh = torch.linalg.svd(phi, full_matrices=False)
    proj = u.mT @ resid
    rest = (resid.pow(2).sum(-2) - proj.pow(2).sum(-2)).clamp_min(0.0)
    return Spectrum(s, vh, proj, rest, int(phi.shape[-2]))


def noise_floor(y: Tensor) -> Tensor:
    """The least noise scale per task and output, ``NOISE_FLOOR * rms(y)``: ``[T, O]``."""
    rms = y.double().pow(2).mean(-2).sqrt()
    return NOISE_FLOOR * rms.clamp_min(1e-3)


def log_evidence(spec: Spectrum, log_alpha: Tensor, log_sigma: Tensor) -> Tensor:
    """``log N(y_o | Phi w0_o, sigma_o^2 I + Phi Phi^T / alpha)`` per task and output.

    Parameters
    ----------
    spec
        The tasks' :class:`Spectrum`.
    log_alpha
        Log prior precision ``[T]`` (or ``[1]``, shared).
    log_sigma
        Log noise scale ``[T, O]`` (or ``[1, O]``).

    Returns
    -------
    Tensor
        ``[T, O]``.

    """
    var_n = (2.0 * log_sigma).exp()
    eig = var_n.unsqueeze(-2) + (spec.s.pow(2) * (-log_alpha).exp().unsqueeze(-1)).unsqueeze(-1)
    k, r = spec.num_points, spec.s.shape[-1]
    logdet = eig.log().sum(-2) + 2.0 * (k - r) * log_sigma
    quad = (spec.proj.pow(2) / eig).sum(-2) + spec.rest / var_n
    return -0.5 * (k * _LOG_2PI + logdet + quad)


def fit_hyperparameters(
    spec: Spectrum,
    log_alpha: Tensor,
    log_sigma: Tensor,
    *,
    fit_alpha: bool,
    fit_sigma: bool,
    log_floor: Tensor,
    steps: int,
    lr: float,
) -> tuple[Tensor, Tensor]:
    """Maximise the summed log evidence over ``log alpha`` and/or ``log sigma`` (type II ML).

    Adam with a cosine-annealed learning rate, from the given starts (shapes as
    in :func:`log_evidence`; ``[1]`` and ``[1, O]`` share them over the tasks).
    ``log sigma`` is kept at or above ``log_floor``. Adam scales each
    coordinate by itself, so with per-task parameters each task is fitted as if
    alone.

    Returns
    -------
    tuple of Tensor
        The fitted ``(log_alpha, log_sigma)``, detached.

    Raises
    ------
    NonFiniteLossError
        If the evidence turns NaN or infinite.

    """
    la = log_alpha.detach().clone().requires_grad_(fit_alpha)
    ls = log_sigma.detach().clone().requires_grad_(fit_sigma)
    params = [p for p, fit in ((la, fit_alpha), (ls, fit_sigma)) if fit]
    if not params:
        return la.detach(), ls.detach()
    opt = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for it in range(steps):
        with torch.enable_grad():
            loss = -log_evidence(spec, la, ls).sum()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the log evidence became {-value} at step {it}; check the targets for "
                    "extreme values or pass a fixed prior_scale"
                )
            grads = torch.autograd.grad(loss, params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        schedule.step()
        with torch.no_grad():
            ls.copy_(torch.maximum(ls, log_floor))
    return la.detach(), ls.detach()


def empirical_bayes(
    spec: Spectrum,
    y: Tensor,
    *,
    prior_scale: float | Tensor,
    noise_scale: float | Tensor,
    fit_alpha: bool,
    fit_sigma: bool,
    shared: bool,
    steps: int,
    lr: float,
) -> tuple[Tensor, Tensor]:
    """Hyper-parameters of ``T`` tasks: given, or fitted from the given starts.

    Parameters
    ----------
    spec, y
        The tasks' :class:`Spectrum` and targets ``[T, K, O]``.
    prior_scale, noise_scale
        ``alpha^-1/2`` (a scalar) and ``sigma`` (a scalar or ``[O]``): the values, or
        the starts of the fit.
    fit_alpha, fit_sigma
        Which to fit by the evidence (``sigma`` not below :data:`NOISE_FLOOR` of the
        targets' root mean square).
    shared
        One ``alpha`` and ``sigma`` for all tasks (their summed evidence), else one per task.
    steps, lr
        Adam steps and learning rate.

    Returns
    -------
    tuple of Tensor
        ``log alpha`` ``[T]`` and ``log sigma`` ``[T, O]`` (float64).

    """
    t, o = y.shape[0], y.shape[-1]
    n = 1 if shared else t
    log_floor = noise_floor(y.reshape(1, -1, o) if shared else y).log()
    log_alpha = -2.0 * torch.as_tensor(prior_scale).to(spec.s).log().expand(n)
    log_sigma = torch.as_tensor(noise_scale).to(spec.s).log().expand(n, o)
    if fit_sigma:
        log_sigma = torch.maximum(log_sigma, log_floor)
    la, ls = fit_hyperparameters(
        spec,
        log_alpha,
        log_sigma,
        fit_alpha=fit_alpha,
        fit_sigma=fit_sigma,
        log_floor=log_floor,
        steps=steps,
        lr=lr,
    )
    return la.expand(t), ls.expand(t, o)


@dataclass(frozen=True, eq=False)
class LinearGaussianHead:
    """The Gaussian posterior of a linear head, per task and output (see the module docstring).

    Attributes
    ----------
    loc : Tensor
        Posterior means ``[*B, O, D]``.
    basis : Tensor
        ``V^T`` ``[*B, r, D]``: the directions the support data informed.
    direction_var : Tensor
        Posterior variances along them ``[*B, O, r]`` (``lam``).
    prior_scale : Tensor
        ``alpha^-1/2`` ``[*B]``, the posterior scale in every other direction.
    noise_scale : Tensor
        ``sigma`` ``[*B, O]``.
    log_evidence : Tensor
        Log marginal likelihood of the support targets ``[*B]`` (summed over outputs).

    """

    loc: Tensor
    basis: Tensor
    direction_var: Tensor
    prior_scale: Tensor
    noise_scale: Tensor
    log_evidence: Tensor

    @classmethod
    def from_spectrum(
        cls, spec: Spectrum, prior_loc: Tensor, log_alpha: Tensor, log_sigma: Tensor
    ) -> LinearGaussianHead:
        """The posterior ``[T]`` given the hyper-parameters ``[T]`` and ``[T, O]``."""
        alpha, var_n = log_alpha.exp(), (2.0 * log_sigma).exp()
        s = spec.s.unsqueeze(-2)
        denom = alpha[:, None, None] * var_n.unsqueeze(-1) + s.pow(2)
        loc = prior_loc.double() + (s * spec.proj.mT / denom) @ spec.basis
        evidence = log_evidence(spec, log_alpha, log_sigma).sum(-1)
        return cls(
            loc, spec.basis, var_n.unsqueeze(-1) / denom, alpha.rsqrt(), log_sigma.exp(), evidence
        )

    def task(self, index: int) -> LinearGaussianHead:
        """The posterior of one task of a batch."""
        return LinearGaussianHead(
            self.loc[index],
            self.basis[index],
            self.direction_var[index],
            self.prior_scale[index],
            self.noise_scale[index],
            self.log_evidence[index],
        )

    def _excess(self) -> Tensor:
        """``lam - alpha^-1`` ``[*B, O, r]`` (``<= 0``)."""
        return self.direction_var - self.prior_scale.pow(2)[..., None, None]

    def covariance(self) -> Tensor:
        """Posterior covariances ``[*B, O, D, D]``."""
        v = self.basis.unsqueeze(-3)
        eye = torch.eye(v.shape[-1], dtype=v.dtype, device=v.device)
        prior_var = self.prior_scale.pow(2)[..., None, None, None]
        return prior_var * eye + (v.mT * self._excess().unsqueeze(-2)) @ v

    def mean(self, phi: Tensor) -> Tensor:
        """``Phi m`` at features ``[*B, Q, D]``: ``[*B, Q, O]``."""
        return phi.double() @ self.loc.mT

    def function_variance(self, phi: Tensor) -> Tensor:
        """``phi^T S phi`` at features ``[*B, Q, D]`` (no noise): ``[*B, Q, O]``."""
        phi = phi.double()
        inside = (phi @ self.basis.mT).pow(2) @ self._excess().mT
        prior_var = self.prior_scale.pow(2)[..., None, None]
        return (phi.pow(2).sum(-1, keepdim=True) * prior_var + inside).clamp_min(0.0)

    def sample_weights(self, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw weights ``[S, *B, O, D]`` through the symmetric square root of ``S``."""
        eps = standard_normal((num_samples, *self.loc.shape), self.loc, generator)
        ps = self.prior_scale[..., None, None]
        along = (self.direction_var.sqrt() - ps) * (eps @ self.basis.mT)
        return self.loc + ps * eps + along @ self.basis
