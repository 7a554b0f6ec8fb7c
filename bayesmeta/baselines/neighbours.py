"""Distance baselines: the nearest support example and the nearest class mean."""

from __future__ import annotations

from torch import Tensor

from bayesmeta.baselines._base import Baseline

__all__ = ["NearestCentroid", "NearestNeighbour", "squared_distances"]


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances ``[T, P, R]`` between ``a [T, P, E]`` and ``b [T, R, E]``.

    Computed as ``|a|^2 + |b|^2 - 2 a.b`` and clamped at 0 against rounding.
    """
    return (
        (a * a).sum(-1, keepdim=True)
        + (b * b).sum(-1).unsqueeze(-2)
        - 2.0 * a @ b.transpose(-1, -2)
    ).clamp_min(0.0)


class NearestNeighbour(Baseline):
    """One-nearest-neighbour classification with probabilities from a tempered softmax.

    A query point's class scores are minus its squared Euclidean distance to the *nearest*
    support example of each class, in the embedding of ``encoder`` (raw flattened inputs when
    ``encoder`` is ``None``); its probabilities are
    ``softmax_c(-min_{i: y_i = c} ||z - z_i||^2 / temperature)``. The most probable class is
    therefore exactly the 1-nearest-neighbour's label (ties go to the lower class), and with
    one shot the probabilities are those of :class:`NearestCentroid`. The temperature is a
    constant of the baseline, not of a task: fit it on episodes of the *training* classes with
    :meth:`~bayesmeta.baselines.Baseline.fit_temperature` (minimum query NLL), else it
    stays at ``temperature``.

    Parameters
    ----------
    encoder
        A fixed ``nn.Module`` mapping ``[M, *features]`` to ``[M, E]``, or ``None`` for the
        flattened inputs.
    temperature
        Softmax temperature, in squared-distance units, ``> 0``.

    Examples
    --------
    >>> import torch
    >>> sx, sy = torch.tensor([[0.0, 0.0], [4.0, 0.0]]), torch.tensor([0, 1])
    >>> NearestNeighbour().adapt(sx, sy).predict(torch.tensor([[1.0, 0.0]])).predicted
    tensor([0])

    """

    def fit_state(self, zs: Tensor, onehot: Tensor) -> tuple[Tensor, ...]:
        """Keep the support embeddings ``[T, K, E]`` and their one-hot labels ``[T, K, N]``."""
        return zs, onehot

    def scores(self, state: tuple[Tensor, ...], zq: Tensor, n_way: int) -> Tensor:
        """Minus the squared distance ``[T, Q, N]`` to each class's nearest support example."""
        zs, onehot = state
        d = squared_distances(zq, zs)  # [T, Q, K]
        other = (1.0 - onehot).transpose(-1, -2).unsqueeze(1) * d.amax().clamp_min(1.0) * 4.0
        # [T, Q, 1, K] + [T, 1, N, K]: a support example of another class is pushed far away.
        return -(d.unsqueeze(2) + other).amin(-1)


class NearestCentroid(Baseline):
    """Nearest class mean: ProtoNet's rule on a fixed embedding, with a fitted temperature.

    A query point's probabilities are ``softmax_c(-||z - m_c||^2 / temperature)`` where
    ``m_c`` is the mean embedding of class ``c``'s support examples (``encoder``'s output, or
    the flattened inputs). Fit the temperature on training-class episodes with
    :meth:`~bayesmeta.baselines.Baseline.fit_temperature`.

    Parameters
    ----------
    encoder
        A fixed ``nn.Module`` mapping ``[M, *features]`` to ``[M, E]``, or ``None``.
    temperature
        Softmax temperature, in squared-distance units, ``> 0``.

    Examples
    --------
    >>> import torch
    >>> sx = torch.tensor([[0.0], [2.0], [10.0]])
    >>> predictor = NearestCentroid().adapt(sx, torch.tensor([0, 0, 1]))
    >>> predictor.predict(torch.tensor([[4.0]])).predicted
    tensor([0])

    """

    def fit_state(self, zs: Tensor, onehot: Tensor) -> tuple[Tensor, ...]:
        """Keep the class means ``[T, N, E]``."""
        means = onehot.transpose(-1, -2) @ zs / onehot.sum(1).unsqueeze(-1)
        return (means,)

    def scores(self, state: tuple[Tensor, ...], zq: Tensor, n_way: int) -> Tensor:
        """Minus the squared distance ``[T, Q, N]`` to each class mean."""
        return -squared_distances(zq, state[0])
