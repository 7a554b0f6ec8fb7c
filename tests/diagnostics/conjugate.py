"""Bayesian linear regression with its exact posterior, shared by the diagnostics tests."""

import torch
from torch import nn

from bayesmeta.nets import FunctionalNet
from bayesmeta.priors import GaussianLikelihood, GaussianPrior

NOISE = 0.3


def linear_model(t: int = 2, k: int = 6, seed: int = 0):
    """Bayesian linear regression in float64: y = x w + b, w, b ~ N(0, 1), noise 0.3."""
    g = torch.Generator().manual_seed(seed)
    fnet = FunctionalNet(nn.Linear(2, 1).double())
    prior = GaussianPrior(torch.zeros(3, dtype=torch.float64), 1.0, learn_scale=False)
    lik = GaussianLikelihood(NOISE, learn_scale=False).double()
    # correlated inputs make a correlated posterior
    z = torch.randn(t, k, 1, generator=g, dtype=torch.float64)
    x = torch.cat([z, z + 0.3 * torch.randn(t, k, 1, generator=g, dtype=torch.float64)], -1)
    y = x @ torch.tensor([[1.0], [-2.0]], dtype=torch.float64) + 0.5
    y = y + NOISE * torch.randn(y.shape, generator=g, dtype=torch.float64)
    return fnet, prior, lik, x, y


def exact_posterior(x, y):
    """Mean [T, 3] and covariance [T, 3, 3] of (w1, w2, b)."""
    phi = torch.cat([x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype)], -1)
    precision = torch.eye(3, dtype=x.dtype) + phi.mT @ phi / NOISE**2
    cov = torch.linalg.inv(precision)
    mean = (cov @ (phi.mT @ y / NOISE**2)).squeeze(-1)
    return mean, cov
