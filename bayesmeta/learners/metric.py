"""What the metric learners share: an encoder, episodes in embedding space, test mode.

ProtoNet, its Bayesian version and Matching Networks meta-learn an encoder
``z = f(x)`` and classify a query point by comparing its embedding with the
embedded support set, in closed form. Adapting to a task needs no gradient
steps: it embeds the support set and summarises it (prototypes, a posterior
over class means, an attention memory). This module holds what they share:
embedding every input of a meta-batch in one encoder call, the per-task class
indicators, the label checks, the episodic loss and the predictor.

Normalisation layers at test time
---------------------------------
``adapt`` and ``predict`` run the encoder in eval mode under
``torch.no_grad()`` and restore each module's mode afterwards. Batch norm with
running statistics (``track_running_stats=True``) then normalises support and
query points with the same learned statistics, so the support set is embedded
once in ``adapt``. Batch norm *without* running statistics (the default of
:class:`~bayesmeta.nets.Conv4`) normalises with the statistics of whatever
batch it sees, in training and at test time alike; meta-training embeds
support and query points together, so for such encoders the predictor keeps
the support inputs and embeds them together with the query points at every
``predict`` call, as in training (the prediction for a point then depends on
the other query points of the call, as it does in training).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.functional import nll_loss

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.guides.fixed import TaskGuide
from bayesmeta.learners.base import MetaLearner, OptimizerFactory
from bayesmeta.learners.episodes import (
    Episode,
    class_indicators,
    resolve_n_way,
    squared_distances,
    uses_batch_statistics,
)
from bayesmeta.learners.hyper import LearnerHyper, MetricHyper
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.tasks.task import TaskBatch

__all__ = ["Episode", "MetricLearner", "MetricPredictor", "resolve_n_way", "squared_distances"]

C = TypeVar("C")


class MetricLearner(MetaLearner, Generic[C]):
    """Base of the encoder-based (metric) learners.

    Subclasses define how a support :class:`Episode` is summarised
    (``_context``) and how query embeddings are scored against that summary
    (``_log_probs``); this class does the embedding, the checks, the episodic
    loss, ``meta_step`` and ``adapt``.

    Parameters
    ----------
    encoder
        Any ``nn.Module`` mapping inputs ``[N, *features]`` to embeddings
        ``[N, E]`` (for example ``bayesmeta.nets.Conv4(1, None)``), or a tuple
        of MLP layer widths.
    hparams
        The hyper-parameters (a :class:`~bayesmeta.learners.hyper.MetricHyper`
        or a subclass), or ``None`` to build them from ``**hyper``.
    optimizer
        See :class:`~bayesmeta.learners.MetaLearner`.
    **hyper
        The fields of :attr:`Hyper`: ``feature_dims``, the dimensions of one
        input point (1 for vectors, 3 for images ``[C, H, W]``; read from
        ``encoder.feature_dims`` when omitted, 1 if the encoder has no such
        attribute), ``outer_lr`` and ``max_grad_norm`` (see
        :class:`~bayesmeta.learners.MetaLearner`), and a subclass's own.

    """

    target_kind = "classification"
    net_gives_scores = False
    hparams: MetricHyper
    Hyper: ClassVar[type[LearnerHyper]] = MetricHyper

    def __init__(
        self,
        encoder: nn.Module | Sequence[int],
        hparams: MetricHyper | None = None,
        *,
        optimizer: OptimizerFactory | None = None,
        **hyper: Any,
    ) -> None:
        super().__init__(encoder, hparams, optimizer=optimizer, **hyper)
        feature_dims = self.hparams.feature_dims
        if feature_dims is not None:
            self.fnet = FunctionalNet(self.net, feature_dims=feature_dims)

    @property
    def encoder(self) -> nn.Module:
        """The embedding network ``f`` (the same module as ``self.net``)."""
        return self.net

    # -- pieces the subclasses define ---------------------------------------------

    def _context(self, episode: Episode) -> C:
        """Summarise the embedded support sets (prototypes, posterior, memory)."""
        raise NotImplementedError

    def _log_probs(self, context: C, zq: Tensor) -> Tensor:
        """Log class probabilities ``[T, Q, N]`` of query embeddings ``[T, Q, E]``."""
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------

    #: Most input points per encoder call on the CPU, in whole tasks (at least one task per
    #: call); ``None``: every task in one call. On a 2-core CPU, Conv4 on 28x28 images ran
    #: 2.4x faster in calls of 80-320 images than in one call of 2,560 (the activations of
    #: a large call do not stay in cache). On CUDA all tasks go in one call. With batch
    #: norm that uses batch statistics, the statistics are those of each call's tasks.
    cpu_points_per_call: int | None = 128

    def embed(self, *xs: Tensor) -> list[Tensor]:
        """Embed several input sets ``[T, N_i, *features]``, a few whole tasks per encoder call.

        Returns
        -------
        list of Tensor
            The embeddings ``[T, N_i, E]``, one per input set.

        Raises
        ------
        ShapeError
            If the encoder does not return one ``[N, E]`` row per input point.

        """
        fd = self.fnet.feature_dims
        t = xs[0].shape[0]
        sizes = [int(x.shape[1]) for x in xs]
        limit = self.cpu_points_per_call if xs[0].device.type == "cpu" else None
        step = t if limit is None else max(1, limit // max(sum(sizes), 1))
        if step >= t:  # one encoder call (the usual case): no slicing, no re-assembly
            return self._embed_call(xs, sizes, fd)
        chunks = [
            self._embed_call([x[start : start + step] for x in xs], sizes, fd)
            for start in range(0, t, step)
        ]
        return [torch.cat([c[i] for c in chunks]) for i in range(len(xs))]

    def _embed_call(self, xs: Sequence[Tensor], sizes: list[int], fd: int) -> list[Tensor]:
        """Embed input sets ``[n, N_i, *features]`` in one encoder call; ``[n, N_i, E]`` each."""
        features = xs[0].shape[-fd:]
        parts = [x.reshape(-1, *features) for x in xs]
        flat = parts[0] if len(parts) == 1 else torch.cat(parts)
        z = self.net(flat)
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[0] != flat.shape[0]:
            got = fmt_shape(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ShapeError(
                f"the encoder must map inputs [N, *features] = {fmt_shape(flat.shape)} to "
                f"embeddings [N, E] = [{flat.shape[0]}, E], got {got}; flatten its output "
                "(e.g. end it with nn.Flatten())"
            )
        n = xs[0].shape[0]
        if len(xs) == 1:
            return [z.reshape(n, sizes[0], -1)]
        pieces = torch.split(z, [n * k for k in sizes])
        return [p.reshape(n, k, -1) for p, k in zip(pieces, sizes, strict=True)]

    def _episode(self, zs: Tensor, ys: Tensor, n_way: int) -> Episode:
        onehot, counts = class_indicators(ys, n_way, zs.dtype)
        return Episode(zs, onehot, counts)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode and ``torch.no_grad()`` inside; every module's mode restored after."""
        # Only the modules in training mode change, each by a plain attribute write (what
        # nn.Module.train does for a module without children): switching the six modules
        # of an MLP learner through self.eval() and back took 35 us, a third of the time of
        # a 5-way episode's prediction. A module that defines its own train() gets it called.
        changed = [m for m in self.modules() if m.training]
        if any(type(m).train is not nn.Module.train for m in changed):
            self.eval()
        for m in changed:
            object.__setattr__(m, "training", False)
        try:
            with torch.no_grad():
                yield
        finally:
            for m in changed:
                object.__setattr__(m, "training", True)

    def _check_features(self, name: str, x: Tensor) -> None:
        fd = self.fnet.feature_dims
        if x.dim() != fd + 2:
            raise ShapeError(
                f"{name} must have shape [T, N, *features] with {fd} feature dimension(s), "
                f"got {fmt_shape(x.shape)}; pass feature_dims= for image encoders"
            )

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        """Mean query cross-entropy of the episodes in ``batch``.

        Every support and query input of the ``T`` tasks goes through the
        encoder in one call; each task's support set is summarised and its
        query points are scored against it.

        Parameters
        ----------
        batch
            ``T`` classification tasks: support ``[T, K, *features]`` with
            labels ``[T, K]``, query ``[T, Q, *features]`` with labels ``[T, Q]``.

        Returns
        -------
        Tensor
            Scalar ``-(1/(T Q)) sum_t sum_j log p(y_tj | x_tj, support_t)``.

        Raises
        ------
        ValueError
            If a support set lacks a class, the labels are not integers, or
            the encoder's output is not ``[N, E]``.

        """
        batch = self._check_batch(batch, need_query=True)
        self._check_features("support_x", batch.support_x)
        n_way = batch.n_way if batch.n_way is not None else 0
        ys, yq = batch.support_y.long(), batch.query_y.long()
        zs, zq = self.embed(batch.support_x, batch.query_x)
        log_p = self._log_probs(self._context(self._episode(zs, ys, n_way)), zq)
        return nll_loss(log_p.reshape(-1, log_p.shape[-1]), yq.reshape(-1))

    def _adapt_parts(
        self, support_x: Tensor, support_y: Tensor, n_way: int | None
    ) -> tuple[Tensor, Tensor, int, bool, C | None]:
        if isinstance(support_y, Tensor) and (
            support_y.is_floating_point() or support_y.is_complex()
        ):
            raise ShapeError(
                f"{type(self).__name__} needs integer class labels support_y [K] or [T, K] in "
                f"0..n_way-1, got {support_y.dtype}; convert them with .long()"
            )
        x, y, batched = self._support(support_x, support_y)
        y = y.long()
        n_way = resolve_n_way(y, n_way)
        if uses_batch_statistics(self.net):
            class_indicators(y, n_way)  # the support is embedded at predict time; check it now
            return x, y, n_way, batched, None
        with self.evaluating():
            (zs,) = self.embed(x)
            context = self._context(self._episode(zs, y, n_way))
        return x, y, n_way, batched, context

    def _model_parts(self) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} has no probabilistic model: it classifies by attention over "
            "the embedded support set, which is not a likelihood of anything (learner.model "
            "exists for the weight-space learners and for ProtoNet and BayesianProtoNet)"
        )

    def _guide(self, context: C, batched: bool) -> TaskGuide:
        """The guide for :attr:`model`'s ``"theta"`` given an adapted ``context``."""
        raise NotImplementedError(
            f"{type(self).__name__} has no probabilistic model, so its predictor has no guide"
        )

    def _embed_for_model(self, learn: bool) -> Callable[[Tensor], Tensor]:
        """The encoder as the model reads it: ``[T, N, *features] -> [T, N, E]``.

        Raises
        ------
        NotImplementedError
            For an encoder whose batch norm uses batch statistics: its embedding
            of a point depends on the other points of the call, so it defines no
            model of one point.

        """
        if uses_batch_statistics(self.net):
            raise NotImplementedError(
                f"{type(self).__name__}'s encoder normalises with batch statistics, so the "
                "embedding of a point depends on the other points of its batch and there is no "
                "model of one point; build the encoder with running statistics (e.g. "
                "nn.BatchNorm2d(c, track_running_stats=True)) or without batch norm"
            )

        def embed(x: Tensor) -> Tensor:
            self._check_features("x", x)
            if learn:
                return self.embed(x)[0]
            with self.evaluating():
                return self.embed(x)[0]

        return embed

    def adapt(
        self, support_x: Tensor, support_y: Tensor, n_way: int | None = None
    ) -> MetricPredictor[C]:
        """Summarise one task's support set (or ``T`` tasks'), ready to predict.

        Parameters
        ----------
        support_x
            Support inputs ``[K, *features]`` (one task) or ``[T, K, *features]``.
        support_y
            Integer labels ``[K]`` or ``[T, K]`` in ``0 .. n_way - 1``.
        n_way
            Number of classes; the largest label plus one when omitted.

        Returns
        -------
        MetricPredictor
            ``predict(query_x)`` gives a :class:`~bayesmeta.ClassPrediction`.

        Raises
        ------
        ValueError
            If a class in ``0 .. n_way - 1`` has no support example, a label is
            out of range, the labels are not integers or the inputs hold NaN.

        """
        x, y, n_way, batched, context = self._adapt_parts(support_x, support_y, n_way)
        return MetricPredictor(self, x, y, n_way, batched, context)


