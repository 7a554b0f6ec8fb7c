"""What a weight prior is laid over: a centre for the weights, positive scales, a fit check.

The helpers that :class:`~bayesmeta.model.weight_prior.WeightPrior` and the
hyper-prior (:mod:`bayesmeta.model.hyper`) share, about the network's weights
rather than about any prior family.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import Tensor

from bayesmeta._checks import fmt_shape, is_bool
from bayesmeta.errors import ShapeError
from bayesmeta.nets.functional import FunctionalNet

__all__ = ["WeightLayout", "check_fits", "positive_vector", "weights_centre"]


def positive_vector(name: str, value: float | Tensor, size: int, per: str, like: Tensor) -> Tensor:
    """``value`` as a positive finite vector ``[size]`` (a float is broadcast), a copy.

    Raises
    ------
    TypeError
        If ``value`` is neither a number nor a tensor, or is a bool or a bool
        tensor (not taken for 0 or 1).
    ShapeError
        If it is a tensor of another shape (``per`` says what one value is for).
    ValueError
        If any value is not positive and finite.

    """
    if is_bool(value):
        raise TypeError(f"{name} must be a float or a floating tensor, got a bool")
    if not isinstance(value, int | float | Tensor):
        raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    v = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if v.dim() == 0:
        v = v.expand(size)
    if v.shape != (size,):
        raise ShapeError(
            f"{name} must be a float or have shape [{size}] ({per}), got {fmt_shape(v.shape)}"
        )
    if not bool(torch.isfinite(v).all()) or bool((v <= 0).any()):
        raise ValueError(f"{name} must be positive and finite")
    return v.detach().clone()


def weights_centre(fnet: FunctionalNet, loc: Literal["module", "zeros"] | Tensor) -> Tensor:
    """A centre ``[P]`` for ``fnet``'s weights: a copy of them, zeros, or a given vector.

    Raises
    ------
    ShapeError
        If a given ``loc`` does not have the network's ``P`` weights.
    ValueError
        For another ``loc``.

    """
    if isinstance(loc, Tensor):
        if loc.shape != (fnet.num_params,):
            raise ShapeError(
                f"the prior's loc has shape {fmt_shape(loc.shape)} but the network has "
                f"P = {fnet.num_params} weights"
            )
        return loc
    if loc == "module":
        return fnet.flatten([p.detach() for p in fnet.params()])
    if loc == "zeros":
        return torch.zeros(fnet.num_params, dtype=fnet.params()[0].dtype)
    raise ValueError(f"loc must be 'tied', 'module', 'zeros' or a tensor, got {loc!r}")


class WeightLayout(Protocol):
    """What :func:`check_fits` reads of a prior: its size and how its scales are laid out."""

    @property
    def num_params(self) -> int:
        """``P``."""
        ...

    @property
    def scale_per(self) -> str:
        """``"weight"`` or ``"tensor"``."""
        ...

    @property
    def numels(self) -> tuple[int, ...]:
        """Sizes of the network's parameter tensors."""
        ...


def check_fits(prior: WeightLayout, fnet: FunctionalNet) -> None:
    """Raise :class:`ShapeError` unless a weight prior's layout fits ``fnet``'s weights."""
    name = type(prior).__name__
    if prior.num_params != fnet.num_params:
        raise ShapeError(
            f"the prior is over P = {prior.num_params} weights but the network has "
            f"P = {fnet.num_params}; build it with {name}.for_net(fnet)"
        )
    if prior.scale_per == "tensor" and prior.numels != fnet.numels:
        raise ShapeError(
            f"the prior's per-tensor sizes {prior.numels} differ from the network's {fnet.numels}"
        )
