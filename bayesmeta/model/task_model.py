"""The hierarchical model over a batch of tasks, as a Pyro model.

:class:`TaskModel` is what ``learner.model`` returns::

    model(x, y=None)                       # x [T, N, *features], y [T, N, O] (labels [T, N])
        psi   ~ p(psi)                     # hyper-prior sites, where the prior has them
        with pyro.plate("tasks", T):
            theta = pyro.sample("theta", prior)       # [T, P]
            f = net(theta, x)                         # [T, N, O]
            pyro.sample("y", likelihood(f), obs=y)    # one event per task

so that Pyro's own inference runs on a learner: ``Predictive(learner.model,
guide=learner.adapt(x, y).guide)``, ``MCMC(NUTS(learner.model))``, or SVI with
any autoguide. The learner's meta-parameters (the prior's location and scale,
the likelihood's noise) are read as constants: inference on the model never
writes gradients into them, unless the model was made with ``learn=True``
(meta-training).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

import pyro
import pyro.distributions as pdist
from torch import Tensor, nn

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.model.learner_model import LearnerModel
from bayesmeta.model.likelihoods import Likelihood
from bayesmeta.model.priors import WeightPrior
from bayesmeta.nets.functional import FunctionalNet

__all__ = ["TaskModel", "ThetaPrior"]


class ThetaPrior(Protocol):
    """What the model needs of a prior over ``[P]`` weights.

    Its ``distribution()`` (event shape ``[P]``), or, for a prior with hyper
    sites, ``sample_prior()``, which samples them and returns ``p(theta | psi)``.
    """

    @property
    def num_params(self) -> int:
        """``P``."""
        ...


class TaskModel(LearnerModel):
    """The Pyro model ``model(x, y=None)`` of a learner (see the module docstring).

    Parameters
    ----------
    fnet
        The functional network ``f(x; theta)``.
    prior
        The prior over the ``P`` weights. A prior with hyper-prior sites (a
        :class:`~bayesmeta.priors.HierarchicalGaussianPrior`, whose
        ``sample_prior()`` samples ``psi`` and returns ``p(theta | psi)``) adds
        them outside the plate.
    likelihood
        The observation model (``likelihood.observe`` makes the ``"y"`` site).
    owner
        The module holding the meta-parameters (the learner); with
        ``learn=False`` its parameters are read without gradients while the
        model runs.
    learn
        Let gradients reach the owner's parameters (meta-training).
    features
        A fixed map applied to ``x`` before the network (e.g. a frozen source
        encoder under a Bayesian last layer): ``[T, N, *raw] -> [T, N, *features]``.
    hyper_scale
        Weight of the hyper-prior sites' terms (``poutine.scale``; tempering
        of a hierarchical prior, 1 for the plain model).

    """

    def __init__(
        self,
        fnet: FunctionalNet,
        prior: ThetaPrior,
        likelihood: Likelihood,
        *,
        owner: nn.Module | None = None,
        learn: bool = False,
        features: Callable[[Tensor], Tensor] | None = None,
        hyper_scale: float = 1.0,
    ) -> None:
        self.fnet = fnet
        self.features = features
        self.hyper_scale = float(hyper_scale)
        self.prior = prior
        self.likelihood = likelihood
        super().__init__(owner=owner, learn=learn)

    def __call__(
        self, x: Tensor, y: Tensor | None = None, subsample: Tensor | None = None
    ) -> Tensor:
        """Run the model; returns the ``"y"`` site's value ``[T, N, O]`` (labels ``[T, N]``).

        Parameters
        ----------
        x, y
            Inputs ``[T, N, *features]`` and targets ``[T, N, O]`` (labels
            ``[T, N]``), or ``y=None`` to sample them.
        subsample
            Task indices ``[B]``: only those tasks enter, their terms scaled
            by ``T / B`` (Pyro's plate subsampling; hierarchical SVI over many
            tasks). The returned value is then ``[B, N, O]``.

        Raises
        ------
        ShapeError
            If ``x`` has no task dimension, or ``y`` has a different number of
            tasks or points.

        """
        if self.features is not None and isinstance(x, Tensor):
            x = self.features(x)
        dims = self.fnet.feature_dims + 2
        if not isinstance(x, Tensor) or x.dim() != dims:
            shape = fmt_shape(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(
                f"the model takes x of shape [T, N, *features] ({dims} dimensions: add a task "
                f"dimension with x.unsqueeze(0) for one task), got {shape}"
            )
        if y is not None and tuple(y.shape[:2]) != tuple(x.shape[:2]):
            raise ShapeError(
                f"y must have x's tasks and points [T, N] = {fmt_shape(x.shape[:2])}, got "
                f"{fmt_shape(y.shape)}"
            )
        with self._frozen():
            hyper = getattr(self.prior, "sample_prior", None)
            theta_dist: pdist.TorchDistribution
            if hyper is not None:
                with pyro.poutine.scale(scale=self.hyper_scale):
                    theta_dist = hyper()
            else:
                theta_dist = cast(WeightPrior, self.prior).distribution()
            with pyro.plate("tasks", x.shape[0], subsample=subsample, dim=-1) as idx:
                theta = pyro.sample("theta", theta_dist)
                if subsample is not None:
                    x, y = x[idx], (None if y is None else y[idx])
                out = self.fnet(theta, x)
                value: Tensor = self.likelihood.observe("y", out, y)
        return value

    def __repr__(self) -> str:
        prior = type(self.prior).__name__
        return (
            f"TaskModel(prior={prior}, likelihood={type(self.likelihood).__name__}, "
            f"P={self.fnet.num_params}, learn={self.learn})"
        )
