"""Observation models: the ``p(y | f(x; theta))`` of the one model.

A likelihood is a distribution factory: ``likelihood(f)`` returns the Pyro
distribution of the targets at network outputs ``f`` ``[*B, N, O]``, with one
event per point (``log_prob(y)`` is ``[*B, N]``). Any callable
``f -> pyro.distributions.Distribution`` can be used as one (an ``nn.Module``
when it has learned parameters); :func:`make_likelihood` wraps it in a
:class:`FunctionLikelihood`. Built in: :class:`GaussianLikelihood` (learned
noise scale), :class:`StudentTLikelihood`, :class:`CategoricalLikelihood`,
:class:`BernoulliLikelihood`, and :class:`MSELikelihood` (MAML's squared error
as a Gibbs likelihood).

The same object is also the inner loops' per-task loss:
``likelihood(out, y)`` is the mean negative log-likelihood per point ``[*B]``,
and ``likelihood.output_grad(out, y)`` its gradient with respect to ``out``
(summed over the batch), which the networks' batched backward passes use. It
is taken by autograd on the small output tensor unless a built-in writes it
out; no likelihood needs a hand-derived gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import pyro.distributions as pdist
import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from bayesmeta._checks import check_count, positive_scalar
from bayesmeta.model.likelihood import Likelihood, Observation, per_output
from bayesmeta.nets.losses import cross_entropy, cross_entropy_output_grad, mse, mse_output_grad

__all__ = [
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "FunctionLikelihood",
    "GaussianLikelihood",
    "Likelihood",
    "LikelihoodName",
    "MSELikelihood",
    "Observation",
    "StudentTLikelihood",
    "categorical_point_log_prob",
    "make_likelihood",
    "per_output",
]


class GaussianLikelihood(Likelihood):
    """``y ~ N(f(x), sigma^2)`` independently per point and output.

    Parameters
    ----------
    scale
        Initial noise standard deviation (positive), relative to the targets'
        standard deviation when the learner standardises them (see
        :mod:`bayesmeta.nets.units`).
    num_outputs
        ``O``: one scale per output.
    learn_scale
        Meta-learn the scale (default) or keep it fixed.

    """

    target_units = True

    def __init__(
        self, scale: float = 0.1, *, num_outputs: int = 1, learn_scale: bool = True
    ) -> None:
        super().__init__()
        scale = positive_scalar("noise_scale", scale)
        check_count("num_outputs", num_outputs, minimum=1)
        self.log_scale = nn.Parameter(
            torch.full((num_outputs,), math.log(scale)), requires_grad=learn_scale
        )

    @property
    def scale(self) -> Tensor:
        """Noise standard deviation ``[O]`` in the targets' units."""
        ts = self.target_scale()
        return self.log_scale.exp() if ts is None else self.log_scale.exp() * ts

    def distribution(self, out: Tensor) -> Distribution:
        """``Normal(out, sigma)`` with the outputs as the event: ``[*B, N]`` per point."""
        return pdist.Normal(out, self.scale).to_event(1)

    def point_log_prob(self, out: Tensor, y: Tensor) -> Tensor:
        """``log N(y | out, sigma^2)`` per point, summed over outputs: ``[*B, N]``."""
        scale = self.scale
        z = (y - out) / scale
        per = 0.5 * z * z + scale.log() + 0.5 * math.log(2 * math.pi)
        return -per.sum(-1)

    def output_grad(self, out: Tensor, y: Tensor) -> Tensor:
        """Gradient of the summed mean NLL with respect to ``out``."""
        return (out - y) * self.scale.pow(-2).div(out.shape[-2])

    def noise_scale(self) -> Tensor:
        """The noise standard deviation ``[O]``."""
        return self.scale

    def observation(self) -> None:
        """``None``: predictions use their closed Gaussian forms with :meth:`noise_scale`."""
        return None

    def step_scale(self) -> Tensor:
        """``2 sigma^2`` (mean over outputs).

        The mean Gaussian NLL's gradient is the mean squared error's divided by
        ``2 sigma^2``; preconditioning by it makes an inner step of size
        ``lr`` the same as MAML's on the MSE, whatever the learned noise scale
        (without it, steps grow as ``1 / sigma^2`` and diverge as the noise
        scale is learned down on clean data).
        """
        return 2.0 * (2.0 * self.log_scale).exp().mean()


