"""The predictive noise scale, calibrated on the query sets of the meta-training tasks.

A Bayesian learner's intervals are only as wide as its noise scale. Learned by the outer
optimiser alongside everything else, the noise scale moves slowly (Adam moves its log by
about ``outer_lr`` per iteration), so early in meta-training it is far smaller than the
errors the learner still makes and the intervals cover little. Learned quickly, it changes
the inner loop instead: a large noise scale lets the KL term hold each task's posterior at
the prior, the learner stops adapting and the errors stay large (a stable "I don't know").

:class:`CalibratedNoise` keeps the two apart. The likelihood's own scale stays the one the
adaptation runs under (meta-learned as before); the scale that predictions use is an
empirical-Bayes estimate from every meta-training batch's query sets, after adaptation,
``s^2 = mean over query points of (y - E f)^2 - Var f`` (the Gaussian predictive's
moment match: the noise the adapted functions leave unexplained), or the noise that makes
the 90% intervals cover 90% of the query points if that is larger, averaged over recent
batches. It starts at the first batch's errors, before any training, so the intervals
start wide and narrow as the learner improves.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor, nn

from bayesmeta.learners.adapted import AdaptedPredictor
from bayesmeta.model.learner_model import LearnerModel
from bayesmeta.model.likelihoods import GaussianLikelihood
from bayesmeta.model.task_model import TaskModel
from bayesmeta.nets.units import load_data_shaped
from bayesmeta.predictions.prediction import Prediction
from bayesmeta.tasks.task import TaskBatch

if TYPE_CHECKING:
    from bayesmeta.learners.base import MetaLearner

P = TypeVar("P")

__all__ = ["CalibratedNoise", "PredictiveNoise", "function_draws", "residual_noise_variance"]

#: The standard normal's 95% quantile: a central 90% interval is ``mean +- Z90 * sd``.
Z90 = 1.6448536269514722
#: Weight of the newest batch in the running estimate (a time constant of 10 batches).
RATE = 0.1


def residual_noise_variance(out: Tensor, y: Tensor) -> Tensor:
    """Noise variance per output ``[O]`` that the function draws leave unexplained.

    Parameters
    ----------
    out
        Function draws at the query points ``[S, T, Q, O]`` (``S = 1``: a point estimate).
    y
        Query targets ``[T, Q, O]``.

    Returns
    -------
    Tensor
        The larger of two estimates, at least a millionth of the targets' variance: the
        moment match ``mean_{t,q} ((y - mean_s f)^2 - var_s f)`` (the Gaussian
        predictive's maximum-likelihood noise when the errors are Gaussian), and the
        smallest noise variance whose central 90% Gaussian intervals
        ``mean_s f +- 1.645 sqrt(var_s f + s^2)`` cover 90% of the points. Errors that
        vary between tasks (a sinusoid's amplitude) have heavier tails than one
        Gaussian, and the moment match alone then covers less than it claims.

    """
    f = out.detach()
    mean = f.mean(0)
    var = f.var(0, unbiased=False) if f.shape[0] > 1 else torch.zeros_like(mean)
    sq = (y - mean).pow(2)
    excess = (sq - var).reshape(-1, y.shape[-1])
    moment = excess.mean(0)
    needed = (sq / Z90**2 - var).reshape(-1, y.shape[-1])
    quantile = torch.quantile(needed, 0.9, dim=0, interpolation="higher")
    floor = 1e-6 * y.reshape(-1, y.shape[-1]).var(0, unbiased=False).clamp_min(1e-12)
    return torch.maximum(torch.maximum(moment, quantile), floor)


def function_draws(
    posterior: Any,
    query_x: Tensor,
    *,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Function draws ``[S, T, Q, O]`` of an adapted regression posterior at ``query_x``.

    Parameters
    ----------
    posterior
        What a learner's ``adapt`` returned for a batch of tasks: an
        :class:`~bayesmeta.learners.AdaptedPredictor` (a point estimate,
        ``S = 1``) or a posterior whose ``predict`` takes ``num_samples``.
    query_x
        Query inputs ``[T, Q, *features]``.
    num_samples
        Draws ``S`` from a posterior.
    generator
        Random generator for the draws.

    Raises
    ------
    TypeError
        If the prediction is not a regression :class:`~bayesmeta.Prediction`.

    """
    with torch.no_grad():
        if isinstance(posterior, AdaptedPredictor):
            pred = posterior.predict(query_x)
        else:
            pred = posterior.predict(query_x, num_samples=num_samples, generator=generator)
    if not isinstance(pred, Prediction):
        raise TypeError(f"expected a regression Prediction, got {type(pred).__name__}")
    return pred.function_samples


class CalibratedNoise(nn.Module):
    """A running empirical-Bayes estimate of the predictive noise scale (a saved buffer).

    Attributes
    ----------
    variance : Tensor
        Noise variance per output ``[O]``; empty until the first update.

    """

    variance: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("variance", torch.zeros(0))

    @property
    def fitted(self) -> bool:
        """Whether any batch has been seen."""
        return bool(self.variance.numel())

    def update(self, out: Tensor, y: Tensor, rate: float = RATE) -> None:
        """Fold in one batch's query draws ``out`` ``[S, T, Q, O]`` and targets ``[T, Q, O]``.

        A batch whose draws are NaN or infinite (a diverged step, which meta-training
        refuses) leaves the estimate as it was.
        """
        with torch.no_grad():
            estimate = residual_noise_variance(out, y)
            if not bool(torch.isfinite(estimate).all()):
                return
            if not self.fitted or self.variance.shape != estimate.shape:
                self.variance = estimate.clone()
            else:
                self.variance.mul_(1.0 - rate).add_(rate * estimate)

    def set(self, out: Tensor, y: Tensor) -> None:
        """Replace the estimate by one batch's (e.g. held-out tasks')."""
        with torch.no_grad():
            self.variance = residual_noise_variance(out, y).clone()

    def scale(self) -> Tensor | None:
        """The noise standard deviation ``[O]``, or ``None`` before any batch."""
        return self.variance.sqrt() if self.fitted else None

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        load_data_shaped(self, state_dict, prefix, ("variance",))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class PredictiveNoise:
    """What a Bayesian learner does with its :class:`CalibratedNoise`.

    A mixin over :class:`~bayesmeta.BayesianMAML` and
    :class:`~bayesmeta.learners.VariationalMetaLearner`: it reads
    ``calibrate_noise``, ``calibration``, ``likelihood``, ``likelihood_name``
    and the learner's ``adapt`` and model parts.
    """

    calibrate_noise: bool
    calibration: CalibratedNoise
    likelihood: Any
    likelihood_name: str

    def calibrates_noise(self) -> bool:
        """Whether predictions use the calibrated noise scale (a Gaussian likelihood)."""
        return self.calibrate_noise and isinstance(self.likelihood, GaussianLikelihood)

    def predictive_noise(self) -> Tensor | None:
        """The noise scale ``[O]`` predictions use.

        With a calibrated estimate, the larger of it and the likelihood's own
        scale: the calibration widens intervals that the learned scale leaves
        too narrow, and never narrows them below the model's noise (an
        estimate that the posterior's spread alone explains the errors on the
        training tasks does not carry over to new ones). Else the
        likelihood's scale.
        """
        noise = self.likelihood.noise_scale()
        noise = None if noise is None else noise.detach()
        if self.calibrates_noise():
            scale = self.calibration.scale()
            if scale is not None:
                scale = scale.detach()
                return scale if noise is None else torch.maximum(scale, noise.to(scale))
        return noise

    def fit_noise_scale(
        self,
        batch: TaskBatch,
        *,
        num_samples: int = 50,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Re-estimate the predictive noise on tasks (e.g. held out from meta-training).

        Adapts to each task's support set and sets the noise to what the
        posterior's function draws leave unexplained on the query sets. The
        draws come from ``generator`` (default: a new one seeded 0), so torch's
        global random state is left as it was.

        Returns
        -------
        Tensor
            The new noise scale ``[O]``.

        Raises
        ------
        ValueError
            If the learner does not calibrate its noise (``calibrate_noise=False``
            or a likelihood other than the Gaussian).

        """
        if not self.calibrates_noise():
            raise ValueError(
                "fit_noise_scale needs calibrate_noise=True and a Gaussian likelihood; the "
                f"{self.likelihood_name!r} likelihood's own scale is used for predictions"
            )
        batch = self._learner()._check_batch(batch, need_query=True)
        learner: Any = self._learner()
        if generator is None:
            generator = torch.Generator(device=learner.device).manual_seed(0)
        post = learner.adapt(batch.support_x, batch.support_y, generator=generator)
        draws = function_draws(post, batch.query_x, num_samples=num_samples, generator=generator)
        self.calibration.set(draws, batch.query_y)
        return self.calibration.variance.sqrt()

    @property
    def model(self) -> LearnerModel:
        """The model (see :attr:`MetaLearner.model`), observing ``"y"`` with the predictive noise.

        With a calibrated noise scale (``calibrate_noise``) the ``"y"`` site
        is Gaussian with that scale, so ``Predictive`` with an adapted
        posterior's guide agrees with its ``predict``;
        :meth:`adaptation_model` is the model the posterior was adapted
        under, with the likelihood's own scale.
        """
        if not (self.calibrates_noise() and self.calibration.fitted):
            return super().model  # type: ignore[misc]
        noise = self.predictive_noise()
        assert noise is not None  # a calibrated estimate exists
        likelihood = GaussianLikelihood(1.0, num_outputs=noise.numel(), learn_scale=False)
        likelihood = likelihood.to(device=noise.device, dtype=noise.dtype)
        likelihood.log_scale.data.copy_(noise.detach().log())
        learner = self._learner()
        prior, _ = learner._model_parts()
        return TaskModel(learner.fnet, prior, likelihood, owner=learner, **learner._model_options())

    def adaptation_model(self) -> LearnerModel:
        """The model :meth:`adapt` conditions on: the prior and the likelihood's own scale."""
        return super().model  # type: ignore[misc]

    def with_predictive_noise(self, posterior: P) -> P:
        """``posterior`` predicting with :meth:`predictive_noise` (where it has a noise scale)."""
        if not self.calibrates_noise() or not dataclasses.is_dataclass(posterior):
            return posterior
        if not any(f.name == "noise_scale" for f in dataclasses.fields(posterior)):
            return posterior
        noise = self.predictive_noise()
        return dataclasses.replace(posterior, noise_scale=noise)  # type: ignore[type-var]

    def _learner(self) -> MetaLearner:
        return self  # type: ignore[return-value]
