"""The source network's weights in the target network: checks, and which weights move."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.nets.functional import FunctionalNet

__all__ = ["free_mask", "load_source"]


def load_source(source: nn.Module | Mapping[str, Tensor], net: nn.Module | None) -> nn.Module:
    """The target network with the source's weights, after checking that they match.

    Parameters
    ----------
    source
        Source network or ``state_dict``.
    net
        Target network (a deep copy of ``source`` when ``None``).

    Raises
    ------
    ShapeError
        Naming the parameters missing from the source, present only in it, or
        with different shapes.

    """
    if not isinstance(source, nn.Module | Mapping):
        raise TypeError(
            "source must be a torch.nn.Module or its state_dict (a mapping of name to tensor), "
            f"got {type(source).__name__}; load a saved file with torch.load first"
        )
    if net is None:
        if not isinstance(source, nn.Module):
            raise TypeError("pass the target network as net= when source is a state dict")
        return copy.deepcopy(source)
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    state = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    target = dict(net.named_parameters())
    problems = [f"{n!r} is missing from the source" for n in target if n not in state]
    problems += [f"{n!r} is in the source only" for n in state if n not in net.state_dict()]
    for name, p in target.items():
        if name in state and tuple(state[name].shape) != tuple(p.shape):
            problems.append(
                f"{name!r} is {fmt_shape(state[name].shape)} in the source but "
                f"{fmt_shape(p.shape)} in the target"
            )
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise ShapeError(
            f"the source network does not match the target network: {shown}. For a new "
            "output layer, use BayesianLastLayer on the source's features"
        )
    target_net = copy.deepcopy(net)
    target_net.load_state_dict(state, strict=False)
    return target_net


def free_mask(fnet: FunctionalNet, freeze: Sequence[str]) -> Tensor:
    """``[P]`` bool: the weights not named by a ``freeze`` prefix."""
    if isinstance(freeze, str):
        freeze = (freeze,)
    for prefix in freeze:
        if not any(n == prefix or n.startswith(prefix + ".") for n in fnet.names):
            raise ValueError(
                f"freeze names {prefix!r}, which is not a parameter (or module) of the network; "
                f"its parameters are {list(fnet.names)}"
            )
    keep = [not any(n == f or n.startswith(f + ".") for f in freeze) for n in fnet.names]
    sizes = torch.tensor(fnet.numels)
    return torch.repeat_interleave(torch.tensor(keep), sizes)
