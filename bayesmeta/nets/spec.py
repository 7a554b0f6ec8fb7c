"""Describe a built-in network as JSON and build it again: what checkpoints store.

Only :class:`~bayesmeta.nets.MLP` and :class:`~bayesmeta.nets.Conv4` describe
themselves; a learner on any other module is saved with its weights, but must be
rebuilt by the user before loading them.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bayesmeta.nets.conv import Conv4
from bayesmeta.nets.mlp import MLP

__all__ = ["build_net", "net_spec"]


def net_spec(net: nn.Module) -> dict[str, Any] | None:
    """The JSON-ready description of ``net`` (``None`` if it is not a built-in network).

    Returns
    -------
    dict or None
        ``{"sizes": [...], "activation": ...}`` for an MLP, ``{"conv4": {...}}``
        for a Conv4.

    """
    if isinstance(net, MLP):
        return {"sizes": list(net.sizes), "activation": net.activation_name}
    if isinstance(net, Conv4):
        return {"conv4": net.config()}
    return None


def build_net(spec: object) -> nn.Module:
    """A fresh network (new weights) from :func:`net_spec`'s description.

    Raises
    ------
    ValueError
        If ``spec`` does not describe a built-in network.

    """
    if isinstance(spec, dict) and isinstance(spec.get("conv4"), dict):
        return Conv4(**spec["conv4"])
    if isinstance(spec, dict) and "sizes" in spec:
        return MLP(spec["sizes"], spec.get("activation", "relu"))
    raise ValueError(
        "the checkpoint does not describe its network (only an MLP or a Conv4 rebuilds "
        "itself); build the learner yourself and call load_state_dict"
    )
