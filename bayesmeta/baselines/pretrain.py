"""Pre-train an encoder as an ordinary classifier of all training classes (Chen et al. 2019)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.functional import normalize

from bayesmeta._checks import check_count, fmt_shape
from bayesmeta.baselines._base import _positive
from bayesmeta.baselines.linear import Head
from bayesmeta.baselines.neighbours import NearestCentroid
from bayesmeta.errors import ShapeError
from bayesmeta.tasks.task import TaskBatch

__all__ = ["PretrainResult", "pretrain_encoder"]


class _CosineHead(nn.Module):
    """Logits ``scale * cos(z, w_c)`` (Baseline++'s classifier)."""

    def __init__(self, in_features: int, classes: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, in_features) * 0.01)
        self.scale = scale

    def forward(self, z: Tensor) -> Tensor:
        return self.scale * normalize(z, dim=-1) @ normalize(self.weight, dim=-1).T


class PretrainResult(dict[str, Any]):
    """What :func:`pretrain_encoder` did: ``steps`` run, ``best_step`` kept, ``val_accuracy``.

    ``val_accuracy`` is a list of ``(step, accuracy)`` of the nearest-centroid rule on the
    validation episodes (empty without them).
    """


def pretrain_encoder(
    encoder: nn.Module,
    x: Tensor,
    labels: Tensor,
    *,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 1e-3,
    head: Head = "linear",
    scale: float = 10.0,
    val: TaskBatch | None = None,
    eval_every: int = 100,
    seed: int = 0,
) -> PretrainResult:
    """Train ``encoder`` with a temporary head to classify all training classes at once.

    Chen et al.'s (2019) *Baseline* pre-training: ordinary mini-batch cross-entropy over every
    training class (not episodes), after which the head is thrown away and
    :class:`~bayesmeta.baselines.LinearProbe` fits a new one per episode. With ``val`` (episodes
    of validation classes, never the test classes) the encoder is scored every ``eval_every``
    steps by the nearest-centroid rule on its embedding, and the best state is kept (early
    stopping). The encoder is trained in place and left in eval mode.

    Parameters
    ----------
    encoder
        ``nn.Module`` mapping ``[B, *features]`` to embeddings ``[B, E]``.
    x
        Training inputs ``[M, *features]``.
    labels
        Integer labels ``[M]``; any values (they are mapped to ``0 .. C-1``).
    steps
        Optimiser steps, ``>= 1``.
    batch_size
        Examples per step, ``>= 1``.
    lr
        Adam's learning rate, ``> 0``.
    head
        ``"linear"`` (Baseline) or ``"cosine"`` (Baseline++) temporary classifier.
    scale
        The cosine head's logit scale.
    val
        Validation episodes for early stopping, or ``None`` to keep the last state.
    eval_every
        Steps between validation scores, ``>= 1``.
    seed
        Seed of the head's initialisation and the mini-batches.

    Returns
    -------
    PretrainResult
        ``{"steps": ..., "best_step": ..., "val_accuracy": [(step, acc), ...]}``.

    Raises
    ------
    ShapeError
        If ``x`` and ``labels`` disagree in length or ``labels`` is not 1-D.
    ValueError
        If there are fewer than two classes or a setting is out of range.

    """
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be an nn.Module, got {type(encoder).__name__}")
    if not isinstance(x, Tensor) or not isinstance(labels, Tensor):
        raise TypeError("x and labels must be torch tensors")
    if labels.dim() != 1 or labels.is_floating_point() or x.shape[:1] != labels.shape:
        raise ShapeError(
            f"labels must be integer [M] matching x [M, *features]; got x {fmt_shape(x.shape)}, "
            f"labels {fmt_shape(labels.shape)}"
        )
    n_steps = check_count("steps", steps, minimum=1)
    bs = check_count("batch_size", batch_size, minimum=1)
    every = check_count("eval_every", eval_every, minimum=1)
    _positive("lr", lr)
    if head not in ("linear", "cosine"):
        raise ValueError(f"head must be 'linear' or 'cosine', got {head!r}")
    classes, y = torch.unique(labels, return_inverse=True)
    if classes.numel() < 2:
        raise ValueError("pre-training needs at least two classes")
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        encoder.eval()
        dim = int(encoder(x[:2]).reshape(2, -1).shape[1])
    torch.manual_seed(int(seed))
    clf: nn.Module = (
        nn.Linear(dim, int(classes.numel()))
        if head == "linear"
        else _CosineHead(dim, int(classes.numel()), scale)
    )
    clf.to(device=x.device, dtype=x.dtype)
    opt = torch.optim.Adam([*encoder.parameters(), *clf.parameters()], lr=lr)
    result = PretrainResult(steps=n_steps, best_step=n_steps, val_accuracy=[])
    best_acc, best_state = -1.0, None
    for step in range(1, n_steps + 1):
        encoder.train()
        idx = torch.randint(x.shape[0], (bs,), generator=g)
        z = encoder(x[idx]).reshape(bs, -1)
        loss = nn.functional.cross_entropy(clf(z), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if val is not None and (step % every == 0 or step == n_steps):
            pred = NearestCentroid(encoder).adapt(val.support_x, val.support_y)
            acc = float((pred.predict(val.query_x).predicted == val.query_y).double().mean())
            result["val_accuracy"].append((step, acc))
            if acc > best_acc:
                best_acc, best_state = acc, copy.deepcopy(encoder.state_dict())
                result["best_step"] = step
    if best_state is not None:
        encoder.load_state_dict(best_state)
    encoder.eval()
    return result
