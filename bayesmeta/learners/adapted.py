"""The result of adapting a point-estimate learner to one or more tasks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bayesmeta.guides.fixed import DeltaGuide
from bayesmeta.model.likelihoods import Observation
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction

__all__ = ["AdaptedPredictor"]


@dataclass(frozen=True, eq=False)
class AdaptedPredictor:
    """Task-specific weights found by adaptation, ready to predict.

    Attributes
    ----------
    fnet : FunctionalNet
        The network the weights belong to.
    params : tuple of Tensor
        Adapted weights, each ``[*B, *shape]`` (``B = ()`` for one task,
        ``(T,)`` for a batch).
    noise_scale : Tensor or None
        Fitted observation-noise scale, if the learner has one.
    classification : bool
        The outputs are class scores (logits): :meth:`predict` returns a
        :class:`~bayesmeta.ClassPrediction`.
    observation : callable or None
        The likelihood's observation model for predictions, where it is not
        Gaussian noise (see :class:`~bayesmeta.Prediction`).

    """

    fnet: FunctionalNet
    params: tuple[Tensor, ...]
    noise_scale: Tensor | None = None
    classification: bool = False
    observation: Observation | None = None

    @property
    def guide(self) -> DeltaGuide:
        """A point mass at the adapted weights, as a Pyro guide for the model's ``"theta"``.

        ``Predictive(learner.model, guide=adapted.guide, num_samples=S)`` draws
        the same ``"theta"`` ``S`` times and ``"y"`` from the likelihood.
        """
        return DeltaGuide(self.flat())

    @property
    def batch_shape(self) -> torch.Size:
        """``()`` for a single task or ``(T,)`` for a batch."""
        return self.fnet.batch_shape(self.params)

    def predict(self, query_x: Tensor) -> Prediction | ClassPrediction:
        """Predict at ``query_x`` ``[*B, Q, *features]``.

        Returns
        -------
        Prediction or ClassPrediction
            For regression, a point prediction (one function sample)
            ``[*B, Q, O]`` with the learner's noise scale, if fitted; for
            classification, the softmax of the adapted network's scores
            ``[*B, Q, C]``.

        """
        x = self.fnet.check_inputs(
            "query_x", query_x, self.batch_shape, like=self.params[0], owner="the adapted weights"
        )
        device = self.params[0].device
        with torch.no_grad():
            mean = self.fnet(self.params, x.to(device))
        if self.classification:
            return ClassPrediction.point(mean)
        if self.observation is not None:
            return Prediction(mean.unsqueeze(0), observation=self.observation)
        return Prediction.point(mean, self.noise_scale)

    def flat(self) -> Tensor:
        """The adapted weights as one vector ``[*B, P]``."""
        return self.fnet.flatten(self.params)
