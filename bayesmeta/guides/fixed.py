"""Guides with fixed (adapted) parameters over each task's weights."""

from __future__ import annotations

import pyro
import pyro.distributions as pdist
from torch import Tensor

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError

__all__ = ["DeltaGuide", "LowRankGuide", "NormalGuide", "TaskGuide"]


class TaskGuide:
    """Base: ``guide(x, y=None)`` samples ``"theta"`` ``[T, P]`` inside a ``"tasks"`` plate.

    The parameters have batch shape ``()`` (one task: broadcast over the
    plate) or ``(T,)`` (one row per task; the model's ``x`` must then have
    ``T`` tasks). They are used as given: an adapted posterior's are
    detached, while tensors that require grad make a guide that Pyro's ELBOs
    differentiate (e.g. to check a hand-written objective against Pyro's).
    """

    def __init__(self, loc: Tensor) -> None:
        if not isinstance(loc, Tensor) or loc.dim() not in (1, 2):
            raise ShapeError(
                f"a guide's parameters must be [P] or [T, P], got "
                f"{fmt_shape(loc.shape) if isinstance(loc, Tensor) else type(loc).__name__}"
            )
        self.loc = loc

    def distribution(self) -> pdist.TorchDistribution:
        """``q(theta)`` with event shape ``[P]``."""
        raise NotImplementedError

    def __call__(self, x: Tensor, y: Tensor | None = None, **model_kwargs: object) -> Tensor:
        """Sample ``"theta"`` for the ``T = x.shape[0]`` tasks; returns ``[T, P]``.

        Further keyword arguments of the model (e.g. ``n_way`` of a
        :class:`~bayesmeta.model.ClassMeanModel`) are accepted and unused.
        """
        t = x.shape[0]
        if self.loc.dim() == 2 and self.loc.shape[0] != t:
            raise ShapeError(
                f"this guide holds {self.loc.shape[0]} task posteriors but x has {t} task(s); "
                "adapt the tasks you predict for, or pass x with one task per posterior"
            )
        with pyro.plate("tasks", t, dim=-1):
            value: Tensor = pyro.sample("theta", self.distribution())
        return value


class DeltaGuide(TaskGuide):
    """A point mass at adapted weights ``[P]`` or ``[T, P]`` (the MAML family's posterior)."""

    def distribution(self) -> pdist.TorchDistribution:
        """``Delta(theta, event_dim=1)``."""
        return pdist.Delta(self.loc, event_dim=1)


class NormalGuide(TaskGuide):
    """A diagonal Normal ``N(loc, diag(scale^2))``, each ``[P]`` or ``[T, P]``."""

    def __init__(self, loc: Tensor, scale: Tensor) -> None:
        super().__init__(loc)
        if scale.shape != loc.shape:
            raise ShapeError(
                f"scale must have loc's shape {fmt_shape(loc.shape)}, got {fmt_shape(scale.shape)}"
            )
        self.scale = scale

    def distribution(self) -> pdist.TorchDistribution:
        """``Normal(loc, scale).to_event(1)``."""
        return pdist.Normal(self.loc, self.scale).to_event(1)


class LowRankGuide(TaskGuide):
    """``N(loc, W W^T + diag(d))`` per task, ``loc`` ``[*B, P]``, ``W`` ``[*B, P, R]``."""

    def __init__(self, loc: Tensor, cov_factor: Tensor, cov_diag: Tensor) -> None:
        super().__init__(loc)
        self.cov_factor, self.cov_diag = cov_factor, cov_diag

    def distribution(self) -> pdist.TorchDistribution:
        """``LowRankMultivariateNormal(loc, W, d)``."""
        return pdist.LowRankMultivariateNormal(self.loc, self.cov_factor, self.cov_diag)
