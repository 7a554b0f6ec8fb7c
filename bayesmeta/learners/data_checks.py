"""Checks of a learner's data against its network and objective, and of adapted weights.

Shared by every :class:`~bayesmeta.learners.base.MetaLearner`: the messages name
the learner and say how to fix the data or the settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import NonFiniteLossError, ShapeError
from bayesmeta.nets.mlp import MLP

__all__ = ["check_adapted", "check_io"]


def check_io(
    x: Tensor,
    y: Tensor,
    *,
    target_kind: str,
    objective: str,
    net: nn.Module,
    net_gives_scores: bool,
) -> None:
    """Raise unless data ``x``, ``y`` suit the objective and (an MLP) network.

    Raises
    ------
    ShapeError
        If the targets' dtype does not fit ``target_kind`` (regression or
        classification), or the features or outputs do not fit the network.
    ValueError
        If class labels fall outside the network's outputs.

    """
    if target_kind == "regression" and not y.is_floating_point():
        raise ShapeError(
            f"{objective} needs floating regression targets, got {y.dtype}; "
            "use the classification objective for class labels"
        )
    if target_kind == "classification" and y.is_floating_point():
        raise ShapeError(f"{objective} needs integer class labels as targets")
    if isinstance(net, MLP):
        if x.shape[-1] != net.in_features:
            raise ShapeError(
                f"the network takes {net.in_features} input feature(s) but support_x "
                f"has shape {fmt_shape(x.shape)}"
            )
        if y.is_floating_point() and y.shape[-1] != net.out_features:
            raise ShapeError(
                f"the network has {net.out_features} output(s) but support_y has "
                f"shape {fmt_shape(y.shape)}"
            )
        scores = target_kind == "classification" and net_gives_scores
        if scores and y.numel():
            low, high, c = int(y.min()), int(y.max()), net.out_features
            if low < 0 or high >= c:
                raise ValueError(
                    f"support_y holds class labels {low}..{high} but the network has {c} "
                    f"output(s) (classes 0..{c - 1}); relabel the classes or widen the "
                    "network's last layer"
                )


def check_adapted(weights: Sequence[Tensor], learner: str, *, clip_hint: bool) -> None:
    """Raise if test-time adaptation left NaN or infinite weights (each ``[T, ...]``).

    Raises
    ------
    NonFiniteLossError
        Naming the diverged tasks; ``clip_hint`` adds the learner's
        ``inner_grad_clip`` to the remedies.

    """
    bad = torch.zeros(weights[0].shape[0], dtype=torch.bool, device=weights[0].device)
    for w in weights:
        bad |= ~torch.isfinite(w.reshape(w.shape[0], -1)).all(-1)
    if bool(bad.any()):
        tasks = bad.nonzero().flatten().tolist()
        clip = ", or set inner_grad_clip" if clip_hint else ""
        raise NonFiniteLossError(
            f"{learner}.adapt diverged: the adapted weights of task(s) "
            f"{tasks[:10]} are NaN or infinite. Lower inner_lr or steps{clip}, or check "
            "the support data for extreme values"
        )
