"""The shared inner loop: gradient steps on every task's weights at once.

Weights are held with a leading task dimension ``[T, ...]``. Because task
losses do not interact, the gradient of their *sum* with respect to the
batched weights has, in row ``t``, exactly task ``t``'s own gradient; one
backward pass therefore adapts all tasks, with no Python loop over tasks.
With ``create_graph=True`` the steps stay differentiable (second-order MAML);
with ``first_order=True`` each step's gradient is treated as a constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeGuard

import torch
from torch import Tensor

from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.nets.losses import TaskLoss

__all__ = ["gradient_steps"]


def gradient_steps(
    fnet: FunctionalNet,
    params: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    loss: TaskLoss,
    *,
    steps: int,
    lr: float | Tensor | Sequence[Tensor],
    first_order: bool = False,
    differentiable: bool = True,
    max_grad_norm: float | None = None,
) -> tuple[Tensor, ...]:
    """Take ``steps`` gradient steps on each task's loss, all tasks at once.

    Parameters
    ----------
    fnet
        The functional network.
    params
        Starting weights, each ``[*B, *shape]``; ``B`` must match the batch
        dimensions of ``x`` (use :meth:`FunctionalNet.expand` to start every
        task from shared weights).
    x, y
        Inputs ``[*B, K, *features]`` and targets of the adaptation set.
    loss
        Per-task loss, returning ``[*B]``.
    steps
        Number of gradient steps (0 returns ``params``).
    lr
        Step size: a float, a scalar tensor (possibly a differentiable
        function of meta-parameters), or one tensor per weight broadcastable
        to it (per-parameter learned rates, as in Meta-SGD).
    first_order
        Treat each step's gradient as a constant (first-order MAML); the
        result still depends on ``params`` (and on a learned ``lr``).
    differentiable
        Keep the graph from ``params`` to the result. ``False`` is for
        test-time adaptation: the result is detached.
    max_grad_norm
        Rescale each task's gradient (all weights together) to at most this
        Euclidean norm before stepping. Guards against the inner loop blowing
        up on tasks where the loss is sharp (``None``: no clipping).

    Returns
    -------
    tuple of Tensor
        The adapted weights, same shapes as ``params``.

    """
    current = tuple(params)
    if not differentiable:
        current = tuple(p.detach() for p in current)
    second_order = differentiable and not first_order
    with torch.enable_grad():
        for _ in range(steps):
            if second_order:
                if max_grad_norm is None and _scalar(lr):
                    # the network's backward pass and the update as one step, if it has one
                    stepped = fnet.descent_step(current, x, y, loss, lr)
                    if stepped is not None:
                        current = stepped
                        continue
                grads = fnet.loss_grad(current, x, y, loss, create_graph=True)
            else:
                detached = tuple(p.detach() for p in current)
                grads = fnet.loss_grad(detached, x, y, loss, create_graph=False)
            if max_grad_norm is not None:
                grads = _clip_per_task(
                    grads,
                    batch_dims=x.dim() - 1 - fnet.feature_dims,
                    shapes=fnet.shapes,
                    max_norm=max_grad_norm,
                )
            current = _step(current, grads, lr)
            if not differentiable:
                current = tuple(p.detach() for p in current)
    return current


def _scalar(lr: float | Tensor | Sequence[Tensor]) -> TypeGuard[float | Tensor]:
    """A float or a scalar tensor: one step size for every weight."""
    return isinstance(lr, float) or (isinstance(lr, Tensor) and lr.dim() == 0)


def _clip_per_task(
    grads: Sequence[Tensor], *, batch_dims: int, shapes: Sequence[torch.Size], max_norm: float
) -> tuple[Tensor, ...]:
    squares = [g.pow(2).reshape(*g.shape[:batch_dims], -1).sum(-1) for g in grads]
    norm = torch.stack(squares).sum(0).sqrt()  # [*B]
    scale = (max_norm / (norm + 1e-12)).clamp(max=1.0)
    return tuple(
        g * scale.reshape(*scale.shape, *([1] * len(s))) for g, s in zip(grads, shapes, strict=True)
    )


def _step(
    params: tuple[Tensor, ...], grads: Sequence[Tensor], lr: float | Tensor | Sequence[Tensor]
) -> tuple[Tensor, ...]:
    if isinstance(lr, float):
        return tuple(torch.add(p, g, alpha=-lr) for p, g in zip(params, grads, strict=True))
    if isinstance(lr, Tensor):
        return tuple(p - lr * g for p, g in zip(params, grads, strict=True))
    return tuple(p - a * g for p, a, g in zip(params, lr, grads, strict=True))
