"""The head posterior of a :class:`~bayesmeta.transfer.BayesianLastLayer`, ready to predict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.posteriors.gaussian import GaussianTaskPosterior
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction
from bayesmeta.transfer import _linear_gaussian as lg

__all__ = ["FeatureEncoder", "LastLayerPosterior"]


class FeatureEncoder(Protocol):
    """What a :class:`LastLayerPosterior` needs of its learner: the frozen features."""

    def _encode(
        self, name: str, x: object, batch: tuple[int, ...], width: int | None = None
    ) -> Tensor:
        """Features ``[*batch, N, width]`` of inputs ``[*batch, N, *features]``."""
        ...


@dataclass(frozen=True, eq=False)
class LastLayerPosterior:
    """The head posterior of one task or a batch, ready to predict.

    Attributes
    ----------
    learner : BayesianLastLayer
        Encodes the query points (a reference, not a copy).
    head : LinearGaussianHead or GaussianTaskPosterior
        Regression: the exact Gaussian posterior per output (float64), read
        through the properties below. Classification: the SVI posterior over
        the ``nn.Linear(H, C)`` weights.

    """

    learner: FeatureEncoder
    head: lg.LinearGaussianHead | GaussianTaskPosterior

    @property
    def classification(self) -> bool:
        """Whether the head is a softmax classifier."""
        return isinstance(self.head, GaussianTaskPosterior)

    @property
    def batch_shape(self) -> torch.Size:
        """``()`` for one task, ``(T,)`` for a batch."""
        if isinstance(self.head, GaussianTaskPosterior):
            return self.head.batch_shape
        return self.head.loc.shape[:-2]

    def _gaussian(self, what: str) -> lg.LinearGaussianHead:
        if isinstance(self.head, GaussianTaskPosterior):
            raise ValueError(f"{what} is defined for regression heads only; use predict()")
        return self.head

    @property
    def loc(self) -> Tensor:
        """Posterior mean of each output's weights and bias ``[*B, O, H+1]``."""
        return self._gaussian("loc").loc

    def covariance(self) -> Tensor:
        """Posterior covariance per output ``[*B, O, H+1, H+1]``."""
        return self._gaussian("covariance").covariance()

    @property
    def noise_scale(self) -> Tensor:
        """Noise standard deviation ``[*B, O]``."""
        return self._gaussian("noise_scale").noise_scale

    @property
    def prior_scale(self) -> Tensor:
        """Prior standard deviation ``alpha^-1/2`` of the head weights ``[*B]``."""
        return self._gaussian("prior_scale").prior_scale

    @property
    def log_evidence(self) -> Tensor:
        """Log marginal likelihood of the support targets ``[*B]``, summed over outputs."""
        return self._gaussian("log_evidence").log_evidence

    def _query(self, query_x: Tensor) -> Tensor:
        head = self.head
        width = head.fnet.shapes[0][-1] if isinstance(head, GaussianTaskPosterior) else None
        width = head.loc.shape[-1] if width is None else width + 1
        return self.learner._encode("query_x", query_x, tuple(self.batch_shape), width)

    def mean(self, query_x: Tensor) -> Tensor:
        """Exact predictive mean ``[*B, Q, O]`` at ``query_x`` ``[*B, Q, *f]`` (regression)."""
        phi = self._query(query_x)
        return self._gaussian("mean").mean(phi).to(phi.dtype)

    def variance(self, query_x: Tensor) -> Tensor:
        """Exact predictive variance ``phi^T S phi + sigma^2`` ``[*B, Q, O]`` (regression)."""
        phi = self._query(query_x)
        head = self._gaussian("variance")
        noise = head.noise_scale.pow(2).unsqueeze(-2)
        return (head.function_variance(phi) + noise).to(phi.dtype)

    def predict(
        self, query_x: Tensor, *, num_samples: int = 100, generator: torch.Generator | None = None
    ) -> Prediction | ClassPrediction:
        """Posterior predictive at ``query_x`` ``[*B, Q, *f]`` from ``S`` head samples.

        Regression: function samples ``[S, *B, Q, O]`` with the noise scale
        ``[*B, 1, O]`` (:meth:`mean` and :meth:`variance` are exact);
        classification: the samples' class probabilities ``[S, *B, Q, C]``.
        """
        check_count("num_samples", num_samples, minimum=1)
        phi = self._query(query_x)
        if isinstance(self.head, GaussianTaskPosterior):
            return self.head.predict(phi[..., :-1], num_samples=num_samples, generator=generator)
        w = self.head.sample_weights(num_samples, generator)
        f = (phi.double() @ w.mT).to(phi.dtype)
        return Prediction(f, self.head.noise_scale.unsqueeze(-2).to(phi.dtype))
