"""Observation models: the ``p(y | f(x; theta))`` of each task type.

A likelihood is an ``nn.Module`` (its noise scale may be meta-learned) that is
also a per-task loss: ``likelihood(out, y)`` is the mean negative
log-likelihood per point ``[*B]``, and ``likelihood.output_grad(out, y)`` its
gradient with respect to ``out`` (summed over the batch), which the networks'
hand-written inner-loop gradients use.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor, nn

from bayesmeta.losses import cross_entropy, cross_entropy_output_grad, mse, mse_output_grad

__all__ = [
    "CategoricalLikelihood",
    "GaussianLikelihood",
    "Likelihood",
    "LikelihoodName",
    "MSELikelihood",
    "categorical_point_log_prob",
    "make_likelihood",
]


class Likelihood(nn.Module):
    """Base class: mean negative log-likelihood per point, and its output gradient."""

    #: The targets are class labels and the network's outputs class scores.
    classification: ClassVar[bool] = False

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        """Mean negative log-likelihood per point, per task: ``[*B]``."""
        raise NotImplementedError

    def output_grad(self, out: Tensor, y: Tensor) -> Tensor:
        """``d sum_B forward(out, y) / d out``, same shape as ``out``."""
        raise NotImplementedError

    def observe(self, name: str, out: Tensor, y: Tensor) -> None:
        """``pyro.sample(name, p(y | out), obs=y)`` over points (and outputs)."""
        raise NotImplementedError

    def point_log_prob(self, out: Tensor, y: Tensor) -> Tensor:
        """Log-likelihood of each point (summed over outputs): ``[*B, N]``.

        ``forward`` is minus its mean over points; predictive objectives
        (``log mean_s p(y | theta_s)``) need it per point.
        """
        raise NotImplementedError

    def noise_scale(self) -> Tensor | None:
        """Observation-noise standard deviation for predictions (``None``: none)."""
        return None

    def step_scale(self) -> Tensor | float:
        """Preconditioner of inner-loop steps on this likelihood (1 by default).

        Inner steps of size ``lr`` move ``lr * step_scale() * gradient``, so
        that ``lr`` means the same for every likelihood of a task type.
        """
        return 1.0


class GaussianLikelihood(Likelihood):
    """``y ~ N(f(x), sigma^2)`` independently per point and output.

    Parameters
    ----------
    scale
        Initial noise standard deviation (positive).
    num_outputs
        ``O``: one scale per output.
    learn_scale
        Meta-learn the scale (default) or keep it fixed.

    """

    def __init__(
        self, scale: float = 0.1, *, num_outputs: int = 1, learn_scale: bool = True
    ) -> None:
        super().__init__()
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"noise_scale must be positive and finite, got {scale}")
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be >= 1, got {num_outputs}")
        self.log_scale = nn.Parameter(
            torch.full((num_outputs,), math.log(scale)), requires_grad=learn_scale
        )

    @property
    def scale(self) -> Tensor:
        """Noise standard deviation ``[O]``."""
        return self.log_scale.exp()

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        """Mean over points of ``-log N(y | out, sigma^2)`` summed over outputs: ``[*B]``."""
        return -self.point_log_prob(out, y).mean(-1)

    def point_log_prob(self, out: Tensor, y: Tensor) -> Tensor:
        """``log N(y | out, sigma^2)`` per point, summed over outputs: ``[*B, N]``."""
        z = (y - out) / self.scale
        per = 0.5 * z * z + self.log_scale + 0.5 * math.log(2 * math.pi)
        return -per.sum(-1)

    def output_grad(self, out: Tensor, y: Tensor) -> Tensor:
        """Gradient of the summed mean NLL with respect to ``out``."""
        return (out - y) * (self.log_scale * -2.0).exp().div(out.shape[-2])

    def observe(self, name: str, out: Tensor, y: Tensor) -> None:
        """Observe ``y`` ``[*B, N, O]`` as one event per task."""
        pyro.sample(name, pdist.Normal(out, self.scale).to_event(2), obs=y)

    def noise_scale(self) -> Tensor:
        """The noise standard deviation ``[O]``."""
        return self.scale

    def step_scale(self) -> Tensor:
        """``2 sigma^2`` (mean over outputs).

        The mean Gaussian NLL's gradient is the mean squared error's divided by
        ``2 sigma^2``; preconditioning by it makes an inner step of size
        ``lr`` the same as MAML's on the MSE, whatever the learned noise scale
        (without it, steps grow as ``1 / sigma^2`` and diverge as the noise
        scale is learned down on clean data).
        """
        return 2.0 * self.scale.pow(2).mean()


class MSELikelihood(Likelihood):
    """Mean squared error as a generalised (Gibbs) likelihood, with no noise model.

    ``exp(-MSE)`` is a Gaussian likelihood of variance 1/2 up to a constant.
    With a point-mass posterior and no prior term this makes
    :class:`~bayesmeta.BayesianMAML` exactly :class:`~bayesmeta.MAML`.
    """

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        """Mean squared error per task ``[*B]``."""
        return mse(out, y)

    def output_grad(self, out: Tensor, y: Tensor) -> Tensor:
        """Gradient of the summed MSE with respect to ``out``."""
        return mse_output_grad(out, y)

    def point_log_prob(self, out: Tensor, y: Tensor) -> Tensor:
        """The Gibbs log-likelihood per point, ``-mean_o (out - y)^2``: ``[*B, N]``."""
        return -(out - y).pow(2).mean(-1)

    def observe(self, name: str, out: Tensor, y: Tensor) -> None:
        """Add ``-N O MSE`` to the log joint (the Gibbs likelihood), as a factor."""
        pyro.factor(name, -(out - y).pow(2).sum((-1, -2)))


class CategoricalLikelihood(Likelihood):
    """``y ~ Categorical(softmax(f(x)))`` for class labels ``[*B, N]``."""

    classification: ClassVar[bool] = True

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy per task ``[*B]``."""
        return cross_entropy(out, y)

    def output_grad(self, out: Tensor, y: Tensor) -> Tensor:
        """Gradient of the summed mean cross-entropy with respect to the logits."""
        return cross_entropy_output_grad(out, y)

    def point_log_prob(self, out: Tensor, y: Tensor) -> Tensor:
        """``log softmax(out)[y]`` per point: ``[*B, N]``."""
        return categorical_point_log_prob(out, y)

    def observe(self, name: str, out: Tensor, y: Tensor) -> None:
        """Observe labels ``[*B, N]`` as one event per task."""
        pyro.sample(name, pdist.Categorical(logits=out).to_event(1), obs=y)


