"""A task posterior held by a fitted Pyro guide (an autoguide or your own)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from torch import Tensor

from bayesmeta.inference.svi import seeded_by
from bayesmeta.model.likelihoods import Observation
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import SampledPosterior

__all__ = ["GuidePosterior"]


@dataclass(frozen=True, eq=False)
class GuidePosterior(SampledPosterior):
    """Weights drawn from a Pyro guide fitted to the model of ``T`` tasks.

    Attributes
    ----------
    fnet : FunctionalNet
        The network the weights belong to.
    fitted : callable
        The fitted guide, called as ``fitted(x, y)`` on the data it was
        fitted to; its parameters live in the guide itself (Pyro's
        module-local parameters), not in Pyro's global parameter store.
    x, y : Tensor
        The support data ``[T, K, *features]`` and targets the guide was fitted to.
    loc : Tensor
        Posterior mean of the weights ``[*B, P]`` (from draws), ``B = ()``
        for one task.
    noise_scale, classification, observation
        The likelihood's prediction settings (see
        :class:`~bayesmeta.posteriors.GaussianTaskPosterior`).
    elbo_trace : Tensor or None
        The negative ELBO (summed over tasks) at each SVI step ``[steps]``.

    """

    fnet: FunctionalNet
    fitted: Callable[..., Any]
    x: Tensor
    y: Tensor
    loc: Tensor
    noise_scale: Tensor | None = None
    classification: bool = False
    observation: Observation | None = None
    elbo_trace: Tensor | None = None

    @property
    def guide(self) -> Callable[..., Any]:
        """The fitted guide as a guide for ``learner.model``'s ``"theta"`` site.

        It ignores the model's arguments and replays the fitted guide on its
        own data, so ``Predictive(learner.model, guide=post.guide)(x_query)``
        draws this posterior's weights at new inputs.
        """
        return _Replayed(self)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw weights ``[num_samples, *B, P]`` by running the guide."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        draws = draw_theta(self.fitted, self.x, self.y, num_samples, generator)
        return draws.reshape(num_samples, *self.loc.shape)


class _Replayed:
    def __init__(self, post: GuidePosterior) -> None:
        self.post = post

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with local_params():
            return self.post.fitted(self.post.x, self.post.y)


@contextlib.contextmanager
def local_params() -> Iterator[None]:
    """Keep Pyro modules' parameters in the modules (not in Pyro's global store)."""
    with pyro.settings.context(module_local_params=True):
        yield


def draw_theta(
    guide: Callable[..., Any],
    x: Tensor,
    y: Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Run ``guide(x, y)`` ``num_samples`` times; return the ``"theta"`` draws ``[S, T, P]``."""
    out = []
    with torch.no_grad(), local_params(), seeded_by(generator, x.device):
        for _ in range(num_samples):
            trace = pyro.poutine.trace(guide).get_trace(x, y)
            value = trace.nodes["theta"]["value"]
            if value is None:
                raise ValueError('the guide has no "theta" site; sample it inside a "tasks" plate')
            out.append(value.detach())
    return torch.stack(out)
