"""BayesianProtoNet: ProtoNet as a conjugate Gaussian model of each class in embedding space.

:class:`BayesianProtoNet` puts a Normal prior on the class means, so that their
posterior, and the predictive of a query point, are Normal in closed form and
account for the number of shots. With a flat prior the posterior means are
ProtoNet's prototypes (:mod:`bayesmeta.learners.protonet`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_count, positive
from bayesmeta.guides.fixed import NormalGuide, TaskGuide
from bayesmeta.learners.base import OptimizerFactory
from bayesmeta.learners.hyper import LearnerHyper, MetricHyper, check_choice, pick_hyper
from bayesmeta.learners.metric import (
    Episode,
    MetricLearner,
    MetricPredictor,
    resolve_n_way,
)
from bayesmeta.learners.prototype_posterior import (
    PrototypePosterior,
    closed_form_log_probs,
    sample_log_probs,
)
from bayesmeta.model.class_mean_model import ClassMeanModel
from bayesmeta.predictions.class_prediction import ClassPrediction

__all__ = [
    "BayesianProtoNet",
    "BayesianProtoNetHyper",
    "PriorMean",
    "PrototypePosterior",
    "PrototypePredictor",
    "sample_log_probs",
]

PriorMean = Literal["episode", "zero"]


@dataclass(frozen=True)
class BayesianProtoNetHyper(MetricHyper):
    """:class:`BayesianProtoNet`'s hyper-parameters (see its parameters).

    ``prior_scale`` and ``obs_scale`` are the initial ``tau`` and ``sigma``; the
    learned ones are the learner's ``prior_scale`` and ``obs_scale``.
    """

    prior_scale: float = 1.0
    obs_scale: float = 1.0
    learn_scales: bool = True
    prior_mean: PriorMean = "episode"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("prior_scale", positive("prior_scale", self.prior_scale))
        self._set("obs_scale", positive("obs_scale", self.obs_scale))
        self._set("learn_scales", bool(self.learn_scales))
        check_choice("prior_mean", self.prior_mean, ("episode", "zero"))


class BayesianProtoNet(MetricLearner[PrototypePosterior]):
    """ProtoNet as a conjugate Gaussian model of each class in embedding space.

    For a task with embeddings ``z = f(x)``::

        mu_c      ~ N(m0, tau^2 I)      class means, c = 1..N
        z | y = c ~ N(mu_c, sigma^2 I)

    Given ``K_c`` support embeddings of class ``c`` with sum ``s_c``, the
    posterior of ``mu_c`` is ``N(mean_c, v_c I)`` with
    ``1 / v_c = 1/tau^2 + K_c/sigma^2`` and
    ``mean_c = v_c (m0/tau^2 + s_c/sigma^2)``; a query embedding of class
    ``c`` is ``N(mean_c, (v_c + sigma^2) I)`` under the posterior predictive,
    and the class probabilities are proportional to that density (equal
    class priors). Fewer shots give a larger ``v_c`` and a less confident
    prediction. As ``tau -> inf`` the posterior means become ProtoNet's
    prototypes and, with equal shots, the logits are ProtoNet's divided by
    ``2 sigma^2 (1 + 1/K)``.

    The scales ``tau`` and ``sigma`` are meta-learned (log-parameterised)
    with the encoder on the episodic query cross-entropy under the
    predictive. There is no marginal-likelihood term for the support
    embeddings: a density in embedding space is not a likelihood of the
    inputs, and rewarding it would pull the encoder towards collapsing all
    embeddings together.

    Parameters
    ----------
    encoder
        Any ``nn.Module`` mapping ``[N, *features]`` to ``[N, E]``, or MLP
        layer widths.
    prior_scale
        Initial ``tau``, the prior scale of the class means.
    obs_scale
        Initial ``sigma``, the spread of a class's embeddings around its mean.
    learn_scales
        Meta-learn ``tau`` and ``sigma`` (else they stay fixed).
    prior_mean
        ``"episode"`` (default): ``m0`` is the mean of the episode's class
        means (the mean of its support embeddings when the shots are equal),
        so the posterior shrinks the class means towards the centre of the
        episode and predictions do not change when every embedding is shifted
        by the same vector, as ProtoNet's do not. ``"zero"``: ``m0 = 0``,
        shrinkage towards the origin of the embedding space.
    feature_dims, outer_lr, optimizer, max_grad_norm
        See :class:`~bayesmeta.learners.metric.MetricLearner`.

    """

    hparams: BayesianProtoNetHyper
    Hyper: ClassVar[type[LearnerHyper]] = BayesianProtoNetHyper

    def __init__(
        self,
        encoder: nn.Module | Sequence[int],
        *,
        prior_scale: float = 1.0,
        obs_scale: float = 1.0,
        learn_scales: bool = True,
        prior_mean: PriorMean = "episode",
        feature_dims: int | None = None,
        outer_lr: float = 1e-3,
        optimizer: OptimizerFactory | None = None,
        max_grad_norm: float | None = None,
    ) -> None:
        hp = pick_hyper(BayesianProtoNetHyper, locals())
        super().__init__(encoder, hp, optimizer=optimizer)
        dtype = torch.get_default_dtype()
        self.log_prior_scale = nn.Parameter(
            torch.tensor(math.log(hp.prior_scale), dtype=dtype), requires_grad=hp.learn_scales
        )
        self.log_obs_scale = nn.Parameter(
            torch.tensor(math.log(hp.obs_scale), dtype=dtype), requires_grad=hp.learn_scales
        )

    @property
    def prior_scale(self) -> Tensor:
        """The prior scale ``tau`` of the class means (a scalar)."""
        return self.log_prior_scale.exp()

    @property
    def obs_scale(self) -> Tensor:
        """The observation scale ``sigma`` of embeddings around their class mean (a scalar)."""
        return self.log_obs_scale.exp()

    def _context(self, episode: Episode) -> PrototypePosterior:
        # The posterior mean v_c (m0/tau^2 + s_c/sigma^2) written as the interpolation
        # m0 + w_c (xbar_c - m0) between the prior mean and the class mean, with the weight
        # w_c = v_c K_c / sigma^2 of the data: one lerp instead of five products and sums
        # (equal up to rounding, values and gradients; tested).
        counts = episode.counts  # [T, N]
        class_means = episode.class_means  # [T, N, E]
        if self.hparams.prior_mean == "episode":
            m0 = class_means.mean(-2, keepdim=True)  # [T, 1, E]
        else:
            m0 = torch.zeros_like(class_means[..., :1, :])
        prior_prec = torch.exp(-2.0 * self.log_prior_scale)
        obs_var = torch.exp(2.0 * self.log_obs_scale)
        data_prec = counts / obs_var  # [T, N]
        var = (prior_prec + data_prec).reciprocal()
        mean = torch.lerp(m0, class_means, (data_prec * var).unsqueeze(-1))
        return PrototypePosterior(mean, var, obs_var, m0.squeeze(-2))

    def _log_probs(self, context: PrototypePosterior, zq: Tensor) -> Tensor:
        return closed_form_log_probs(context, zq)

    @property
    def model(self) -> ClassMeanModel:
        """The conjugate class-mean model as a Pyro model ``model(x, y=None, n_way=None)``.

        The :class:`~bayesmeta.model.ClassMeanModel` with prior
        ``N(m0, tau^2 I)`` on each class mean (site ``"theta"``, ``[T, N*E]``)
        and embeddings ``N(mu_c, sigma^2 I)``, at the learned ``tau`` and
        ``sigma`` (read as constants, as is the encoder). NUTS on a support set
        recovers :meth:`posterior`; ``Predictive`` with the adapted predictor's
        ``guide`` draws labels as ``predict(query_x, num_samples=S)`` does.

        Raises
        ------
        NotImplementedError
            For an encoder that normalises with batch statistics.

        """
        return self._class_mean_model(learn=False)

    def meta_model(self) -> ClassMeanModel:
        """:attr:`model` with gradients reaching the encoder and the scales."""
        return self._class_mean_model(learn=True)

    def _class_mean_model(self, learn: bool) -> ClassMeanModel:
        return ClassMeanModel(
            self._embed_for_model(learn),
            lambda: self.obs_scale,
            lambda: self.prior_scale,
            self.hparams.prior_mean,
            feature_dims=self.fnet.feature_dims,
            owner=self,
            learn=learn,
        )

    def _guide(self, context: PrototypePosterior, batched: bool) -> TaskGuide:
        loc = context.mean.flatten(-2)  # [T, N*E]
        scale = context.var.sqrt().unsqueeze(-1).expand_as(context.mean).flatten(-2)
        return NormalGuide(loc, scale) if batched else NormalGuide(loc[0], scale[0])

    def posterior(
        self, support_z: Tensor, support_y: Tensor, n_way: int | None = None
    ) -> PrototypePosterior:
        """The class-mean posterior given support *embeddings*, with the current scales.

        Parameters
        ----------
        support_z
            Embeddings ``[K, E]`` or ``[T, K, E]``.
        support_y
            Integer labels ``[K]`` or ``[T, K]``.
        n_way
            Number of classes; the largest label plus one when omitted.

        Returns
        -------
        PrototypePosterior
            With batch shape ``()`` or ``(T,)``.

        """
        batched = support_z.dim() == 3
        z = support_z if batched else support_z.unsqueeze(0)
        y = (support_y if batched else support_y.unsqueeze(0)).long()
        if z.dim() != 3 or y.shape != z.shape[:2]:
            raise ValueError(
                "support_z must be [K, E] or [T, K, E] and support_y [K] or [T, K] to match, "
                f"got {tuple(support_z.shape)} and {tuple(support_y.shape)}"
            )
        post = self._context(self._episode(z, y, resolve_n_way(y, n_way)))
        if batched:
            return post
        return PrototypePosterior(post.mean[0], post.var[0], post.obs_var, post.prior_mean[0])

    def adapt(
        self, support_x: Tensor, support_y: Tensor, n_way: int | None = None
    ) -> PrototypePredictor:
        """Posterior of the class means of one task (or ``T`` tasks), ready to predict.

        See :meth:`MetricLearner.adapt`; the predictor's ``predict`` also
        takes ``num_samples`` for a sampled predictive.
        """
        x, y, n, batched, context = self._adapt_parts(support_x, support_y, n_way)
        return PrototypePredictor(self, x, y, n, batched, context)


@dataclass(frozen=True, eq=False)
class PrototypePredictor(MetricPredictor[PrototypePosterior]):
    """A :class:`BayesianProtoNet` adapted to one or more tasks.

    ``context`` holds the :class:`PrototypePosterior` (``[T, N, E]``) unless
    the encoder normalises with batch statistics.
    """

    def predict(
        self,
        query_x: Tensor,
        num_samples: int | None = None,
        *,
        generator: torch.Generator | None = None,
        query_update: bool = True,
    ) -> ClassPrediction:
        """Class probabilities at ``query_x`` ``[*B, Q, *features]``.

        Parameters
        ----------
        query_x
            Query inputs.
        num_samples
            ``None`` (default): the closed-form posterior predictive, the
            exact Bayesian class probabilities of the model
            ``p(y = c | z) ∝ N(z; mean_c, (v_c + sigma^2) I)``, one sample
            (``S = 1``, no epistemic part). An int ``S``: ``S`` draws of the
            class means from their posterior given the support set and the
            query point, and each draw's class probabilities
            ``softmax_c(-||z - mu_c^s||^2 / (2 sigma^2))``; their average is
            the closed form up to Monte Carlo error, and their disagreement is
            the epistemic part (mutual information) of the uncertainty (see
            :mod:`bayesmeta.learners.prototype_posterior`).
        generator
            Random generator for the draws.
        query_update
            With ``num_samples``: ``False`` draws the class means from the
            support posterior alone (what Pyro's ``Predictive`` samples with
            :attr:`guide`), whose average is less confident than the closed form.

        Returns
        -------
        ClassPrediction
            ``[S, *B, Q, N]`` per-sample log-probabilities.

        """
        if num_samples is None:
            return super().predict(query_x)
        check_count("num_samples", num_samples, minimum=1)
        context, zq = self._query(query_x)
        with torch.no_grad():
            log_p = sample_log_probs(
                context, zq, num_samples, generator=generator, query_update=query_update
            )
        return self._wrap(log_p)
