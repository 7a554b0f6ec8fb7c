"""What the few-shot baselines share: input checks, the embedding and the temperature fit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_count, fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.tasks.source import TaskSource

__all__ = ["Baseline", "BaselinePredictor"]

#: Log-spaced temperatures tried by :meth:`Baseline.fit_temperature` (a grid is robust
#: for this one-dimensional, unimodal fit and needs no learning rate).
_GRID = torch.logspace(-3.0, 3.0, 121, dtype=torch.float64)


def _batched(name: str, value: Tensor, dims: int) -> Tensor:
    """Return ``value`` with a task dimension: ``[T, *rest]`` (``dims`` is ``len(rest)``)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() == dims:
        return value.unsqueeze(0)
    if value.dim() == dims + 1:
        return value
    raise ShapeError(
        f"{name} must have {dims} or {dims + 1} dimensions ([*T, ...]), "
        f"got {fmt_shape(value.shape)}"
    )


@dataclass(frozen=True, eq=False)
class BaselinePredictor:
    """A baseline adapted to support sets: ``predict(query_x)`` gives class probabilities.

    Attributes
    ----------
    baseline : Baseline
        The baseline that adapted (its encoder and temperature are used).
    state : tuple of Tensor
        What the baseline kept from the support sets (embeddings, class means or head weights),
        each with a leading task dimension ``T``.
    n_way : int
        Number of classes ``N``.
    batched : bool
        Whether the support set had a task dimension (else predictions drop it).
    feature_dims : int
        Feature dimensions of one input (3 for ``[C, H, W]`` images).

    """

    baseline: Baseline
    state: tuple[Tensor, ...]
    n_way: int
    batched: bool
    feature_dims: int

    def logits(self, query_x: Tensor) -> Tensor:
        """Temperature-scaled class scores ``[T, Q, N]`` of query inputs ``[*T, Q, *features]``."""
        if not isinstance(query_x, Tensor):
            raise TypeError(f"query_x must be a torch.Tensor, got {type(query_x).__name__}")
        dims = self.feature_dims + 1 + self.batched
        if query_x.dim() != dims:
            raise ShapeError(
                f"query_x must be {'[T, Q, *features]' if self.batched else '[Q, *features]'} "
                f"with {self.feature_dims} feature dimension(s) like the support set, "
                f"got {fmt_shape(query_x.shape)}"
            )
        qx = query_x if self.batched else query_x.unsqueeze(0)
        tasks = self.state[0].shape[0]
        if qx.shape[0] != tasks:
            raise ShapeError(f"query_x holds {qx.shape[0]} tasks but the support sets {tasks}")
        q = self.baseline.embed(qx)
        return self.baseline.scores(self.state, q, self.n_way) / self.baseline.temperature

    def predict(self, query_x: Tensor) -> ClassPrediction:
        """Class probabilities of query inputs.

        Parameters
        ----------
        query_x
            ``[Q, *features]``, or ``[T, Q, *features]`` when the support sets were batched.

        Returns
        -------
        ClassPrediction
            One sample; probabilities ``[*T, Q, N]`` summing to 1 over the classes.

        """
        logits = self.logits(query_x)
        return ClassPrediction.point(logits if self.batched else logits[0])


