"""The likelihood contract: a distribution factory that is also the inner loops' loss.

``likelihood(f)`` returns the Pyro distribution of the targets at network
outputs ``f`` ``[*B, N, O]`` with one event per point; ``likelihood(out, y)``
is the mean negative log-likelihood per point, with its output gradient by
autograd unless a subclass writes it out. The built-ins and any callable
``f -> Distribution`` are in :mod:`bayesmeta.model.likelihoods`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from bayesmeta.nets.units import Units

__all__ = ["Likelihood", "Observation", "per_output"]

#: ``f [*B, N, O] -> Distribution`` with one event per point.
Observation = Callable[[Tensor], Distribution]


class Likelihood(nn.Module):
    """Base class: the distribution of the targets given the network's outputs.

    Subclasses define :meth:`distribution`; the loss, its output gradient,
    the Pyro observation and the per-point log density follow from it (a
    subclass may write faster closed forms, tested equal).
    """

    #: The targets are class labels and the network's outputs class scores.
    classification: bool = False
    #: The targets are real numbers whose units a learner may standardise
    #: (:mod:`bayesmeta.nets.units`); the likelihood then measures its noise scale and
    #: its inner-step preconditioning relative to the targets' scale.
    target_units: bool = False
    _units: Units | None = None

    def bind_units(self, units: Units) -> None:
        """Measure the noise scale relative to ``units``' target scale (a learner's own).

        Kept as a plain reference, not a submodule: the learner saves ``units``.
        """
        object.__setattr__(self, "_units", units)

    def target_scale(self) -> Tensor | None:
        """The targets' standard deviation ``[O]`` when standardised, else ``None``."""
        units = self._units
        return None if units is None else units.target_scale()

    def distribution(self, out: Tensor) -> Distribution:
        """``p(y | f = out)`` with one event per point: ``log_prob(y)`` is ``[*B, N]``."""
        raise NotImplementedError

    def forward(self, out: Tensor, y: Tensor | None = None) -> Any:
        """``likelihood(f)``: the distribution; ``likelihood(out, y)``: the loss.

        Parameters
        ----------
        out
            Network outputs ``[*B, N, O]``.
        y
            Targets ``[*B, N, O]`` (labels ``[*B, N]``), or ``None``.

        Returns
        -------
        pyro.distributions.Distribution or Tensor
            Without ``y``, :meth:`distribution` of ``out``; with ``y``, the
            mean negative log-likelihood per point of each task, ``[*B]``.

        """
        if y is None:
            return self.distribution(out)
        return -self.point_log_prob(out, y).mean(-1)

    def point_log_prob(self, out: Tensor, y: Tensor) -> Tensor:
        """Log-likelihood of each point (summed over outputs): ``[*B, N]``.

        ``forward(out, y)`` is minus its mean over points; predictive
        objectives (``log mean_s p(y | theta_s)``) need it per point.
        """
        return self.distribution(out).log_prob(y)

    def output_grad(self, out: Tensor, y: Tensor) -> Tensor:
        """``d sum_B forward(out, y) / d out``, same shape as ``out``, by autograd.

        Differentiable in turn when ``out`` requires grad under grad mode (the
        second-order meta-gradient); otherwise computed on a detached copy.
        """
        keep = out.requires_grad and torch.is_grad_enabled()
        with torch.enable_grad():
            o = out if keep else out.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self(o, y).sum(), o, create_graph=keep)
        return grad

    def observe(self, name: str, out: Tensor, y: Tensor | None) -> Tensor:
        """``pyro.sample(name, p(y | out), obs=y)``: one event per task (points folded in)."""
        value: Tensor = pyro.sample(name, pdist.Independent(self.distribution(out), 1), obs=y)
        return value

    def noise_scale(self) -> Tensor | None:
        """Gaussian observation-noise standard deviation for predictions (``None``: none)."""
        return None

    def observation(self) -> Observation | None:
        """The observation model that predictions score with, detached from training.

        ``None`` where a prediction's own closed forms apply (Gaussian noise
        given by :meth:`noise_scale`, class scores, or no noise model).
        """
        return _Detached(self)

    def step_scale(self) -> Tensor | float:
        """Preconditioner of inner-loop steps on this likelihood (1 by default).

        Inner steps of size ``lr`` move ``lr * step_scale() * gradient``, so
        that ``lr`` means the same for every likelihood of a task type.
        """
        return 1.0


class _Detached:
    """A likelihood's distribution evaluated without gradients (for predictions)."""

    def __init__(self, likelihood: Likelihood) -> None:
        self.likelihood = likelihood

    def __call__(self, out: Tensor) -> Distribution:
        with torch.no_grad():
            return self.likelihood.distribution(out.detach())


def per_output(d: Distribution) -> Distribution:
    """The per-output distribution under ``to_event`` wrappers (batch ``[*B, N, O]``)."""
    while isinstance(d, torch.distributions.Independent):
        d = d.base_dist
    return d