class MSELikelihood(Likelihood):
    """Mean squared error as a generalised (Gibbs) likelihood, with no noise model.

    ``exp(-MSE)`` is a Gaussian likelihood of variance 1/2 up to a constant.
    With a point-mass posterior and no prior term this makes
    :class:`~bayesmeta.BayesianMAML` exactly :class:`~bayesmeta.MAML`. When
    the learner standardises the targets, the error is measured in units of
    their standard deviation ``s`` (``MSE / s^2``).
    """

    target_units = True

    def distribution(self, out: Tensor) -> Distribution:
        """The normalised Gibbs likelihood: ``Normal(out, s sqrt(O / 2))`` per output."""
        scale = torch.full_like(out, math.sqrt(out.shape[-1] / 2.0))
        ts = self.target_scale()
        return pdist.Normal(out, scale if ts is None else scale * ts.to(out)).to_event(1)

    def forward(self, out: Tensor, y: Tensor | None = None) -> Any:
        """The distribution of ``out``, or with ``y`` the mean squared error per task ``[*B]``."""
        if y is None:
            return self.distribution(out)
        ts = self.target_scale()
        return mse(out, y) if ts is None else mse(out / ts.to(out), y / ts.to(out))

    def output_grad(self, out: Tensor, y: Tensor) -> Tensor:
        """Gradient of the summed MSE with respect to ``out``."""
        ts = self.target_scale()
        grad = mse_output_grad(out, y)
        return grad if ts is None else grad / ts.to(out).pow(2)

    def point_log_prob(self, out: Tensor, y: Tensor) -> Tensor:
        """The Gibbs log-likelihood per point, ``-mean_o ((out - y) / s)^2``: ``[*B, N]``."""
        ts = self.target_scale()
        err = out - y if ts is None else (out - y) / ts.to(out)
        return -err.pow(2).mean(-1)

    def observation(self) -> None:
        """``None``: a point estimate's noise is fitted separately (``fit_noise_scale``)."""
        return None


class CategoricalLikelihood(Likelihood):
    """``y ~ Categorical(softmax(f(x)))`` for class labels ``[*B, N]``."""

    classification: bool = True

    def distribution(self, out: Tensor) -> Distribution:
        """``Categorical(logits=out)``: labels ``[*B, N]``."""
        return pdist.Categorical(logits=out)

    def forward(self, out: Tensor, y: Tensor | None = None) -> Any:
        """The distribution of ``out``, or with ``y`` the mean cross-entropy per task ``[*B]``."""
        if y is None:
            return self.distribution(out)
        return cross_entropy(out, y)

    def output_grad(self, out: Tensor, y: Tensor) -> Tensor:
        """Gradient of the summed mean cross-entropy with respect to the logits."""
        return cross_entropy_output_grad(out, y)

    def point_log_prob(self, out: Tensor, y: Tensor) -> Tensor:
        """``log softmax(out)[y]`` per point: ``[*B, N]``."""
        return categorical_point_log_prob(out, y)

    def observation(self) -> None:
        """``None``: class predictions are read from the scores' softmax."""
        return None


def categorical_point_log_prob(logits: Tensor, y: Tensor) -> Tensor:
    """``log softmax(logits)[y]`` per point, ``[*B, N]``.

    Logits are ``[*B, N, C]`` and labels ``[*B', N]``; the labels broadcast
    over the logits' leading dimensions (e.g. over posterior samples ``S`` in
    front of ``[T, N, C]``).
    """
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, y.expand(logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)


class StudentTLikelihood(Likelihood):
    """``y ~ StudentT(df, f(x), sigma)`` per point and output: noise with heavy tails.

    Parameters
    ----------
    df
        Degrees of freedom (fixed; 4 by default).
    scale
        Initial noise scale (positive), relative to the targets' standard
        deviation when the learner standardises them.
    num_outputs
        ``O``: one scale per output.
    learn_scale
        Meta-learn the scale (default) or keep it fixed.

    """

    target_units = True

    def __init__(
        self,
        df: float = 4.0,
        scale: float = 0.1,
        *,
        num_outputs: int = 1,
        learn_scale: bool = True,
    ) -> None:
        super().__init__()
        self.df = positive_scalar("df", df)
        scale = positive_scalar("noise_scale", scale)
        check_count("num_outputs", num_outputs, minimum=1)
        self.log_scale = nn.Parameter(
            torch.full((num_outputs,), math.log(scale)), requires_grad=learn_scale
        )

    def step_scale(self) -> Tensor:
        """``2 Var(y | f) = 2 sigma^2 df / (df - 2)`` (``2 sigma^2`` if ``df <= 2``), output mean.

        As for the Gaussian likelihood, so that ``inner_lr`` means a step of
        the same size as on the squared error whatever the learned scale.
        """
        factor = self.df / (self.df - 2.0) if self.df > 2 else 1.0
        return 2.0 * factor * (2.0 * self.log_scale).exp().mean()

    def distribution(self, out: Tensor) -> Distribution:
        """``StudentT(df, out, sigma)`` with the outputs as the event."""
        df = torch.as_tensor(self.df, dtype=out.dtype, device=out.device)
        scale = self.log_scale.exp()
        ts = self.target_scale()
        return pdist.StudentT(df, out, scale if ts is None else scale * ts).to_event(1)


class BernoulliLikelihood(Likelihood):
    """``y ~ Bernoulli(sigmoid(f(x)))`` per point and output: binary targets ``0.``/``1.``."""

    def distribution(self, out: Tensor) -> Distribution:
        """``Bernoulli(logits=out)`` with the outputs as the event."""
        return pdist.Bernoulli(logits=out).to_event(1)


