"""The linearised Laplace posterior around a MAP estimate, with its evidence.

Around the MAP weights ``theta*`` of each task, the network is replaced by its
first-order Taylor expansion ``f(x; theta) ~ f(x; theta*) + J(x) (theta - theta*)``
(``J`` the Jacobian of the outputs with respect to the weights). Under the
Gaussian prior ``N(mu, diag(sigma^2))`` and Gaussian noise this linear model is
a Gaussian process with kernel ``k(x, x') = J(x) diag(sigma^2) J(x')^T`` and prior
mean ``m(x) = f(x; theta*) + J(x) (mu - theta*)``, so its posterior predictive
and its marginal likelihood (the *evidence*) are exact and cost ``O(K^2 P)``
per task (the ``P x P`` posterior covariance is never formed). The evidence,
with the Jacobians held fixed, is maximised over the per-group prior scales and
the noise scale (empirical Bayes, MacKay 1992; Immer et al. 2021).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jacrev, vmap

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import NonFiniteLossError
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.predictions.prediction import Prediction

__all__ = [
    "LaplacePosterior",
    "group_grams",
    "jacobians",
    "linearised_evidence",
    "optimise_evidence",
]


def jacobians(fnet: FunctionalNet, theta: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Outputs and their Jacobians for each task.

    Parameters
    ----------
    fnet
        The network.
    theta
        Weights ``[T, P]``.
    x
        Inputs ``[T, N, *features]``.

    Returns
    -------
    tuple of Tensor
        ``f(x; theta)`` ``[T, N, O]`` and ``J`` ``[T, N, O, P]``.

    """

    def one(th: Tensor, xt: Tensor) -> tuple[Tensor, Tensor]:
        out = fnet(th, xt)
        return out, out

    with torch.no_grad():
        jac, out = vmap(jacrev(one, has_aux=True))(theta.detach(), x)
    return out, jac.double()


def _kernel(jac_a: Tensor, jac_b: Tensor, prior_var: Tensor) -> Tensor:
    """``J_a diag(sigma^2) J_b^T`` with rows flattened over points and outputs.

    ``jac_a`` ``[T, N, O, P]``, ``jac_b`` ``[T, M, O, P]``, ``prior_var``
    ``[T or 1, P]``; returns ``[T, N O, M O]``.
    """
    a = jac_a.flatten(1, 2)
    b = jac_b.flatten(1, 2)
    return (a * prior_var.unsqueeze(-2)) @ b.transpose(-1, -2)


def group_grams(jac: Tensor, groups: Tensor, num_groups: int) -> Tensor:
    """``J_g J_g^T`` per weight group ``[T, G, K O, K O]`` (``J`` ``[T, K, O, P]``).

    Weights whose group index is negative (frozen ones) are left out.
    """
    a = jac.flatten(1, 2)  # [T, KO, P]
    grams = []
    for g in range(num_groups):
        part = a[..., groups == g]
        grams.append(part @ part.transpose(-1, -2))
    return torch.stack(grams, dim=1)


