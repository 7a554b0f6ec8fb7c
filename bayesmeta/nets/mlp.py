"""A multilayer perceptron that evaluates many weight sets in one call."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError

__all__ = ["ACTIVATIONS", "MLP"]

# Backpropagation through each activation: ``delta * f'(a)`` written with the
# activation's output ``h`` (for ReLU, PyTorch's own ``threshold_backward``, which
# is itself differentiable).
_BACKPROP: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "relu": lambda delta, h: torch.ops.aten.threshold_backward(delta, h, 0.0),
    "tanh": lambda delta, h: delta * (1.0 - h * h),
    "sigmoid": lambda delta, h: delta * (h * (1.0 - h)),
}

# ``delta * d f'(a) / d h``, the second-order term of the above (zero for ReLU).
_CURVATURE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "tanh": lambda delta, h: delta * (-2.0 * h),
    "sigmoid": lambda delta, h: delta * (1.0 - 2.0 * h),
}


def _backprop(
    activation: str, delta: Tensor, hidden: Sequence[Tensor], weights: Sequence[Tensor]
) -> tuple[tuple[Tensor, ...], list[Tensor], list[Tensor]]:
    """The backward pass from the output gradient ``delta`` ``[T, N, O]``.

    ``hidden`` holds each layer's input (``x``, then the hidden activations),
    ``weights`` each layer's ``W`` ``[T, out, in]``. Returns the gradients
    ``(dW_1, db_1, ..., dW_L, db_L)``, each layer's output gradient and each
    hidden layer's ``delta W`` before the activation's derivative.
    """
    layers = len(weights)
    grads: list[Tensor] = [delta] * (2 * layers)
    deltas: list[Tensor] = [delta] * layers
    pre: list[Tensor] = [delta] * (layers - 1)
    backprop = _BACKPROP[activation]
    for i in range(layers - 1, -1, -1):
        deltas[i] = delta
        grads[2 * i] = torch.bmm(delta.mT, hidden[i])
        grads[2 * i + 1] = delta.sum(-2)
        if i > 0:
            pre[i - 1] = torch.bmm(delta, weights[i])
            delta = backprop(pre[i - 1], hidden[i])
    return tuple(grads), deltas, pre


class _Backprop(torch.autograd.Function):
    """The MLP's backward pass as one autograd node: ``(delta, hidden, W) -> weight gradients``.

    Its backward is the vector-Jacobian product of the backward pass, written
    out (the forward-mode sweep of Pearlmutter's Hessian-vector product): given
    cotangents ``(U_l, c_l)`` of ``(dW_l, db_l)`` it returns those of the output
    gradient, of the hidden activations (which autograd carries on through the
    recorded forward pass and the loss's output gradient) and of the weights.
    Exact second-order MAML then records a handful of nodes per inner step
    instead of every operation of the backward pass. Differentiable once: the
    meta-gradient, not its own derivative.

    Inputs: the activation's name, ``step``, the output gradient, each layer's
    input (``L`` tensors) and the weights ``(W_1, b_1, ..., W_L, b_L)``. With
    ``step`` the outputs are the weights plus their gradients (a descent step
    when the output gradient carries ``-lr``), which saves the step's own nodes.
    """

    @staticmethod
    def forward(
        ctx: Any, activation: str, step: bool, delta: Tensor, *tensors: Tensor
    ) -> tuple[Tensor, ...]:
        layers = len(tensors) // 3
        hidden, params = tensors[:layers], tensors[layers:]
        weights = params[0::2]
        grads, deltas, pre = _backprop(activation, delta, hidden, weights)
        ctx.activation = activation
        ctx.layers = layers
        ctx.step = step
        ctx.save_for_backward(*hidden, *weights, *deltas, *pre)
        if step:
            return tuple(p + g for p, g in zip(params, grads, strict=True))
        return grads

    @staticmethod
    def backward(ctx: Any, *cotangents: Tensor) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():
            # A derivative of this backward would miss the saved activations' own
            # dependence on the weights: refuse rather than return a wrong one.
            raise RuntimeError(
                "the MLP's hand-written inner-loop gradient (MLP.batched_loss_grad) is "
                "differentiable once (the meta-gradient); differentiating through its "
                "derivative (create_graph=True) is not supported"
            )
        layers: int = ctx.layers
        saved = ctx.saved_tensors
        hidden = saved[:layers]
        weights = saved[layers : 2 * layers]
        deltas = saved[2 * layers : 3 * layers]
        pre = saved[3 * layers :]
        backprop = _BACKPROP[ctx.activation]
        curvature = _CURVATURE.get(ctx.activation)
        hidden_bar: list[Tensor | None] = [None] * layers
        weight_bar: list[Tensor | None] = [None] * layers
        carry: Tensor | None = None  # cotangent of the next layer's delta, from this one's
        extra: Tensor | None = None  # second-order term of the next hidden activation
        delta_bar = cotangents[0]
        for i in range(layers):
            u, c = cotangents[2 * i], cotangents[2 * i + 1]
            # dW_i = delta_i^T h_i and db_i = sum_n delta_i
            start = c.unsqueeze(-2) if carry is None else carry + c.unsqueeze(-2)
            d = torch.baddbmm(start, hidden[i], u.mT)  # cotangent of delta_i
            if i > 0 or ctx.needs_input_grad[3]:
                h_bar = torch.bmm(deltas[i], u)
                hidden_bar[i] = h_bar if extra is None else h_bar + extra
            if i == layers - 1:
                delta_bar = d
                break
            # delta_i = f'(h_{i+1}) * (delta_{i+1} W_{i+1})
            h = hidden[i + 1]
            z_bar = backprop(d, h)
            carry = torch.bmm(z_bar, weights[i + 1].mT)
            weight_bar[i + 1] = torch.bmm(deltas[i + 1].mT, z_bar)
            extra = None if curvature is None else d * curvature(pre[i], h)
        if not ctx.step:
            # the biases do not enter the gradients
            param_bar: list[Tensor | None] = []
            for w_bar in weight_bar:
                param_bar += [w_bar, None]
            return (None, None, delta_bar, *hidden_bar, *param_bar)
        # the step's outputs are the weights plus the gradients: identity parts added
        param_bar = []
        for i, w_bar in enumerate(weight_bar):
            u = cotangents[2 * i]
            param_bar += [u if w_bar is None else u + w_bar, cotangents[2 * i + 1]]
        return (None, None, delta_bar, *hidden_bar, *param_bar)


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
        ``torch.autograd.grad``. Where gradients are enabled the backward pass
        is recorded as one autograd node whose own derivative is written out,
        so the result can be differentiated once more (exact second-order
        MAML) at a fraction of the autograd overhead; it is differentiable
        once, not twice (a third derivative raises).

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
        return self._hand_written(params, x, output_grad, y, step=False)

    def batched_descent_step(
        self,
        params: Sequence[Tensor],
        x: Tensor,
        output_grad: Callable[[Tensor, Tensor], Tensor],
        y: Tensor,
    ) -> tuple[Tensor, ...] | None:
        """``params`` plus the gradients that :meth:`batched_loss_grad` gives.

        With ``output_grad`` scaled by ``-lr`` this is one gradient step (the
        inner loop's), differentiable like :meth:`batched_loss_grad` but
        recorded as one autograd node with the backward pass. ``None`` where
        :meth:`batched_loss_grad` gives ``None``.
        """
        return self._hand_written(params, x, output_grad, y, step=True)

    def _hand_written(
        self,
        params: Sequence[Tensor],
        x: Tensor,
        output_grad: Callable[[Tensor, Tensor], Tensor],
        y: Tensor,
        *,
        step: bool,
    ) -> tuple[Tensor, ...] | None:
        if self.activation_name not in _BACKPROP or x.dim() != 3 or params[0].dim() != 3:
            return None
        hidden = [x]
        h = x
        last = len(params) // 2 - 1
        for i in range(last + 1):
            h = self._affine(h, params[2 * i], params[2 * i + 1])
            if i < last:
                h = self.activation(h)
                hidden.append(h)
        delta = output_grad(h, y)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (delta, *hidden, *params)):
            # One autograd node for the whole backward pass; its own backward (the
            # second-order terms) is written out in _Backprop, not recorded op by op.
            out: tuple[Tensor, ...] = _Backprop.apply(
                self.activation_name, step, delta, *hidden, *params
            )
            return out
        grads = _backprop(self.activation_name, delta, hidden, params[0::2])[0]
        if step:
            return tuple(p + g for p, g in zip(params, grads, strict=True))
        return grads

    def extra_repr(self) -> str:
        """Layer widths and activation, shown in ``repr``."""
        return f"sizes={self.sizes}, activation={self.activation_name!r}"