def categorical_point_log_prob(logits: Tensor, y: Tensor) -> Tensor:
    """``log softmax(logits)[y]`` per point, ``[*B, N]``.

    Logits are ``[*B, N, C]`` and labels ``[*B', N]``; the labels broadcast
    over the logits' leading dimensions (e.g. over posterior samples ``S`` in
    front of ``[T, N, C]``).
    """
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, y.expand(logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)


LikelihoodName = Literal["gaussian", "mse", "categorical"]


def make_likelihood(
    likelihood: LikelihoodName | Likelihood,
    noise_scale: float = 0.1,
    learn_noise: bool = True,
    outputs: int = 1,
) -> Likelihood:
    """A likelihood from its name (or the given object, unchanged).

    Parameters
    ----------
    likelihood
        ``"gaussian"``, ``"mse"``, ``"categorical"`` or a :class:`Likelihood`.
    noise_scale, learn_noise, outputs
        Initial noise scale, whether it is learned, and the number of
        outputs ``O`` (for ``"gaussian"``).

    """
    if isinstance(likelihood, Likelihood):
        return likelihood
    if likelihood == "gaussian":
        return GaussianLikelihood(noise_scale, num_outputs=outputs, learn_scale=learn_noise)
    if likelihood == "mse":
        return MSELikelihood()
    if likelihood == "categorical":
        return CategoricalLikelihood()
    raise ValueError(
        f"likelihood must be 'gaussian', 'mse', 'categorical' or a Likelihood, got {likelihood!r}"
    )
