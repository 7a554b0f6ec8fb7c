"""Matching networks (Vinyals et al. 2016): attention over the embedded support set."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.functional import normalize

from bayesmeta._checks import check_count, positive
from bayesmeta.learners.base import OptimizerFactory
from bayesmeta.learners.hyper import LearnerHyper, MetricHyper, pick_hyper
from bayesmeta.learners.metric import Episode, MetricLearner

__all__ = ["MatchingHyper", "MatchingMemory", "MatchingNet"]


@dataclass(frozen=True)
class MatchingHyper(MetricHyper):
    """:class:`MatchingNet`'s hyper-parameters (see its parameters).

    ``scale`` is the initial inverse temperature (the learned one is the
    learner's ``scale``); ``embedding_dim`` is as given (``None``: read from
    the encoder, see the learner's ``embedding_dim``).
    """

    full_context: bool = False
    processing_steps: int = 5
    scale: float = 10.0
    learn_scale: bool = True
    embedding_dim: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("full_context", bool(self.full_context))
        check_count("processing_steps", self.processing_steps, minimum=1)
        self._set("scale", positive("scale", self.scale))
        self._set("learn_scale", bool(self.learn_scale))
        if self.embedding_dim is not None:
            check_count("embedding_dim", self.embedding_dim, minimum=1)


class MatchingMemory(NamedTuple):
    """The embedded support sets a query point attends over.

    Attributes
    ----------
    g : Tensor
        Support embeddings ``g(x_i)`` ``[T, K, E]`` (with full context
        embeddings, after the bidirectional LSTM).
    onehot : Tensor
        Support labels as indicators ``[T, K, N]``.

    """

    g: Tensor
    onehot: Tensor


def _embedding_dim(encoder: nn.Module) -> int | None:
    """The encoder's output size from its attributes (or its last sized layer), if any."""
    for name in ("embedding_dim", "out_features"):
        value = getattr(encoder, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    if isinstance(encoder, nn.Sequential):
        for layer in reversed(encoder):
            found = _embedding_dim(layer)
            if found is not None:
                return found
    return None


class MatchingNet(MetricLearner[MatchingMemory]):
    """Matching networks: a query's label distribution is attention over the support labels.

    With support embeddings ``g(x_i)`` and a query embedding ``f(x)``::

        a(x, x_i) = softmax_i(s * cos(f(x), g(x_i)))
        p(y = c | x) = sum_i a(x, x_i) 1[y_i = c]

    with ``s`` an inverse temperature (``scale``). The log-probabilities are
    computed in log space (a log-sum-exp over each class's attention
    weights), so they are exact and never ``log 0``. Without full context
    embeddings ``f = g`` is the encoder. In bayesmeta's terms the task
    posterior is the support set itself (a memory) and the prediction is a
    kernel-weighted vote over it; there is no prior. Matching networks have
    no probabilistic model: ``learner.model`` raises ``NotImplementedError``,
    and their class probabilities carry no epistemic part.

    Parameters
    ----------
    encoder
        Any ``nn.Module`` mapping ``[N, *features]`` to ``[N, E]``, or MLP
        layer widths.
    full_context
        Full context embeddings: ``g`` is a bidirectional LSTM over the
        support embeddings with a skip connection,
        ``g(x_i) = f'(x_i) + h_fwd_i + h_bwd_i``; ``f`` is the attention LSTM
        that reads the support set ``processing_steps`` times:
        ``h^_k, c_k = LSTM(f'(x), [h_{k-1}, r_{k-1}], c_{k-1})``,
        ``h_k = h^_k + f'(x)``,
        ``r_k = sum_i softmax_i(h_k . g(x_i)) g(x_i)``, ``f(x) = h_K``
        (``h_0 = f'(x)``). The support order matters to the LSTM.
    processing_steps
        ``K`` above (full context only).
    scale
        Initial inverse temperature ``s`` of the cosine attention.
    learn_scale
        Meta-learn ``s`` (log-parameterised) with the encoder.
    embedding_dim
        Size ``E`` of the encoder's output, needed for full context. Read
        from ``encoder.embedding_dim`` or ``encoder.out_features`` (for an
        ``nn.Sequential``, of its last layer that has one) when omitted.
    feature_dims, outer_lr, optimizer, max_grad_norm
        See :class:`~bayesmeta.learners.metric.MetricLearner`.

    """

    def _model_parts(self) -> Any:
        raise NotImplementedError(
            "MatchingNet has no probabilistic model: its prediction is attention over the "
            "support set (a memory), with no prior over weights or class means"
        )

    hparams: MatchingHyper
    Hyper: ClassVar[type[LearnerHyper]] = MatchingHyper
    hyper_not_attributes: ClassVar[frozenset[str]] = frozenset({"embedding_dim"})

    def __init__(
        self,
        encoder: nn.Module | Sequence[int],
        *,
        full_context: bool = False,
        processing_steps: int = 5,
        scale: float = 10.0,
        learn_scale: bool = True,
        embedding_dim: int | None = None,
        feature_dims: int | None = None,
        outer_lr: float = 1e-3,
        optimizer: OptimizerFactory | None = None,
        max_grad_norm: float | None = None,
    ) -> None:
        hp = pick_hyper(MatchingHyper, locals())
        super().__init__(encoder, hp, optimizer=optimizer)
        self.log_scale = nn.Parameter(
            torch.tensor(math.log(hp.scale), dtype=torch.get_default_dtype()),
            requires_grad=hp.learn_scale,
        )
        dim = embedding_dim if embedding_dim is not None else _embedding_dim(self.net)
        #: The encoder's output size ``E`` (given, or read from the encoder; ``None``: unknown).
        self.embedding_dim = None if dim is None else check_count("embedding_dim", dim, minimum=1)
        self.support_lstm: nn.LSTM | None = None
        self.query_cell: nn.LSTMCell | None = None
        if self.hparams.full_context:
            if self.embedding_dim is None:
                raise ValueError(
                    "full_context needs the encoder's output size: pass embedding_dim= "
                    "(the encoder has no embedding_dim or out_features attribute)"
                )
            e = self.embedding_dim
            self.support_lstm = nn.LSTM(e, e, batch_first=True, bidirectional=True)
            self.query_cell = nn.LSTMCell(e, 2 * e)

    @property
    def scale(self) -> Tensor:
        """The inverse temperature ``s`` of the attention (a scalar)."""
        return self.log_scale.exp()

    def _check_dim(self, z: Tensor) -> None:
        if self.embedding_dim is not None and z.shape[-1] != self.embedding_dim:
            raise ValueError(
                f"the encoder's embeddings have {z.shape[-1]} features but "
                f"embedding_dim = {self.embedding_dim}"
            )

    def _context(self, episode: Episode) -> MatchingMemory:
        g = episode.z
        self._check_dim(g)
        if self.support_lstm is not None:
            out, _ = self.support_lstm(g)
            e = g.shape[-1]
            g = g + out[..., :e] + out[..., e:]
        return MatchingMemory(g, episode.onehot)

    def _query_embedding(self, g: Tensor, zq: Tensor) -> Tensor:
        """Full context query embeddings ``[T, Q, E]`` (the attention LSTM)."""
        if self.query_cell is None:
            return zq
        t, q, e = zq.shape
        x = zq.reshape(t * q, e)
        h = x
        c = x.new_zeros(t * q, 2 * e)
        for _ in range(self.hparams.processing_steps):
            attn = torch.softmax(h.reshape(t, q, e) @ g.transpose(-1, -2), dim=-1)  # [T, Q, K]
            r = (attn @ g).reshape(t * q, e)
            hidden, c = self.query_cell(x, (torch.cat([h, r], dim=-1), c))
            h = hidden[:, :e] + x
        return h.reshape(t, q, e)

    def attention(self, memory: MatchingMemory, zq: Tensor) -> Tensor:
        """Log attention weights ``[T, Q, K]`` of query embeddings ``[T, Q, E]`` on the support."""
        self._check_dim(zq)
        f = normalize(self._query_embedding(memory.g, zq), dim=-1)
        g = normalize(memory.g, dim=-1)
        return torch.log_softmax(self.scale * (f @ g.transpose(-1, -2)), dim=-1)

    def _log_probs(self, context: MatchingMemory, zq: Tensor) -> Tensor:
        log_a = self.attention(context, zq).unsqueeze(-1)  # [T, Q, K, 1]
        mask = context.onehot.unsqueeze(1) > 0  # [T, 1, K, N]
        terms = torch.where(mask, log_a, torch.full_like(log_a, -math.inf))
        return torch.logsumexp(terms, dim=-2)
