"""A multilayer perceptron that evaluates many weight sets in one call."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError

__all__ = ["ACTIVATIONS", "MLP"]

# Backpropagation through each activation: ``delta * f'(a)`` written with the
# activation's input ``a`` and output ``h``.
_BACKPROP: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "relu": lambda delta, a, h: torch.where(a > 0, delta, 0.0),
    "tanh": lambda delta, a, h: delta * (1.0 - h * h),
    "sigmoid": lambda delta, a, h: delta * (h * (1.0 - h)),
}

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": nn.functional.elu,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
    "softplus": nn.functional.softplus,
    "leaky_relu": nn.functional.leaky_relu,
}


class MLP(nn.Module):
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Besides the ordinary ``forward``, it has :meth:`batched_forward`, which
    takes the weights as arguments with any leading batch shape ``B`` (tasks,
    posterior samples, or both) and evaluates all weight sets with batched
    matrix products. :class:`~bayesmeta.nets.FunctionalNet` uses it instead of
    the generic ``torch.func.vmap`` path.

    Parameters
    ----------
    sizes
        Layer widths, input first and output last, e.g. ``(1, 40, 40, 1)``.
    activation
        Name of the hidden-layer nonlinearity (one of :data:`ACTIVATIONS`) or
        a callable applied elementwise. The output layer is linear.

    Examples
    --------
    >>> net = MLP((1, 40, 40, 1))
    >>> net(torch.zeros(7, 1)).shape
    torch.Size([7, 1])

    """

    def __init__(
        self, sizes: Sequence[int], activation: str | Callable[[Tensor], Tensor] = "relu"
    ) -> None:
        super().__init__()
        try:
            sizes = tuple(operator.index(s) for s in sizes)
        except TypeError as err:
            raise TypeError(
                f"sizes must be a sequence of ints (layer widths), got {sizes!r}"
            ) from err
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(
                f"sizes must list at least an input and an output width, all >= 1, got {sizes}"
            )
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(
                    f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)} "
                    "or pass a callable"
                )
            self.activation_name = activation
            self.activation = ACTIVATIONS[activation]
        elif callable(activation):
            self.activation_name = getattr(activation, "__name__", "custom")
            self.activation = activation
        else:
            raise TypeError("activation must be a name or a callable")
        self.sizes = sizes
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    @property
    def in_features(self) -> int:
        """Width of the input layer ``D``."""
        return self.sizes[0]

    @property
    def out_features(self) -> int:
        """Width of the output layer ``O``."""
        return self.sizes[-1]

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the network on ``x`` ``[..., D]``; returns ``[..., O]``."""
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(
                f"x must have shape [..., D] with the network's {self.in_features} input "
                f"feature(s), got {fmt_shape(x.shape)}"
            )
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < last:
                h = self.activation(h)
        return h

    def batched_forward(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        """Evaluate the network for a batch of weight sets.

        Parameters
        ----------
        params
            ``(W_1, b_1, ..., W_L, b_L)`` in the order of ``named_parameters``,
            each with a leading batch shape ``B``: ``W_l`` is
            ``[*B, out_l, in_l]`` and ``b_l`` is ``[*B, out_l]``.
        x
            Inputs ``[*B', N, D]`` where ``B'`` broadcasts against ``B`` (for
            example ``x`` ``[T, N, D]`` against weights ``[S, T, ...]``).

        Returns
        -------
        Tensor
            Outputs ``[*broadcast(B, B'), N, O]``.

        """
        h = x
        last = len(params) // 2 - 1
        for i in range(last + 1):
            h = self._affine(h, params[2 * i], params[2 * i + 1])
            if i < last:
                h = self.activation(h)
        return h

    def _affine(self, h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        if h.dim() == 3 and weight.dim() == 3 and h.shape[0] == weight.shape[0]:
            # One fused batched kernel for the common [T, N, D] case.
            return torch.baddbmm(bias.unsqueeze(-2), h, weight.transpose(-1, -2))
        return torch.matmul(h, weight.transpose(-1, -2)) + bias.unsqueeze(-2)

    def batched_loss_grad(
        self,
        params: Sequence[Tensor],
        x: Tensor,
        output_grad: Callable[[Tensor, Tensor], Tensor],
        y: Tensor,
    ) -> tuple[Tensor, ...] | None:
        """Gradients of a summed per-task loss, by a hand-written backward pass.

        The inner loop of the gradient-based learners uses this instead of
        ``torch.autograd.grad``: the result is built from ordinary
        differentiable operations, so it can itself be differentiated (exact
        second-order MAML) at a fraction of the autograd overhead.

        Parameters
        ----------
        params
            Weights with batch shape ``[T]`` (see :meth:`batched_forward`).
        x
            Inputs ``[T, N, D]``.
        output_grad
            ``(out, y) -> d loss / d out`` for the summed loss.
        y
            Targets.

        Returns
        -------
        tuple of Tensor or None
            Gradients shaped like ``params``, or ``None`` when this network's
            activation has no hand-written derivative (the caller then uses
            autograd).

        """
        backprop = _BACKPROP.get(self.activation_name)
        if backprop is None or x.dim() != 3 or params[0].dim() != 3:
            return None
        inputs = [x]
        pre: list[Tensor] = []
        h = x
        last = len(params) // 2 - 1
        for i in range(last + 1):
            a = self._affine(h, params[2 * i], params[2 * i + 1])
            if i < last:
                pre.append(a)
                h = self.activation(a)
                inputs.append(h)
            else:
                h = a
        delta = output_grad(h, y)
        grads: list[Tensor] = [delta] * len(params)
        for i in range(last, -1, -1):
            grads[2 * i] = torch.bmm(delta.transpose(-1, -2), inputs[i])
            grads[2 * i + 1] = delta.sum(-2)
            if i > 0:
                delta = backprop(torch.bmm(delta, params[2 * i]), pre[i - 1], inputs[i])
        return tuple(grads)

    def extra_repr(self) -> str:
        """Layer widths and activation, shown in ``repr``."""
        return f"sizes={self.sizes}, activation={self.activation_name!r}"
