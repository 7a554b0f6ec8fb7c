"""A task posterior held by fitted Pyro guides (autoguides or your own)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor

from bayesmeta._seeding import seeded_by
from bayesmeta.errors import ShapeError
from bayesmeta.model.likelihoods import Observation
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import SampledPosterior

__all__ = ["FittedGuide", "GuidePosterior", "draw_theta", "local_params"]


@dataclass(frozen=True, eq=False)
class FittedGuide:
    """One fitted guide and the data it was fitted to.

    Attributes
    ----------
    guide : callable
        The guide, called as ``guide(x, y)``; it samples ``"theta"`` ``[T_g, P]``.
    x, y : Tensor
        Its data ``[T_g, K, *features]`` and targets.
    local : bool
        Whether its Pyro parameters are module-local (an autoguide that
        bayesmeta made), so that it must run under ``module_local_params``.

    """

    guide: Callable[..., Any]
    x: Tensor
    y: Tensor
    local: bool

    def draw(self) -> Tensor:
        """One draw of ``"theta"`` ``[T_g, P]`` (the guide's sites hidden from any handler)."""
        return self._theta(None)

    def draws(self, num: int) -> Tensor:
        """``num`` independent draws of ``"theta"`` ``[num, T_g, P]``.

        An autoguide that bayesmeta made is run once, vectorised under a plate
        of ``num`` (Pyro's autoguides draw independently along enclosing
        plates); a guide you built is run ``num`` times, as it may not.
        """
        if self.local:
            value = self._theta(num)
            tasks = int(self.x.shape[0])
            if (
                value.dim() >= 3
                and value.shape[0] == num
                and value[0].numel() == tasks * value.shape[-1]
            ):
                return value.reshape(num, tasks, value.shape[-1])
        return torch.stack([self._theta(None) for _ in range(num)])

    def _theta(self, num: int | None) -> Tensor:
        # The plate of draws sits left of the guide's "tasks" plate (-1) and of any
        # plate around this call (plate dimensions are allocated globally).
        used = [f.dim for f in pyro.poutine.runtime.get_plates() if f.dim is not None]
        # Traced inside a block: the guide's own sites (and the plate's) stay hidden
        # from any handler around this call (Predictive's trace of the replayed guide).
        with contextlib.ExitStack() as stack:
            stack.enter_context(pyro.poutine.block())
            if self.local:
                stack.enter_context(local_params())
            if num is not None:
                dim = min([-1, *used]) - 1
                stack.enter_context(pyro.plate("_bayesmeta_draws", num, dim=dim))
            trace = pyro.poutine.trace(self.guide).get_trace(self.x, self.y)
        value = trace.nodes.get("theta", {}).get("value")
        if value is None:
            raise ValueError('the guide has no "theta" site; sample it inside a "tasks" plate')
        return value.detach()


@dataclass(frozen=True, eq=False)
class GuidePosterior(SampledPosterior):
    """Weights drawn from Pyro guides fitted to the model of ``T`` tasks.

    Autoguides are fitted one task at a time (an autoguide joins all its
    latent sites into one vector, so over a batch it would couple the tasks,
    which are independent given the meta-learned prior); a guide you built is
    fitted to the batch as it is.

    Attributes
    ----------
    fnet : FunctionalNet
        The network the weights belong to.
    fitted : tuple of FittedGuide
        The fitted guides, in task order (one per task, or one for the batch).
    loc : Tensor
        Posterior mean of the weights ``[*B, P]`` (from draws), ``B = ()``
        for one task.
    noise_scale, classification, observation
        The likelihood's prediction settings (see
        :class:`~bayesmeta.posteriors.GaussianTaskPosterior`).
    elbo_trace : Tensor or None
        The negative ELBO (summed over the tasks) at each SVI step ``[steps]``.

    """

    fnet: FunctionalNet
    fitted: tuple[FittedGuide, ...]
    loc: Tensor
    noise_scale: Tensor | None = None
    classification: bool = False
    observation: Observation | None = None
    elbo_trace: Tensor | None = None

    @property
    def num_tasks(self) -> int:
        """``T``, the tasks the guides were fitted to."""
        return sum(int(f.x.shape[0]) for f in self.fitted)

    @property
    def guide(self) -> Callable[..., Any]:
        """A guide for ``learner.model``'s ``"theta"``: a draw of the fitted guides.

        Called with the model's arguments ``(x, y=None)``, it samples ``"theta"``
        ``[T, P]`` as a point mass at one joint draw of the fitted guides, so
        ``Predictive(learner.model, guide=post.guide)(x_query)`` draws this
        posterior's weights at new inputs. A one-task posterior is broadcast
        over the tasks of ``x``; otherwise ``x`` must have ``T`` tasks.
        """
        return _Replayed(self)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw weights ``[num_samples, *B, P]`` by running the guides."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        draws = draw_theta(self.fitted, num_samples, generator)
        return draws.reshape(num_samples, *self.loc.shape)


class _Replayed:
    """``post.guide``: a point mass at fresh draws of the fitted guides.

    The fitted guides run hidden from the handlers around the call (a
    ``poutine.block``), so plates that enclose the call, such as the
    ``"_num_predictive_samples"`` plate of ``Predictive(..., parallel=True)``,
    cannot reach their sample sites: one draw would be broadcast over the
    plate, every sample the same weights. So the guides draw once per
    element of the enclosing vectorised plates (see :meth:`FittedGuide.draws`),
    each draw independent.
    """

    def __init__(self, post: GuidePosterior) -> None:
        self.post = post

    def __call__(self, x: Tensor, y: Tensor | None = None, *args: Any, **kwargs: Any) -> Tensor:
        t = x.shape[0]
        fitted = self.post.fitted
        held = sum(int(f.x.shape[0]) for f in fitted)
        if held not in (1, t):
            raise ShapeError(
                f"this posterior holds {held} tasks but x has {t}; adapt the "
                "tasks you predict for, or pass x with one task per posterior"
            )
        batch = _enclosing_batch_shape()
        num = math.prod(batch)
        if batch:
            draws = torch.cat([f.draws(num) for f in fitted], dim=1)  # [num, T_held, P]
        else:
            draws = torch.cat([f.draw() for f in fitted])
        theta = draws.reshape(*batch, held, -1)  # [*batch, T_held, P]
        theta = theta.expand(*batch, t, theta.shape[-1])
        with pyro.plate("tasks", t, dim=-1):
            value: Tensor = pyro.sample("theta", pdist.Delta(theta, event_dim=1))
        return value


def _enclosing_batch_shape() -> tuple[int, ...]:
    """The batch shape, left of the ``"tasks"`` dimension (-1), of the enclosing vectorised plates.

    E.g. ``(S,)`` under ``Predictive(..., num_samples=S, parallel=True)`` of a
    model with one plate; ``()`` outside any plate.
    """
    sizes = {
        int(f.dim): int(f.size)
        for f in pyro.poutine.runtime.get_plates()
        if f.dim is not None and f.dim < -1 and f.name != "tasks"
    }
    if not sizes:
        return ()
    return tuple(sizes.get(dim, 1) for dim in range(min(sizes), -1))


@contextlib.contextmanager
def local_params() -> Iterator[None]:
    """Keep Pyro modules' parameters in the modules (not in Pyro's global store)."""
    with pyro.settings.context(module_local_params=True):
        yield


def draw_theta(
    fitted: Sequence[FittedGuide],
    num_samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Run the fitted guides ``num_samples`` times; the ``"theta"`` draws ``[S, T, P]``."""
    device = fitted[0].x.device
    with torch.no_grad(), seeded_by(generator, device):
        draws = [torch.cat([f.draw() for f in fitted]) for _ in range(num_samples)]
    return torch.stack(draws)
