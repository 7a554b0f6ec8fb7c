"""Evaluate any ``torch.nn.Module`` with weights held outside it, batched.

This is the engine every learner shares. A learner keeps its meta-parameters
in an ordinary module; the inner loop and the Bayesian learners hold per-task
(and per-sample) copies of the weights as tensors with leading batch
dimensions, either as a tuple matching ``module.named_parameters()`` or as one
flat vector ``[*B, P]``, and call :class:`FunctionalNet` to run them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from bayesmeta._checks import check_like, check_tensor, fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.nets.losses import OUTPUT_GRADS, TaskLoss
from bayesmeta.nets.units import Units

__all__ = ["BatchedForward", "FunctionalNet"]


@runtime_checkable
class BatchedForward(Protocol):
    """A module that evaluates batched weight sets itself (see :class:`~bayesmeta.nets.MLP`)."""

    def batched_forward(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        """Evaluate weights ``[*B, *shape]`` on inputs ``[*B, N, *features]``."""
        ...


class FunctionalNet:
    """A functional view of ``module``: ``fnet(params, x)``.

    Parameters
    ----------
    module
        Any module whose ``forward`` maps ``[N, *features]`` to ``[N, O]``
        (or ``[N, C]`` logits). Modules with a ``batched_forward`` method are
        evaluated through it; others through ``torch.func.vmap`` of
        ``functional_call``. Buffers are read from the module and must not be
        updated in the forward pass (use ``track_running_stats=False`` for
        batch norm).
    feature_dims
        Number of dimensions of one input point: 1 for vectors ``[D]``
        (the default), 3 for images ``[C, H, W]``. Read from
        ``module.feature_dims`` when the module has that attribute.

    Attributes
    ----------
    names : tuple of str
        Parameter names, in ``module.named_parameters()`` order.
    shapes : tuple of torch.Size
        Unbatched parameter shapes.
    num_params : int
        Total number of weights ``P``.

    """

    #: Most input points per vectorised call on the CPU, in whole weight sets (the
    #: ``chunk_size`` of ``torch.func.vmap``); ``None``: all at once. On a 2-core CPU a
    #: Conv4 forward and backward over 32 tasks of 80 28x28 images took 0.61 s one task
    #: per call against 1.85 s all at once (large activations do not stay in cache). The
    #: batched-matmul path of :class:`~bayesmeta.nets.MLP` is not chunked; neither is CUDA.
    cpu_points_per_call: int | None = 128

    def __init__(self, module: nn.Module, *, feature_dims: int | None = None) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the module has no trainable parameters to meta-learn")
        self.module = module
        self.names = tuple(n for n, _ in named)
        self.shapes = tuple(p.shape for _, p in named)
        self.numels = tuple(p.numel() for _, p in named)
        self.num_params = sum(self.numels)
        fd = feature_dims if feature_dims is not None else getattr(module, "feature_dims", 1)
        if not isinstance(fd, int) or fd < 1:
            raise ValueError(f"feature_dims must be an int >= 1, got {fd!r}")
        self.feature_dims = fd
        self._batched = module.batched_forward if isinstance(module, BatchedForward) else None
        #: Standardisation around the network (see :mod:`bayesmeta.nets.units`); a learner
        #: sets its own. ``None`` or unfitted: the identity.
        self.units: Units | None = None

    def params(self) -> tuple[Tensor, ...]:
        """The module's own (unbatched) trainable parameters, in order."""
        named = dict(self.module.named_parameters())
        return tuple(named[n] for n in self.names)

    def batch_shape(self, params: Sequence[Tensor]) -> torch.Size:
        """The leading batch shape ``B`` of a weight tuple; checks every shape."""
        if len(params) != len(self.shapes):
            raise ShapeError(f"expected {len(self.shapes)} weight tensors, got {len(params)}")
        first = params[0]
        nb = first.dim() - len(self.shapes[0])
        batch = first.shape[: max(nb, 0)]
        for name, p, shape in zip(self.names, params, self.shapes, strict=True):
            if nb < 0 or p.shape != (*batch, *shape):
                want = "[*B, " + fmt_shape(shape)[1:]
                raise ShapeError(
                    f"weight {name!r} must have shape {want} with the same batch shape B "
                    f"as the others, got {fmt_shape(p.shape)}"
                )
        return batch

    def check_inputs(
        self,
        name: str,
        x: object,
        batch: Sequence[int],
        *,
        like: Tensor | None = None,
        owner: str = "the weights",
    ) -> Tensor:
        """Check that ``x`` is finite inputs ``[*batch, N, *features]`` for this network.

        Vector inputs must have as many features as the module's
        ``in_features`` (when it has one). With ``like`` (a weight tensor),
        ``x`` must also meet its device and dtype (see
        :func:`~bayesmeta._checks.check_like`).

        Raises
        ------
        ValueError
            Naming ``name`` and the expected shape, dtype or device.

        """
        if like is not None and isinstance(x, Tensor):
            check_like(name, x, like, owner)
        xt = check_tensor(name, x)
        want = len(batch) + 1 + self.feature_dims
        if xt.dim() != want or tuple(xt.shape[: len(batch)]) != tuple(batch):
            raise ShapeError(
                f"{name} must have shape [{''.join(f'{b}, ' for b in batch)}N, *features] "
                f"({self.feature_dims} feature dimension(s)), got {fmt_shape(xt.shape)}"
            )
        if not xt.is_floating_point():
            raise ShapeError(f"{name} must be a floating tensor, got {xt.dtype}")
        width = getattr(self.module, "in_features", None)
        if self.feature_dims == 1 and isinstance(width, int) and xt.shape[-1] != width:
            raise ShapeError(
                f"{name} has {xt.shape[-1]} feature(s) (shape {fmt_shape(xt.shape)}) but the "
                f"network takes {width} input feature(s)"
            )
        return xt

    def expand(self, params: Sequence[Tensor], batch: Sequence[int]) -> tuple[Tensor, ...]:
        """Broadcast unbatched ``params`` to batch shape ``batch`` (no copy)."""
        return tuple(p.expand(*batch, *p.shape) for p in params)

    def flatten(self, params: Sequence[Tensor]) -> Tensor:
        """Concatenate a weight tuple into one vector ``[*B, P]``."""
        batch = self.batch_shape(params)
        return torch.cat([p.reshape(*batch, -1) for p in params], dim=-1)

    def unflatten(self, flat: Tensor) -> tuple[Tensor, ...]:
        """Split ``[*B, P]`` into the weight tuple (views, no copy)."""
        if flat.dim() < 1 or flat.shape[-1] != self.num_params:
            raise ShapeError(
                f"flat weights must have shape [*B, P] with P = {self.num_params}, "
                f"got {fmt_shape(flat.shape)}"
            )
        batch = flat.shape[:-1]
        parts = torch.split(flat, list(self.numels), dim=-1)
        return tuple(p.reshape(*batch, *s) for p, s in zip(parts, self.shapes, strict=True))

    def loss_grad(
        self, params: Sequence[Tensor], x: Tensor, y: Tensor, loss: TaskLoss, *, create_graph: bool
    ) -> tuple[Tensor, ...]:
        """Per-task gradients of ``loss(fnet(params, x), y)``, all tasks at once.

        Parameters
        ----------
        params
            Weights with batch shape ``[T]``; they must require grad when
            ``create_graph`` or when autograd is used.
        x, y
            Inputs ``[T, N, *features]`` and targets.
        loss
            Per-task loss returning ``[T]``.
        create_graph
            Keep the result differentiable with respect to ``params`` (for
            second-order meta-gradients).

        Returns
        -------
        tuple of Tensor
            ``d loss_t / d params_t`` in row ``t`` of each weight.

        """
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            grads = self._hand_written("batched_loss_grad", params, x, y, loss, None)
        if grads is not None:
            return grads
        if not create_graph:
            params = tuple(p.detach().requires_grad_(True) for p in params)
        with torch.enable_grad():
            total = loss(self(params, x), y).sum()
            return torch.autograd.grad(total, tuple(params), create_graph=create_graph)

    def descent_step(
        self, params: Sequence[Tensor], x: Tensor, y: Tensor, loss: TaskLoss, lr: float | Tensor
    ) -> tuple[Tensor, ...] | None:
        """One differentiable gradient step ``params - lr * grad``, where the network has one.

        The same step as :meth:`loss_grad` with ``create_graph=True`` followed by
        the update, taken by the module's ``batched_descent_step`` (an
        :class:`~bayesmeta.nets.MLP`'s backward pass and update as one
        autograd node). ``lr`` is a float or a scalar tensor (which may carry
        gradients). Returns ``None`` where the module or the loss has no such
        path (the caller then takes :meth:`loss_grad` and steps itself).
        """
        return self._hand_written("batched_descent_step", params, x, y, loss, lr)

    def _hand_written(
        self,
        method: str,
        params: Sequence[Tensor],
        x: Tensor,
        y: Tensor,
        loss: TaskLoss,
        lr: float | Tensor | None,
    ) -> tuple[Tensor, ...] | None:
        """The module's hand-written backward pass (``method``) with the loss's output gradient."""
        manual = getattr(self.module, method, None)
        output_grad = OUTPUT_GRADS.get(loss) or getattr(loss, "output_grad", None)
        if manual is None or output_grad is None:
            return None
        units = self.units
        if units is not None and units.fitted:
            x = units.inputs(x)
            output_grad = _through_outputs(units, output_grad)
        if lr is not None:
            output_grad = _descent(output_grad, lr)
        grads: tuple[Tensor, ...] | None = manual(params, x, output_grad, y)
        return grads

    def __call__(self, params: Sequence[Tensor] | Tensor, x: Tensor) -> Tensor:
        """Evaluate the network for every weight set in a batch.

        Parameters
        ----------
        params
            A weight tuple with batch shape ``B`` (each ``[*B, *shape]``), or
            flat weights ``[*B, P]``; ``B`` may be ``()``, ``[T]`` or ``[S, T]``.
        x
            Inputs ``[*B', N, *features]`` with ``B'`` broadcastable to ``B``
            (e.g. ``[T, N, D]`` for weights ``[S, T, P]``).

        Returns
        -------
        Tensor
            ``[*B, N, O]``.

        """
        if isinstance(params, Tensor):
            params = self.unflatten(params)
        units = self.units
        if units is None or not units.fitted:
            return self._raw(params, x)
        return units.outputs(self._raw(params, units.inputs(x)))

    def _raw(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        """The network itself, in its own (standardised) units."""
        if self._batched is not None:
            return self._batched(params, x)
        batch = self.batch_shape(params)
        if len(batch) == 0 and x.dim() == self.feature_dims + 1:
            return functional_call(self.module, dict(zip(self.names, params, strict=True)), (x,))
        return self._vmapped(params, x, batch)

    def _vmapped(self, params: Sequence[Tensor], x: Tensor, batch: torch.Size) -> Tensor:
        # x is [*B', N, *features]; the event part is what the module sees per task.
        event_dims = self.feature_dims + 1
        if x.dim() < event_dims:
            raise ShapeError(
                f"inputs must have shape [*B, N, *features] with {self.feature_dims} feature "
                f"dimension(s), got {fmt_shape(x.shape)}"
            )
        event = x.shape[x.dim() - event_dims :]
        full = torch.broadcast_shapes(batch, x.shape[: x.dim() - event_dims])
        params = tuple(p.expand(*full, *s) for p, s in zip(params, self.shapes, strict=True))
        xb = x.expand(*full, *event).reshape(-1, *event)
        batch = full
        flat_params = tuple(p.reshape(-1, *s) for p, s in zip(params, self.shapes, strict=True))

        def one(ps: tuple[Tensor, ...], xi: Tensor) -> Tensor:
            return functional_call(self.module, dict(zip(self.names, ps, strict=True)), (xi,))

        limit = self.cpu_points_per_call
        chunk = None
        if limit is not None and xb.device.type == "cpu":
            chunk = max(1, limit // max(int(event[0]), 1))
        out: Tensor = vmap(one, chunk_size=chunk)(flat_params, xb)
        return out.reshape(*batch, *out.shape[1:])


def _descent(
    output_grad: Callable[[Tensor, Tensor], Tensor], lr: float | Tensor
) -> Callable[[Tensor, Tensor], Tensor]:
    """``-lr`` times ``output_grad``: the backward pass then gives the step itself."""
    neg = -lr
    return lambda h, y: output_grad(h, y) * neg


def _through_outputs(
    units: Units, output_grad: Callable[[Tensor, Tensor], Tensor]
) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss's gradient with respect to the network's raw outputs, through ``units``."""

    def grad(h: Tensor, y: Tensor) -> Tensor:
        g = output_grad(units.outputs(h), y)
        scale = units.target_scale()
        return g if scale is None else g * scale.to(g.dtype)

    return grad
