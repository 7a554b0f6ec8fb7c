"""Episodes in embedding space: what the metric learners compute from embedded support sets.

Distances between embeddings, the per-task class indicators and counts (with
the label checks), and whether an encoder normalises with batch statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "Episode",
    "class_indicators",
    "resolve_n_way",
    "squared_distances",
    "uses_batch_statistics",
]


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances ``||a_i - b_j||^2`` ``[*B, Q, N]``.

    Computed as ``torch.cdist(a, b) ** 2``: two kernels forward and two
    backward, against eleven of each for ``||a||^2 - 2 a.b + ||b||^2`` written
    out (1.8x faster, forward and backward, for a 5-way episode of 75 queries
    in 64 dimensions). Differentiable once: torch has no second derivative of
    ``cdist``, and the metric learners' losses need none (their Pyro models
    score embeddings with ``pyro.distributions.Normal`` instead).

    Parameters
    ----------
    a
        Points ``[*B, Q, E]``.
    b
        Points ``[*B, N, E]`` (batch dimensions broadcast).

    """
    return torch.cdist(a, b).square()


@dataclass(frozen=True, eq=False)
class Episode:
    """The embedded support sets of ``T`` tasks.

    Attributes
    ----------
    z : Tensor
        Support embeddings ``[T, K, E]``.
    onehot : Tensor
        Class indicators ``[T, K, N]`` (the embeddings' dtype).
    counts : Tensor
        Support examples per class ``[T, N]`` (all >= 1).

    """

    z: Tensor
    onehot: Tensor
    counts: Tensor

    @property
    def class_means(self) -> Tensor:
        """Mean embedding of each class ``[T, N, E]`` (ProtoNet's prototypes)."""
        sums = self.onehot.transpose(-1, -2) @ self.z
        return sums / self.counts.unsqueeze(-1)


def class_indicators(
    y: Tensor, n_way: int, dtype: torch.dtype = torch.long
) -> tuple[Tensor, Tensor]:
    """Check labels ``[T, K]``; return their one-hot ``[T, K, N]`` and class counts ``[T, N]``.

    Both come in ``dtype`` (the embeddings' floating dtype for the metric learners, so that
    no conversion follows).

    Raises
    ------
    ValueError
        If a label lies outside ``0 .. n_way - 1`` or a class has no example.

    """
    if y.numel():
        low, high = (int(v) for v in torch.aminmax(y))
        if low < 0 or high >= n_way:
            raise ValueError(
                f"support_y labels must lie in 0..n_way-1 = 0..{n_way - 1}, got labels from "
                f"{low} to {high}; relabel each task's classes"
            )
    # The range is checked above, so a scatter makes the indicators in their final dtype
    # (one_hot would check the range again and give int64 to convert).
    onehot = torch.zeros(*y.shape, n_way, dtype=dtype, device=y.device)
    onehot.scatter_(-1, y.unsqueeze(-1), 1)
    counts = onehot.sum(-2)
    if not bool(counts.all()):
        missing = (counts == 0).nonzero()
        task, cls = (int(v) for v in missing[0])
        where = f"task {task}'s support set" if y.shape[0] > 1 else "the support set"
        raise ValueError(
            f"{where} has no example of class {cls}; every class 0..n_way-1 = "
            f"0..{n_way - 1} needs at least one support example ({missing.shape[0]} "
            "(task, class) pair(s) are empty)"
        )
    return onehot, counts


def resolve_n_way(y: Tensor, n_way: int | None) -> int:
    """``n_way`` checked, or the largest label in ``y`` plus one when it is ``None``."""
    if n_way is None:
        return int(y.max()) + 1
    if isinstance(n_way, bool) or not isinstance(n_way, int) or n_way < 1:
        raise ValueError(f"n_way must be an int >= 1, got {n_way!r}")
    return n_way


def uses_batch_statistics(module: nn.Module) -> bool:
    """Whether a batch-norm layer of ``module`` normalises with batch statistics in eval mode."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None
        for m in module.modules()
    )
