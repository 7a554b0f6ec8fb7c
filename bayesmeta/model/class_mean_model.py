"""The prototype learners' model: Gaussian classes in a learned embedding space.

:class:`ClassMeanModel` is what ``learner.model`` returns for
:class:`~bayesmeta.ProtoNet` and :class:`~bayesmeta.BayesianProtoNet`::

    model(x, y=None, n_way=None)              # x [T, N, *features], labels y [T, N]
        z = encoder(x)                        # [T, N, E], the encoder read as a constant
        with pyro.plate("tasks", T):
            theta = pyro.sample("theta", prior)          # [T, C*E]: the C class means
            mu = theta.reshape(T, C, E)
            pyro.sample("z", mixture_c N(mu_c, sigma^2 I), obs=z)   # the embeddings
            pyro.sample("y", Categorical(logits_c = log N(z; mu_c, sigma^2 I)), obs=y)

The two observed sites factor the joint density of embeddings and labels,
``p(z | mu) p(y | z, mu) = (1/C) N(z; mu_y, sigma^2 I)``, the conjugate model
``z | y = c ~ N(mu_c, sigma^2 I)`` with equal class probabilities. So NUTS on
a support set recovers the closed-form posterior of the class means, and
``Predictive`` with the learner's guide draws query labels from
``softmax_c(-||z - mu_c||^2 / (2 sigma^2))`` at each posterior draw of the
means. BayesianProtoNet's prior is ``N(m0, tau^2 I)`` per class mean;
ProtoNet's is flat with ``sigma^2 = 1/2`` (its logits ``-||z - mu_c||^2``)
and a point mass at the prototypes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor, nn

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.model.learner_model import LearnerModel
from bayesmeta.model.priors import FlatAt

__all__ = ["ClassMeanModel"]


class ClassMeanModel(LearnerModel):
    """Gaussian class means in embedding space as a Pyro model (see the module docstring).

    Parameters
    ----------
    embed
        The encoder over a batch of tasks: ``[T, N, *features] -> [T, N, E]``.
    obs_scale
        Returns ``sigma``, the spread of a class's embeddings around its mean
        (a scalar tensor).
    prior_scale
        Returns ``tau``, the prior scale of the class means; ``None`` for the
        flat prior (ProtoNet), whose draws return the class means of the
        labelled points given to the model (zeros when ``y`` is ``None``).
    prior_mean
        ``"episode"``: ``m0`` is the mean of the class means of the labelled
        points given to the model (of all embeddings when ``y`` is ``None``),
        as in :class:`~bayesmeta.BayesianProtoNet`; ``"zero"``: ``m0 = 0``.
    feature_dims
        Number of feature dimensions of one input point.
    owner, learn
        See :class:`~bayesmeta.model.learner_model.LearnerModel`.

    """

    def __init__(
        self,
        embed: Callable[[Tensor], Tensor],
        obs_scale: Callable[[], Tensor],
        prior_scale: Callable[[], Tensor] | None,
        prior_mean: Literal["episode", "zero"],
        *,
        feature_dims: int,
        owner: nn.Module | None = None,
        learn: bool = False,
    ) -> None:
        super().__init__(owner=owner, learn=learn)
        self.embed = embed
        self.obs_scale = obs_scale
        self.prior_scale = prior_scale
        self.prior_mean = prior_mean
        self.feature_dims = int(feature_dims)

    def __call__(self, x: Tensor, y: Tensor | None = None, n_way: int | None = None) -> Tensor:
        """Run the model; returns the ``"y"`` site's labels ``[T, N]``.

        Parameters
        ----------
        x
            Inputs ``[T, N, *features]``.
        y
            Integer labels ``[T, N]`` in ``0 .. n_way - 1``, or ``None`` to
            sample them.
        n_way
            Number of classes ``C``; the largest label plus one when omitted
            (required when ``y`` is ``None``).

        Raises
        ------
        ShapeError
            If ``x`` has no task dimension or ``y`` is not ``[T, N]``.
        ValueError
            If ``n_way`` is missing with ``y=None``, or a label is out of range.

        """
        dims = self.feature_dims + 2
        if not isinstance(x, Tensor) or x.dim() != dims:
            shape = fmt_shape(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(
                f"the model takes x of shape [T, N, *features] ({dims} dimensions: add a task "
                f"dimension with x.unsqueeze(0) for one task), got {shape}"
            )
        if y is not None and (y.shape != x.shape[:2] or y.is_floating_point()):
            raise ShapeError(
                f"y must hold integer labels [T, N] = {fmt_shape(x.shape[:2])}, got "
                f"{fmt_shape(y.shape)} ({y.dtype})"
            )
        c = _num_classes(y, n_way)
        with self._frozen():
            z = self.embed(x)
            t, _, e = z.shape
            onehot = None if y is None else nn.functional.one_hot(y.long(), c).to(z.dtype)
            prior = self._prior(z, onehot, c)
            sigma = self.obs_scale()
            with pyro.plate("tasks", t, dim=-1):
                theta = pyro.sample("theta", prior)  # [..., T, C*E]
                mu = theta.reshape(*theta.shape[:-1], c, e).unsqueeze(-3)  # [..., T, 1, C, E]
                log_pz = pdist.Normal(mu, sigma).log_prob(z.unsqueeze(-2)).sum(-1)  # [.., T, N, C]
                batch = log_pz.shape[:-1]
                classes = pdist.Categorical(logits=log_pz.new_zeros(*batch, c))
                components = pdist.Normal(mu.expand(*batch, c, e), sigma).to_event(1)
                mixture = pdist.MixtureSameFamily(classes, components).to_event(1)
                pyro.sample("z", mixture, obs=z)
                value: Tensor = pyro.sample(
                    "y", pdist.Categorical(logits=log_pz).to_event(1), obs=y
                )
        return value

    def _prior(self, z: Tensor, onehot: Tensor | None, c: int) -> pdist.TorchDistribution:
        """The prior over each task's class means ``[C*E]`` (batch ``[T]``)."""
        t, _, e = z.shape
        if onehot is None:
            means = z.mean(-2, keepdim=True).expand(t, c, e)
        else:
            counts = onehot.sum(-2).clamp_min(1.0).unsqueeze(-1)  # [T, C, 1]
            means = onehot.transpose(-1, -2) @ z / counts  # [T, C, E]
        if self.prior_scale is None:
            at = means if onehot is not None else torch.zeros_like(means)
            return FlatAt(at.reshape(t, c * e).detach(), (t,))
        if self.prior_mean == "episode":
            centre = means.mean(-2, keepdim=True).expand(t, c, e)
        else:
            centre = torch.zeros_like(means)
        scale = self.prior_scale().expand(t, c * e)
        return pdist.Normal(centre.reshape(t, c * e), scale).to_event(1)

    def __repr__(self) -> str:
        prior = "flat" if self.prior_scale is None else f"normal ({self.prior_mean} mean)"
        return f"ClassMeanModel(prior={prior}, learn={self.learn})"


def _num_classes(y: Tensor | None, n_way: int | None) -> int:
    if n_way is not None:
        if isinstance(n_way, bool) or not isinstance(n_way, int) or n_way < 1:
            raise ValueError(f"n_way must be a positive int, got {n_way!r}")
        if y is not None and y.numel() and (int(y.max()) >= n_way or int(y.min()) < 0):
            got = f"{int(y.min())}..{int(y.max())}"
            raise ValueError(f"labels must lie in 0..{n_way - 1}, got {got}")
        return n_way
    if y is None:
        raise ValueError("pass n_way (the number of classes) to sample labels with y=None")
    if y.numel() == 0 or int(y.min()) < 0:
        raise ValueError("labels must be non-negative integers")
    return int(y.max()) + 1
