"""Prototypical networks (Snell et al. 2017).

:class:`ProtoNet` models each class of a task as a Gaussian cloud in the
embedding space of a meta-learned encoder ``z = f(x)`` and uses the class
means of the support embeddings (the prototypes) as point estimates: the
flat-prior, point-mass case of :class:`~bayesmeta.BayesianProtoNet`
(:mod:`bayesmeta.learners.bayesian_protonet`), which this module re-exports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn.functional import normalize

from bayesmeta.guides.fixed import DeltaGuide, TaskGuide
from bayesmeta.learners.base import OptimizerFactory
from bayesmeta.learners.bayesian_protonet import (
    BayesianProtoNet,
    PriorMean,
    PrototypePosterior,
    PrototypePredictor,
    sample_log_probs,
)
from bayesmeta.learners.hyper import LearnerHyper, MetricHyper, check_choice, pick_hyper
from bayesmeta.learners.metric import Episode, MetricLearner, squared_distances
from bayesmeta.model.class_mean_model import ClassMeanModel

__all__ = [
    "BayesianProtoNet",
    "Distance",
    "PriorMean",
    "ProtoNet",
    "ProtoNetHyper",
    "PrototypePosterior",
    "PrototypePredictor",
    "sample_log_probs",
]

Distance = Literal["sqeuclidean", "cosine"]


@dataclass(frozen=True)
class ProtoNetHyper(MetricHyper):
    """:class:`ProtoNet`'s hyper-parameters.

    Attributes
    ----------
    distance : str
        ``"sqeuclidean"`` or ``"cosine"``.

    """

    distance: Distance = "sqeuclidean"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("distance", self.distance, ("sqeuclidean", "cosine"))


class ProtoNet(MetricLearner[Tensor]):
    """Prototypical networks: classify by the distance to each class's mean embedding.

    The prototype of class ``c`` is the mean embedding of its support
    examples, ``p_c = (1/K_c) sum_{i: y_i = c} f(x_i)``; a query point gets
    the logits ``-||f(x) - p_c||^2`` and the learner is meta-trained on the
    query cross-entropy of each episode. In bayesmeta's terms it is the
    Gaussian class-mean model in embedding space with a flat prior and point
    estimates (see :class:`BayesianProtoNet`). All tasks of a meta-batch go
    through the encoder in one call; support sets may hold different numbers
    of examples per class.

    Parameters
    ----------
    encoder
        Any ``nn.Module`` mapping ``[N, *features]`` to embeddings ``[N, E]``
        (e.g. ``bayesmeta.nets.Conv4(1, None)``), or MLP layer widths.
    distance
        ``"sqeuclidean"`` (the paper's) or ``"cosine"``: logits
        ``s * cos(f(x), p_c)`` with a meta-learned scale ``s`` (starting at 10).
    feature_dims, outer_lr, optimizer, max_grad_norm
        See :class:`~bayesmeta.learners.metric.MetricLearner`.

    Examples
    --------
    >>> learner = ProtoNet(torch.nn.Linear(4, 3))
    >>> sx, sy = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    >>> learner.adapt(sx, sy).predict(torch.randn(5, 4)).probs.shape
    torch.Size([5, 3])

    """

    hparams: ProtoNetHyper
    Hyper: ClassVar[type[LearnerHyper]] = ProtoNetHyper

    def __init__(
        self,
        encoder: nn.Module | Sequence[int],
        *,
        distance: Distance = "sqeuclidean",
        feature_dims: int | None = None,
        outer_lr: float = 1e-3,
        optimizer: OptimizerFactory | None = None,
        max_grad_norm: float | None = None,
    ) -> None:
        super().__init__(encoder, pick_hyper(ProtoNetHyper, locals()), optimizer=optimizer)
        if distance == "cosine":
            self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def _context(self, episode: Episode) -> Tensor:
        return episode.class_means

    def logits(self, prototypes: Tensor, zq: Tensor) -> Tensor:
        """Scores ``[*B, Q, N]`` of queries ``[*B, Q, E]`` given prototypes ``[*B, N, E]``."""
        if self.hparams.distance == "cosine":
            a = normalize(zq, dim=-1)
            b = normalize(prototypes, dim=-1)
            return self.log_scale.exp() * (a @ b.transpose(-1, -2))
        return -squared_distances(zq, prototypes)

    def _log_probs(self, context: Tensor, zq: Tensor) -> Tensor:
        """Log class probabilities ``[T, Q, N]`` of queries ``[T, Q, E]``, prototypes ``[T, N, E]``.

        ``log_softmax(logits)``. For the squared distance, a softmax does not see a
        shift of each query's scores, so ``-||z||^2`` drops out of
        ``-||z - p||^2 = -||z||^2 + 2 z.p - ||p||^2`` and the scores are one fused
        ``baddbmm``, ``2 z.p - ||p||^2``: equal to the full distances' result up to
        rounding, values and gradients (tested), with fewer kernels forward and backward.
        """
        if self.distance == "cosine":
            return torch.log_softmax(self.logits(context, zq), dim=-1)
        p2 = context.square().sum(-1).unsqueeze(-2)  # [T, 1, N]
        scores = torch.baddbmm(p2, zq, context.transpose(-1, -2), beta=-1.0, alpha=2.0)
        return torch.log_softmax(scores, dim=-1)

    @property
    def model(self) -> ClassMeanModel:
        """ProtoNet as a Pyro model ``model(x, y=None, n_way=None)``: Gaussian classes.

        The :class:`~bayesmeta.model.ClassMeanModel` with a flat prior on the
        class means (site ``"theta"``, ``[T, N*E]``) and ``sigma^2 = 1/2``, so
        that ``p(y = c | z, mu) = softmax_c(-||z - mu_c||^2)``, ProtoNet's
        logits. The prototypes are the posterior mode; the adapted
        predictor's ``guide`` is a point mass at them, so
        ``Predictive(learner.model, guide=learner.adapt(sx, sy).guide)(qx[None], n_way=N)``
        draws labels from ``predict``'s probabilities.

        Raises
        ------
        NotImplementedError
            For ``distance="cosine"`` (not a Gaussian class model), and for an
            encoder that normalises with batch statistics.

        """
        return self._class_mean_model(learn=False)

    def meta_model(self) -> ClassMeanModel:
        """:attr:`model` with gradients reaching the encoder."""
        return self._class_mean_model(learn=True)

    def _class_mean_model(self, learn: bool) -> ClassMeanModel:
        if self.hparams.distance != "sqeuclidean":
            raise NotImplementedError(
                "ProtoNet with distance='cosine' is not a Gaussian class model, so it has no "
                "Pyro model; use distance='sqeuclidean'"
            )
        embed = self._embed_for_model(learn)
        half = torch.tensor(0.5**0.5, dtype=self.fnet.params()[0].dtype, device=self.device)
        return ClassMeanModel(
            embed,
            lambda: half,
            None,
            "episode",
            feature_dims=self.fnet.feature_dims,
            owner=self,
            learn=learn,
        )

    def _guide(self, context: Tensor, batched: bool) -> TaskGuide:
        loc = context.flatten(-2)  # [T, N*E]
        return DeltaGuide(loc if batched else loc[0])