class Baseline:
    """Base of the few-shot baselines: embeds inputs, checks labels, scales logits.

    Subclasses define :meth:`fit_state` (what to keep from a support set) and :meth:`scores`
    (class scores of query embeddings). Predictions are ``softmax(scores / temperature)``.

    Parameters
    ----------
    encoder
        A fixed ``nn.Module`` mapping ``[M, *features]`` to embeddings ``[M, E]``, run in eval
        mode without gradients; ``None`` uses the flattened raw inputs (e.g. pixels).
    temperature
        Divides the scores before the softmax, ``> 0``; :meth:`fit_temperature` chooses it.

    """

    def __init__(self, encoder: nn.Module | None = None, *, temperature: float = 1.0) -> None:
        if encoder is not None and not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be an nn.Module or None, got {type(encoder).__name__}")
        self.encoder = encoder
        self.temperature = _positive("temperature", temperature)

    # -- embedding -----------------------------------------------------------------------------

    def embed(self, x: Tensor) -> Tensor:
        """Embed inputs ``[T, M, *features]`` to ``[T, M, E]`` (the encoder, or flattened)."""
        t, m = x.shape[:2]
        flat = x.reshape(t * m, *x.shape[2:])
        if self.encoder is None:
            z = flat.reshape(t * m, -1)
        else:
            was_training = self.encoder.training
            self.encoder.eval()
            try:
                with torch.no_grad():
                    z = self.encoder(flat)
            finally:
                self.encoder.train(was_training)
            if z.dim() != 2:
                z = z.reshape(t * m, -1)
        if not z.is_floating_point():
            z = z.to(torch.get_default_dtype())
        return z.reshape(t, m, -1).detach()

    # -- adaptation ----------------------------------------------------------------------------

    def fit_state(self, zs: Tensor, onehot: Tensor) -> tuple[Tensor, ...]:
        """What to keep from support embeddings ``[T, K, E]`` with one-hot labels ``[T, K, N]``."""
        raise NotImplementedError

    def scores(self, state: tuple[Tensor, ...], zq: Tensor, n_way: int) -> Tensor:
        """Class scores ``[T, Q, N]`` of query embeddings ``[T, Q, E]`` (before the temperature)."""
        raise NotImplementedError

    def adapt(self, support_x: Tensor, support_y: Tensor) -> BaselinePredictor:
        """Adapt to support sets.

        Parameters
        ----------
        support_x
            Inputs ``[K, *features]`` or ``[T, K, *features]``.
        support_y
            Integer labels ``[K]`` or ``[T, K]`` in ``0 .. N-1``; every class of
            ``0 .. N-1`` (``N`` the largest label plus one) needs a support example.

        Returns
        -------
        BaselinePredictor
            ``predict(query_x)`` gives a :class:`~bayesmeta.ClassPrediction`.

        Raises
        ------
        ShapeError
            If the shapes do not match.
        ValueError
            If a label is negative or a class in ``0 .. N-1`` has no support example.

        """
        if not isinstance(support_y, Tensor) or support_y.is_floating_point():
            raise ShapeError("support_y must be an integer tensor [K] or [T, K]")
        batched = support_y.dim() == 2
        ys = _batched("support_y", support_y, 1)
        if not isinstance(support_x, Tensor) or support_x.dim() < (3 if batched else 2):
            raise ShapeError("support_x must be [K, *features] or [T, K, *features]")
        xs = support_x if batched else support_x.unsqueeze(0)
        if xs.shape[:2] != ys.shape:
            raise ShapeError(
                f"support_x {fmt_shape(support_x.shape)} and support_y "
                f"{fmt_shape(support_y.shape)} disagree on the number of tasks or examples"
            )
        if ys.numel() == 0:
            raise ValueError("the support set is empty")
        if int(ys.min()) < 0:
            raise ValueError(f"labels must be >= 0, got {int(ys.min())}")
        n_way = int(ys.max()) + 1
        onehot = torch.nn.functional.one_hot(ys.long(), n_way)
        empty = onehot.sum(1) == 0  # [T, N]
        if bool(empty.any()):
            task, cls = (int(i) for i in torch.nonzero(empty)[0])
            raise ValueError(
                f"class {cls} of 0..{n_way - 1} has no support example (task {task}); "
                "labels must be 0 .. N-1 with every class present"
            )
        zs = self.embed(xs)
        state = self.fit_state(zs, onehot.to(zs.dtype))
        return BaselinePredictor(self, state, n_way, batched, xs.dim() - 2)

    # -- calibration ---------------------------------------------------------------------------

    def fit_temperature(self, source: TaskSource, num_tasks: int = 200, *, seed: int = 0) -> float:
        """Choose the temperature that minimises the query NLL of episodes from ``source``.

        Use episodes of *training* (or validation) classes, never the test classes. The
        temperature is searched on a log-spaced grid from ``1e-3`` to ``1e3`` (121 points); the
        scores are computed once. Sets and returns :attr:`temperature`.

        Parameters
        ----------
        source
            Episodes with query points, e.g. an :class:`~bayesmeta.tasks.Episodes` over the
            meta-training classes.
        num_tasks
            Episodes to draw.
        seed
            Seed of the draw.

        Returns
        -------
        float
            The fitted temperature.

        """
        count = check_count("num_tasks", num_tasks, minimum=1)
        batch = source.sample(count, generator=torch.Generator().manual_seed(seed))
        if batch.query_x.shape[1] == 0:
            raise ValueError("fit_temperature needs episodes with query points")
        saved, self.temperature = self.temperature, 1.0
        try:
            scores = self.adapt(batch.support_x, batch.support_y).logits(batch.query_x)
        finally:
            self.temperature = saved
        y = batch.query_y.to(scores.device)
        s = scores.detach().double().unsqueeze(0) / _GRID.view(-1, 1, 1, 1)  # [G, T, Q, N]
        nll = -torch.log_softmax(s, -1).gather(-1, y.expand(len(_GRID), *y.shape)[..., None])
        best = int(nll.mean((1, 2, 3)).argmin())
        self.temperature = float(_GRID[best])
        return self.temperature


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return float(value)