def linearised_evidence(
    grams: Tensor, residual: Tensor, prior_log_scale: Tensor, log_noise: Tensor
) -> Tensor:
    """Log marginal likelihood of the linearised model, per task ``[T]``.

    Parameters
    ----------
    grams
        ``J_g J_g^T`` per weight group ``[T, G, K O, K O]``.
    residual
        ``y - m(x)`` at the support points, flattened ``[T, K O]``.
    prior_log_scale
        Log prior scale per group ``[T or 1, G]``.
    log_noise
        Log noise scale per output ``[T or 1, O]``.

    """
    k = (grams * (2 * prior_log_scale)[..., None, None].exp()).sum(1)  # [T, KO, KO]
    num_out = log_noise.shape[-1]
    rows = k.shape[-1]
    noise_var = (2 * log_noise).exp().repeat(1, rows // num_out)  # [T or 1, KO]
    cov = k + torch.diag_embed(noise_var.expand(k.shape[0], -1))
    chol = torch.linalg.cholesky(cov)
    alpha = torch.cholesky_solve(residual.unsqueeze(-1), chol).squeeze(-1)
    logdet = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return -0.5 * ((residual * alpha).sum(-1) + logdet + rows * math.log(2 * math.pi))


def optimise_evidence(
    grams: Tensor,
    residual: Tensor,
    prior_log_scale: Tensor,
    log_noise: Tensor,
    *,
    learn_prior: bool = True,
    learn_noise: bool = True,
    steps: int = 200,
    lr: float = 0.05,
) -> tuple[Tensor, Tensor]:
    """Maximise :func:`linearised_evidence` over the log scales (Adam).

    Only the scales flagged by ``learn_prior`` / ``learn_noise`` move. The
    starting values' leading size (``T`` per task, 1 shared by all tasks)
    is kept: shared scales maximise the summed evidence.

    Returns
    -------
    tuple of Tensor
        The fitted ``(prior_log_scale, log_noise)``.

    """
    p = prior_log_scale.detach().clone().requires_grad_(learn_prior)
    n = log_noise.detach().clone().requires_grad_(learn_noise)
    params = [q for q in (p, n) if q.requires_grad]
    if not params:
        return p, n
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = -linearised_evidence(grams, residual, p, n).sum()
        if not math.isfinite(float(loss.detach())):
            raise NonFiniteLossError(
                "the linearised evidence became non-finite while fitting the prior and noise "
                "scales; the support data may be degenerate (e.g. repeated inputs)"
            )
        loss.backward()
        opt.step()
        with torch.no_grad():  # keep the kernel well conditioned
            p.clamp_(-12.0, 5.0)
            n.clamp_(-9.0, 5.0)
    return p.detach(), n.detach()


@dataclass(frozen=True, eq=False)
class LaplacePosterior:
    """The linearised Laplace posterior of one task or a batch of tasks.

    Attributes
    ----------
    fnet : FunctionalNet
        The network.
    loc : Tensor
        MAP weights ``[*B, P]``.
    centre : Tensor
        Prior mean ``[P]``.
    prior_scale : Tensor
        Prior standard deviation per weight ``[*B or 1, P]``.
    noise_scale : Tensor
        Noise standard deviation per output ``[*B or 1, O]``.
    support_x, support_y : Tensor
        The task data ``[*B, K, *features]`` and ``[*B, K, O]``.

    """

    fnet: FunctionalNet
    loc: Tensor
    centre: Tensor
    prior_scale: Tensor
    noise_scale: Tensor
    support_x: Tensor
    support_y: Tensor

    classification = False

    @property
    def batch_shape(self) -> torch.Size:
        """``()`` for one task, ``(T,)`` for a batch."""
        return self.loc.shape[:-1]

    def _batched(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        if self.loc.dim() == 2:
            return self.loc, self.prior_scale, self.noise_scale, self.support_x, self.support_y
        return (
            self.loc.unsqueeze(0),
            self.prior_scale.reshape(1, -1),
            self.noise_scale.reshape(1, -1),
            self.support_x.unsqueeze(0),
            self.support_y.unsqueeze(0),
        )

    def mean_cov(self, query_x: Tensor) -> tuple[Tensor, Tensor]:
        """Exact predictive of the linearised model at ``query_x`` ``[*B, Q, *features]``.

        Returns
        -------
        tuple of Tensor
            The mean of ``f`` ``[*B, Q, O]`` and its covariance over the
            query points and outputs ``[*B, Q O, Q O]`` (noise not included).

        """
        x = self.fnet.check_inputs(
            "query_x", query_x, self.batch_shape, like=self.loc, owner="the posterior's weights"
        ).to(self.loc.device)
        loc, prior_sd, noise, sx, sy = self._batched()
        xq = x if self.loc.dim() == 2 else x.unsqueeze(0)
        var = prior_sd.double().pow(2)
        fs, js = jacobians(self.fnet, loc, sx)
        fq, jq = jacobians(self.fnet, loc, xq)
        fs, fq = fs.double(), fq.double()
        shift = (self.centre - loc).double()  # [T, P]
        prior_mean_s = fs + (js @ shift[:, None, :, None]).squeeze(-1)
        prior_mean_q = fq + (jq @ shift[:, None, :, None]).squeeze(-1)
        k_ss = _kernel(js, js, var)
        rows = k_ss.shape[-1]
        noise_var = (
            noise.double().pow(2).repeat(1, rows // noise.shape[-1]).expand(k_ss.shape[0], -1)
        )
        chol = torch.linalg.cholesky(k_ss + torch.diag_embed(noise_var))
        k_qs = _kernel(jq, js, var)
        k_qq = _kernel(jq, jq, var)
        resid = (sy.double() - prior_mean_s).flatten(1)
        mean = prior_mean_q.flatten(1) + (
            k_qs @ torch.cholesky_solve(resid.unsqueeze(-1), chol)
        ).squeeze(-1)
        half = torch.linalg.solve_triangular(chol, k_qs.transpose(-1, -2), upper=False)
        cov = k_qq - half.transpose(-1, -2) @ half
        mean = mean.reshape(fq.shape).to(self.loc.dtype)
        cov = cov.to(self.loc.dtype)
        if self.loc.dim() == 1:
            return mean[0], cov[0]
        return mean, cov

    def predict(
        self, query_x: Tensor, *, num_samples: int = 100, generator: torch.Generator | None = None
    ) -> Prediction:
        """Posterior predictive at ``query_x``: ``num_samples`` joint draws of ``f``.

        The draws come from the exact Gaussian predictive of the linearised
        model (:meth:`mean_cov`), jointly over the query points, each with the
        fitted Gaussian noise.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        mean, cov = self.mean_cov(query_x)
        cov = cov.double()
        n = cov.shape[-1]
        # A symmetric square root that tolerates the round-off negatives of a
        # low-rank covariance (a Cholesky factorisation may fail on them).
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.transpose(-1, -2)))
        chol = evecs * evals.clamp_min(0).sqrt().unsqueeze(-2)
        z = torch.empty((num_samples, *mean.shape[:-2], n, 1), dtype=cov.dtype)
        z = z.normal_(generator=generator).to(cov.device)
        draws = (chol @ z).squeeze(-1).to(mean.dtype)
        f = mean.unsqueeze(0) + draws.reshape(num_samples, *mean.shape)
        # [T or 1, 1, O] for a batch, [O] for one task
        noise = self.noise_scale.unsqueeze(-2) if self.loc.dim() == 2 else self.noise_scale
        if f.shape[-1] != noise.shape[-1]:
            raise ValueError(
                f"the noise has {noise.shape[-1]} output(s) but the network "
                f"{f.shape[-1]} ({fmt_shape(f.shape)})"
            )
        return Prediction(f, noise)
