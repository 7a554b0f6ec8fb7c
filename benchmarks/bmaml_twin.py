"""Hand-written pure-torch Bayesian MAML meta-iterations, the speed benchmark's peers.

The same computation as one ``bayesmeta.BayesianMAML.meta_step`` (Gaussian
likelihood with a learned noise scale, a learned per-weight prior scale,
Gaussian task posteriors started at the prior and refined by ``steps``
preconditioned steps on the support ELBO: proximal in the prior for the mean,
natural-gradient for the precision; second order, one Monte Carlo sample),
written out for a 1-H-H-1 ReLU network with no library code:

* :class:`AutogradTwin` gets each inner gradient from
  ``torch.autograd.grad(..., create_graph=True)``: what one writes first.
* :class:`ManualTwin` back-propagates through the network by hand, as
  bayesmeta does, so the two differ only in library overhead.

Both draw their noise as bayesmeta does (one draw for the inner steps, rotated
over the tasks, one for the query), so with the same seed and weights they
return the same loss (the benchmark checks this).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class _Twin(nn.Module):
    def __init__(
        self,
        params: list[Tensor],
        prior_log_scale: Tensor,
        noise_log_scale: Tensor,
        *,
        inner_lr: float = 0.01,
        steps: int = 5,
        outer_lr: float = 1e-3,
    ) -> None:
        super().__init__()
        # (W1 [H, 1], b1 [H], W2 [H, H], b2 [H], W3 [1, H], b3 [1]), nn.Linear layout.
        self.weights = nn.ParameterList(nn.Parameter(p.detach().clone()) for p in params)
        self.prior_log_scale = nn.Parameter(prior_log_scale.detach().clone())
        self.noise_log_scale = nn.Parameter(noise_log_scale.detach().clone())
        self.shapes = [p.shape for p in params]
        self.sizes = [p.numel() for p in params]
        self.inner_lr, self.steps = inner_lr, steps
        self.opt = torch.optim.Adam(self.parameters(), lr=outer_lr)

    def split(self, theta: Tensor) -> list[Tensor]:
        t = theta.shape[0]
        return [
            part.reshape(t, *shape)
            for part, shape in zip(theta.split(self.sizes, -1), self.shapes, strict=True)
        ]

    @staticmethod
    def forward_net(w: list[Tensor], x: Tensor) -> tuple[Tensor, list[Tensor]]:
        a1 = torch.baddbmm(w[1].unsqueeze(1), x, w[0].transpose(1, 2))
        h1 = a1.relu()
        a2 = torch.baddbmm(w[3].unsqueeze(1), h1, w[2].transpose(1, 2))
        h2 = a2.relu()
        out = torch.baddbmm(w[5].unsqueeze(1), h2, w[4].transpose(1, 2))
        return out, [x, a1, h1, a2, h2]

    def data_grad(self, theta: Tensor, x: Tensor, y: Tensor, step: Tensor) -> Tensor:
        """``step * d(mean Gaussian NLL) / d theta`` per task, ``[T, P]``."""
        raise NotImplementedError

    def meta_step(self, sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> float:
        t = sx.shape[0]
        mu = torch.cat([w.reshape(-1) for w in self.weights])
        p_ls = self.prior_log_scale
        k = sx.shape[1]
        step = self.inner_lr * 2.0 * (2.0 * self.noise_log_scale).exp().mean()
        a = step / k * (-2.0 * p_ls).exp()
        keep = 1.0 / (1.0 + a)
        pull, grow = (1.0 - keep) * mu, step / k
        rate = 0.5  # the natural scale update's rate
        loc, lam = mu.expand(t, -1), (-2.0 * p_ls).exp().expand(t, -1)
        base = torch.empty(t, mu.shape[0]).normal_()  # rotated over tasks (t >= steps)
        for i in range(self.steps):
            eps = base.roll(i, dims=0)
            s = lam.rsqrt()
            g = self.data_grad(loc + s * eps, sx, sy, step)
            loc = keep * (loc - g) + pull
            h = (g * eps / s).relu()
            lam = lam * (1.0 - rate) + rate * (-2.0 * p_ls).exp() + h * (rate / grow)
        ls = -0.5 * lam.log()
        eps = torch.empty(1, t, mu.shape[0]).normal_()[0]
        out, _ = self.forward_net(self.split(loc + ls.exp() * eps), qx)
        sigma_ls = self.noise_log_scale
        z = (qy - out) * (-sigma_ls).exp()
        nll = (0.5 * z * z + sigma_ls + 0.5 * math.log(2 * math.pi)).sum(-1).mean(-1)
        diff = loc - mu
        quad = ((2.0 * ls).exp() + diff * diff) @ (-2.0 * p_ls).exp()
        kl = 0.5 * (quad - mu.shape[0]) + p_ls.sum() - ls.sum(-1)
        loss = (nll + kl / qx.shape[1]).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())


class AutogradTwin(_Twin):
    """Inner gradients by ``torch.autograd.grad(create_graph=True)``."""

    def data_grad(self, theta: Tensor, x: Tensor, y: Tensor, step: Tensor) -> Tensor:
        if not theta.requires_grad:
            theta = theta.requires_grad_(True)
        out, _ = self.forward_net(self.split(theta), x)
        sigma_ls = self.noise_log_scale
        z = (y - out) * (-sigma_ls).exp()
        nll = (0.5 * z * z + sigma_ls).sum(-1).mean(-1)
        (g,) = torch.autograd.grad((step * nll).sum(), theta, create_graph=True)
        return g


class ManualTwin(_Twin):
    """Inner gradients by a hand-written backward pass (differentiable)."""

    def data_grad(self, theta: Tensor, x: Tensor, y: Tensor, step: Tensor) -> Tensor:
        w = self.split(theta)
        out, (x0, a1, h1, a2, h2) = self.forward_net(w, x)
        d3 = step * (out - y) * (-2.0 * self.noise_log_scale).exp() / x.shape[1]
        d2 = torch.where(a2 > 0, torch.bmm(d3, w[4]), 0.0)
        d1 = torch.where(a1 > 0, torch.bmm(d2, w[2]), 0.0)
        grads = [
            torch.bmm(d1.transpose(1, 2), x0),
            d1.sum(1),
            torch.bmm(d2.transpose(1, 2), h1),
            d2.sum(1),
            torch.bmm(d3.transpose(1, 2), h2),
            d3.sum(1),
        ]
        return torch.cat([g.reshape(theta.shape[0], -1) for g in grads], -1)
