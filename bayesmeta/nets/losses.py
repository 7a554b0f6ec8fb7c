"""Per-task losses: one value per task, batched over any leading dimensions.

A task loss maps network outputs ``[*B, N, O]`` and targets to ``[*B]``; the
inner loop sums it over tasks, so that one backward pass yields every task's
own gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "OUTPUT_GRADS",
    "LossName",
    "ScaledLoss",
    "StandardizedMSE",
    "TaskLoss",
    "cross_entropy",
    "cross_entropy_output_grad",
    "get_loss",
    "mse",
    "mse_output_grad",
]

TaskLoss = Callable[[Tensor, Tensor], Tensor]
LossName = Literal["mse", "cross_entropy"]


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per task.

    Parameters
    ----------
    pred
        Predictions ``[*B, N, O]``.
    target
        Targets ``[*B', N, O]``, broadcastable to ``pred``.

    Returns
    -------
    Tensor
        ``[*B]``: the mean over points and outputs.

    """
    return (pred - target).pow(2).mean(dim=(-1, -2))


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean negative log-likelihood of class labels per task.

    Parameters
    ----------
    logits
        Unnormalised class scores ``[*B, N, C]``.
    target
        Integer labels ``[*B', N]`` broadcastable to ``logits.shape[:-1]``.

    Returns
    -------
    Tensor
        ``[*B]``.

    """
    logp = torch.log_softmax(logits, dim=-1)
    index = target.expand(logits.shape[:-1]).unsqueeze(-1)
    return -logp.gather(-1, index).squeeze(-1).mean(dim=-1)


def mse_output_grad(pred: Tensor, target: Tensor) -> Tensor:
    """Gradient of ``mse(pred, target).sum()`` with respect to ``pred`` ``[*B, N, O]``."""
    n = pred.shape[-1] * pred.shape[-2]
    return (pred - target) * (2.0 / n)


def cross_entropy_output_grad(logits: Tensor, target: Tensor) -> Tensor:
    """Gradient of ``cross_entropy(logits, target).sum()`` with respect to ``logits``."""
    probs = torch.softmax(logits, dim=-1)
    onehot = torch.zeros_like(probs).scatter_(
        -1, target.expand(logits.shape[:-1]).unsqueeze(-1), 1.0
    )
    return (probs - onehot) / logits.shape[-2]


_LOSSES: dict[str, TaskLoss] = {"mse": mse, "cross_entropy": cross_entropy}

#: Analytic gradients of the built-in losses with respect to the network
#: output, used by networks that compute their inner-loop gradients by hand.
OUTPUT_GRADS: dict[TaskLoss, Callable[[Tensor, Tensor], Tensor]] = {
    mse: mse_output_grad,
    cross_entropy: cross_entropy_output_grad,
}


def get_loss(loss: LossName | TaskLoss) -> TaskLoss:
    """Resolve a loss name (``"mse"``, ``"cross_entropy"``) or return a callable unchanged."""
    if callable(loss):
        return loss
    if loss not in _LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(_LOSSES)} or a callable")
    return _LOSSES[loss]


class ScaledLoss:
    """``factor * loss``, with the matching output gradient when ``loss`` has one.

    Inner loops take steps of ``lr * gradient``; scaling the loss instead
    multiplies the small output gradient ``[T, N, O]`` rather than the weight
    gradient ``[T, P]`` (and its backward pass) at every step.

    Parameters
    ----------
    loss
        A task loss ``(out, y) -> [*B]``.
    factor
        A float or a scalar tensor (it may carry gradients).

    """

    def __init__(self, loss: TaskLoss, factor: float | Tensor) -> None:
        self.loss = loss
        self.factor = factor
        grad = OUTPUT_GRADS.get(loss) or getattr(loss, "output_grad", None)
        self._output_grad: Callable[[Tensor, Tensor], Tensor] | None = grad

    def __call__(self, out: Tensor, y: Tensor) -> Tensor:
        """``factor * loss(out, y)``, ``[*B]``."""
        return self.factor * self.loss(out, y)

    @property
    def output_grad(self) -> Callable[[Tensor, Tensor], Tensor] | None:
        """``(out, y) -> factor * d loss / d out``, or ``None`` if ``loss`` has no analytic one."""
        grad = self._output_grad
        if grad is None:
            return None
        return lambda out, y: self.factor * grad(out, y)


class StandardizedMSE:
    """The mean squared error in units of the targets' standard deviation: ``mse(out/s, y/s)``.

    Parameters
    ----------
    scale
        The targets' standard deviation per output ``[O]``.

    """

    def __init__(self, scale: Tensor) -> None:
        self.scale = scale

    def __call__(self, out: Tensor, y: Tensor) -> Tensor:
        """``mse(out / s, y / s)`` per task, ``[*B]``."""
        s = self.scale.to(out.dtype)
        return mse(out / s, y / s)

    def output_grad(self, out: Tensor, y: Tensor) -> Tensor:
        """Gradient of the summed loss with respect to ``out``."""
        return mse_output_grad(out, y) / self.scale.to(out.dtype).pow(2)