@dataclass(frozen=True, eq=False)
class MetricPredictor(Generic[C]):
    """A metric learner adapted to one task or a batch of tasks.

    Attributes
    ----------
    learner : MetricLearner
        The learner whose encoder embeds the query points. The predictor
        holds a reference, not a copy.
    support_x : Tensor
        Support inputs ``[T, K, *features]`` (``T = 1`` for one task).
    support_y : Tensor
        Support labels ``[T, K]`` (long).
    n_way : int
        Number of classes ``N``.
    batched : bool
        Whether ``adapt`` was given a batch of tasks (predictions then keep
        the task dimension).
    context : object or None
        The summary of the support sets (prototypes, posterior, memory),
        computed in ``adapt``; ``None`` for encoders whose batch norm uses
        batch statistics, which embed the support set with the query points
        at every ``predict`` (see :mod:`bayesmeta.learners.metric`).

    """

    learner: MetricLearner[C]
    support_x: Tensor
    support_y: Tensor
    n_way: int
    batched: bool
    context: C | None

    @property
    def batch_shape(self) -> torch.Size:
        """``()`` for a single task or ``(T,)`` for a batch."""
        return self.support_x.shape[:1] if self.batched else torch.Size()

    def _query(self, query_x: Tensor) -> tuple[C, Tensor]:
        """Check ``query_x``; return the context and query embeddings ``[T, Q, E]``."""
        learner = self.learner
        like = learner.fnet.params()[0]
        x = learner.fnet.check_inputs(
            "query_x", query_x, self.batch_shape, like=like, owner="the learner's parameters"
        )
        x = x.to(like.device)
        if not self.batched:
            x = x.unsqueeze(0)
        with learner.evaluating():
            if self.context is not None:
                (zq,) = learner.embed(x)
                return self.context, zq
            zs, zq = learner.embed(self.support_x, x)
            return learner._context(learner._episode(zs, self.support_y, self.n_way)), zq

    @property
    def guide(self) -> TaskGuide:
        """A Pyro guide for the ``"theta"`` site (the class means) of ``learner.model``.

        ``Predictive(learner.model, guide=predictor.guide, num_samples=S)(query_x, n_way=N)``
        draws query labels under the adapted class means: ProtoNet's point mass at
        the prototypes, BayesianProtoNet's Normal posterior (the draws of
        ``predict(query_x, num_samples=S)``). ``query_x`` is ``[T, Q, *features]``.

        Raises
        ------
        NotImplementedError
            For Matching Networks (no model), and for encoders with batch
            statistics (see :attr:`MetricLearner.model`).

        """
        if self.context is None:
            self.learner._embed_for_model(learn=False)  # raises: batch statistics
            raise AssertionError("unreachable")
        return self.learner._guide(self.context, self.batched)

    def _wrap(self, sample_log_probs: Tensor) -> ClassPrediction:
        """From ``[S, T, Q, N]`` to a prediction ``[S, *B, Q, N]``."""
        lp = sample_log_probs if self.batched else sample_log_probs.squeeze(1)
        return ClassPrediction(lp.detach())

    def predict(self, query_x: Tensor) -> ClassPrediction:
        """Class probabilities at ``query_x`` ``[*B, Q, *features]``.

        Returns
        -------
        ClassPrediction
            One sample (``S = 1``): the learner's closed-form predictive
            ``[1, *B, Q, N]``.

        """
        context, zq = self._query(query_x)
        with torch.no_grad():
            log_p = self.learner._log_probs(context, zq)
        return self._wrap(log_p.unsqueeze(0))
