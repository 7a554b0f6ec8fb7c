"""Bayesian MAML's outer objective and its meta-gradient, in chunks of tasks and particles.

:class:`BayesianOuter` is the half of :class:`~bayesmeta.BayesianMAML` that meta-trains:
:meth:`~BayesianOuter.meta_loss` (the query term after the inner loop plus the weighted
KL, a mean over tasks) and :meth:`~BayesianOuter.meta_gradients`, which backpropagates
it ``task_chunk`` tasks at a time (:mod:`bayesmeta.learners.task_chunks`) and, within
each, ``particle_chunk`` outer draws at a time
(:mod:`bayesmeta.learners.particle_chunks`): the same meta-gradient in less memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from bayesmeta.learners.bayesian_maml_hyper import BayesianMAMLHyper
from bayesmeta.learners.noise_calibration import CalibratedNoise
from bayesmeta.learners.particle_chunks import chunked_particle_backward, outer_nll
from bayesmeta.learners.task_chunks import chunked_task_backward, weighted_backward
from bayesmeta.posteriors.gaussian import standard_normal
from bayesmeta.tasks.task import TaskBatch

__all__ = ["BayesianOuter"]


class BayesianOuter:
    """The meta-training objective of :class:`~bayesmeta.BayesianMAML` (a mixin, not a learner).

    The learner provides ``hparams``, ``fnet``, ``likelihood``, ``prior``,
    ``calibration``, ``optimizer``, ``training``, ``calibrates_noise``,
    ``_check_batch``, ``_inner_posterior`` and ``_delta_steps``.
    """

    hparams: BayesianMAMLHyper
    fnet: Any
    likelihood: Any
    prior: Any
    calibration: CalibratedNoise
    optimizer: torch.optim.Optimizer
    training: bool

    calibrates_noise: Callable[[], bool]
    _check_batch: Callable[..., TaskBatch]
    _inner_posterior: Callable[..., tuple[Tensor, Tensor]]
    _delta_steps: Callable[..., tuple[Tensor, ...]]

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        """Query negative log-likelihood plus weighted KL, after inner adaptation.

        Parameters
        ----------
        batch
            ``T`` tasks with non-empty query sets.

        Returns
        -------
        Tensor
            Scalar: the mean over tasks of the query term (see ``objective``)
            plus ``kl_weight * KL(q_t || p) / Q`` (for ``posterior="delta"``:
            the query loss at the adapted weights).

        """
        batch = self._check_batch(batch, need_query=True)
        loss, out = self._outer(batch)
        self._calibrate(out, batch.query_y)
        return loss

    def meta_gradients(self, batch: TaskBatch) -> float:
        """Put the meta-gradient in ``.grad``; return the meta-loss.

        With ``task_chunk``, the tasks are backpropagated that many at a time, and with
        ``particle_chunk`` the outer draws of each chunk of tasks that many at a time:
        the same loss and gradient as :meth:`meta_loss`'s backward pass (up to the
        random draws, made per chunk of tasks). A non-finite loss leaves ``.grad`` empty.
        """
        self.optimizer.zero_grad(set_to_none=True)
        batch = self._check_batch(batch, need_query=True)
        outs: list[Tensor] = []

        def backward(sub: TaskBatch, weight: float) -> float:
            value, out = self._backward_tasks(sub, weight)
            outs.append(out)
            return value

        value = chunked_task_backward(batch, self.hparams.task_chunk, backward)
        if not math.isfinite(value):
            self.optimizer.zero_grad(set_to_none=True)
            return value
        self._calibrate(torch.cat(outs, 1), batch.query_y)
        return value

    def _outer(self, batch: TaskBatch) -> tuple[Tensor, Tensor]:
        """The differentiable meta-loss and the query outputs ``[S, T, Q, O]`` it scores."""
        hp = self.hparams
        if hp.posterior == "delta":
            adapted = self._delta_steps(
                batch.support_x, batch.support_y, steps=hp.inner_steps, differentiable=True
            )
            point = self.fnet(adapted, batch.query_x)
            return self.likelihood(point, batch.query_y).mean(), point.unsqueeze(0)
        theta, kl_term = self._draws(batch)
        out = self.fnet(theta, batch.query_x)
        nll = outer_nll(self.likelihood, out, batch.query_y, hp.objective)
        return (nll + kl_term).mean(), out

    def _draws(self, batch: TaskBatch) -> tuple[Tensor, Tensor]:
        """Outer draws ``[S, T, P]`` from the adapted posteriors, and the weighted KL ``[T]``.

        The KL term is ``kl_weight * KL(q_t || p) / Q`` per task (per query point).
        """
        hp = self.hparams
        loc, log_scale = self._inner_posterior(
            batch.support_x, batch.support_y, steps=hp.inner_steps
        )
        eps = standard_normal((hp.num_particles, *loc.shape), loc)
        kl_term = hp.kl_weight * self.prior.kl_from(loc, log_scale) / batch.query_x.shape[1]
        return loc + log_scale.exp() * eps, kl_term

    def _backward_tasks(self, batch: TaskBatch, weight: float) -> tuple[float, Tensor]:
        """Add ``weight`` times the meta-gradient on ``batch`` to ``.grad``; loss and outputs."""
        hp = self.hparams
        chunk, s = hp.particle_chunk, hp.num_particles
        if chunk is None or chunk >= s or hp.posterior == "delta":
            loss, out = self._outer(batch)
            return weighted_backward(loss, weight), out.detach()
        theta, kl_term = self._draws(batch)
        out, value = chunked_particle_backward(
            self.fnet,
            self.likelihood,
            theta,
            batch.query_x,
            batch.query_y,
            kl_term,
            chunk=chunk,
            objective=hp.objective,
            weight=weight,
        )
        return value, out

    def _calibrate(self, out: Tensor, y: Tensor) -> None:
        """Fold a meta-training batch's query outputs into the noise calibration."""
        if self.training and self.calibrates_noise():
            self.calibration.update(out, y)