class FunctionLikelihood(Likelihood):
    """Any callable ``f -> Distribution`` as a likelihood.

    The callable gets network outputs ``f`` ``[*B, N, O]`` and returns a
    Pyro (or torch) distribution of the targets: either per output (batch
    shape ``[*B, N, O]``, e.g. ``lambda f: dist.StudentT(4.0, f, 0.3)``; the
    outputs are folded into the event) or per point (batch ``[*B, N]``, e.g.
    ``lambda f: dist.Categorical(logits=f)`` for class labels). An
    ``nn.Module`` callable is registered, so its parameters are learned with
    the learner's.

    Parameters
    ----------
    fn
        The distribution factory.
    classification
        Whether the targets are class labels scored by the outputs; ``None``
        reads it from the distribution (a discrete one per point).

    Raises
    ------
    TypeError
        If ``fn`` is not callable, or does not return a distribution.

    """

    def __init__(
        self,
        fn: Callable[[Tensor], Any],
        *,
        classification: bool | None = None,
        num_outputs: int = 1,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError(f"a likelihood must be callable f -> Distribution, got {fn!r}")
        self.fn = fn  # registered as a submodule when it is an nn.Module
        self.num_outputs = int(num_outputs)
        discrete = False
        if classification is None:
            probe = torch.zeros(1, 1, num_outputs)
            try:
                d = self._raw(probe)
            except TypeError:
                raise
            except Exception as err:
                raise ValueError(
                    f"could not call the likelihood on outputs of shape [1, 1, {num_outputs}] "
                    f"to tell class labels from real targets ({type(err).__name__}: {err}); "
                    "pass FunctionLikelihood(fn, classification=...)"
                ) from err
            discrete = bool(getattr(d.support, "is_discrete", False))
            classification = discrete and tuple(d.batch_shape) == (1, 1)
        self.classification = bool(classification)
        self.target_units = not (self.classification or discrete)

    def _raw(self, out: Tensor) -> Distribution:
        d = self.fn(out)
        if not isinstance(d, Distribution):
            raise TypeError(
                "the likelihood must return a distribution (e.g. lambda f: "
                f"pyro.distributions.StudentT(4.0, f, 0.3)), got {type(d).__name__}"
            )
        return d

    def distribution(self, out: Tensor) -> Distribution:
        """``fn(out)``, with the outputs folded into the event where it is per output."""
        d = self._raw(out)
        per_output = tuple(d.batch_shape) == tuple(out.shape) and not d.event_shape
        return pdist.Independent(d, 1) if per_output else d

    def observation(self) -> Observation | None:
        """The detached distribution, or ``None`` for class labels (read from the scores)."""
        return None if self.classification else super().observation()

    def step_scale(self) -> Tensor | float:
        """``2 Var(y | f)`` at ``f = 0`` (mean over outputs) for continuous targets, else 1.

        In units of the targets' scale when the learner standardises them.
        As for the built-in Gaussian (``2 sigma^2``), so that an inner step of
        size ``inner_lr`` is the same size as on the squared error whatever
        the noise scale (differentiable in the callable's parameters). Where
        the variance is infinite (a Student-t with ``df <= 2``), ``2 scale^2``
        of a location-scale distribution; class labels and discrete targets
        use 1.
        """
        if self.classification:
            return 1.0
        like = next(iter(self.parameters()), None)
        probe = torch.zeros(1, 1, self.num_outputs)
        if like is not None:
            probe = probe.to(like)
        d = per_output(self.distribution(probe))
        if getattr(d.support, "is_discrete", False):
            return 1.0
        try:
            var = d.variance
        except NotImplementedError:
            var = None
        ts = self.target_scale()
        if var is not None and bool(torch.isfinite(var).all()):
            return 2.0 * (var if ts is None else var / ts.to(var).pow(2)).mean()
        scale = getattr(d, "scale", None)
        if isinstance(scale, Tensor) and bool(torch.isfinite(scale).all()):
            return 2.0 * (scale if ts is None else scale / ts.to(scale)).pow(2).mean()
        return 1.0


LikelihoodName = Literal["gaussian", "student_t", "mse", "categorical", "bernoulli"]


def make_likelihood(
    likelihood: LikelihoodName | Likelihood | Callable[[Tensor], Any],
    noise_scale: float = 0.1,
    learn_noise: bool = True,
    outputs: int = 1,
) -> Likelihood:
    """A likelihood from its name (or the given object, unchanged).

    Parameters
    ----------
    likelihood
        ``"gaussian"``, ``"mse"``, ``"categorical"``, ``"student_t"``,
        ``"bernoulli"``, a :class:`Likelihood`, or any callable
        ``f -> Distribution`` (wrapped in a :class:`FunctionLikelihood`).
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
    if likelihood == "student_t":
        return StudentTLikelihood(scale=noise_scale, num_outputs=outputs, learn_scale=learn_noise)
    if likelihood == "bernoulli":
        return BernoulliLikelihood()
    if callable(likelihood) and not isinstance(likelihood, str):
        return FunctionLikelihood(likelihood, num_outputs=outputs)
    raise ValueError(
        "likelihood must be 'gaussian', 'student_t', 'mse', 'categorical', 'bernoulli', a "
        f"Likelihood or a callable f -> Distribution, got {likelihood!r}"
    )
