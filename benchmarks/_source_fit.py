"""A source network for the transfer rows: least squares by full-batch Adam."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def fit_full_batch(net: nn.Module, x: Tensor, y: Tensor, steps: int, lr: float = 1e-2) -> nn.Module:
    """Fit ``net`` to ``x`` ``[N, D]`` -> ``y`` ``[N, O]`` by MSE, Adam with cosine decay.

    Returns ``net`` itself, fitted in place.
    """
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        (net(x) - y).pow(2).mean().backward()
        opt.step()
        sched.step()
    return net
