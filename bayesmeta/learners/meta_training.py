"""Meta-training, what every learner shares: the outer step and the one fit loop.

:class:`MetaTraining` is the half of :class:`~bayesmeta.learners.MetaLearner` that
trains: :meth:`~MetaTraining.meta_step` (backpropagate, clip, apply) and
:meth:`~MetaTraining.meta_fit`, the loop of :mod:`bayesmeta.training` with checkpoints,
resume and data-parallel steps. A learner that trains differently (a fixed set of
tasks, a subsampled step) overrides the fit's hooks, not the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from bayesmeta.learners.hyper import LearnerHyper
from bayesmeta.learners.task_chunks import chunked_task_backward, weighted_backward
from bayesmeta.tasks.source import TaskSource
from bayesmeta.tasks.task import TaskBatch
from bayesmeta.training.distributed import data_parallel_step, is_distributed, sync_parameters
from bayesmeta.training.loop import History, check_finite, run_meta_fit
from bayesmeta.training.state import resume

__all__ = ["MetaTraining"]


class MetaTraining(nn.Module):
    """The meta-training half of :class:`~bayesmeta.learners.MetaLearner` (not a learner).

    The learner provides :attr:`hparams`, :attr:`optimizer`, :meth:`optimizers`,
    :meth:`config`, :meth:`meta_loss` and ``_check_batch``.
    """

    hparams: LearnerHyper

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The outer optimiser (the learner's)."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers of meta-training by name (the learner's)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The learner's config (see :meth:`~bayesmeta.learners.MetaLearner.config`)."""
        raise NotImplementedError

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        """The differentiable meta-training objective on ``batch`` (a scalar)."""
        raise NotImplementedError

    def _check_batch(self, batch: TaskBatch, *, need_query: bool) -> TaskBatch:
        """The batch checked and on the learner's device (the learner's)."""
        raise NotImplementedError

    def meta_step(self, batch: TaskBatch) -> float:
        """One outer update: backpropagate :meth:`meta_loss` and step the optimiser.

        Returns
        -------
        float
            The meta-loss before the update.

        Raises
        ------
        NonFiniteLossError
            If the loss or the clipped gradient norm is not finite (nothing is
            updated).

        """
        return self._apply_gradients(self.meta_gradients(batch))

    def meta_gradients(self, batch: TaskBatch) -> float:
        """Put the meta-update's direction in the parameters' ``.grad``; return the loss.

        The direction is the gradient of :meth:`meta_loss` (a mean over the
        batch's tasks) unless a learner defines its update otherwise (Reptile).
        Nothing is applied: :meth:`meta_step` clips and applies it, and
        distributed meta-training first sums it over the ranks' shards of the
        batch. A non-finite loss leaves ``.grad`` empty. A learner whose
        hyper-parameters have ``task_chunk`` set backpropagates the tasks that
        many at a time (:mod:`bayesmeta.learners.task_chunks`): the same
        gradient, in less memory.
        """
        chunk = getattr(self.hparams, "task_chunk", None)
        if chunk is None:
            return self._backward(self.meta_loss(batch))
        self.optimizer.zero_grad(set_to_none=True)
        # checked (and the units fitted) on the whole batch, not on its first chunk
        batch = self._check_batch(batch, need_query=True)
        value = chunked_task_backward(batch, chunk, self._weighted_backward)
        if not math.isfinite(value):
            self.optimizer.zero_grad(set_to_none=True)
        return value

    def _weighted_backward(self, batch: TaskBatch, weight: float) -> float:
        """Add ``weight`` times :meth:`meta_loss`'s gradient to ``.grad``; return the loss."""
        return weighted_backward(self.meta_loss(batch), weight)

    def _backward(self, loss: Tensor) -> float:
        """Backpropagate ``loss`` into fresh ``.grad``, unless it is not finite."""
        self.optimizer.zero_grad(set_to_none=True)
        return weighted_backward(loss)

    def _apply_gradients(self, loss_value: float) -> float:
        """Clip, check and apply the gradients held in ``.grad``; zero them after."""
        check_finite(loss_value, "the meta-training loss")
        if self.hparams.max_grad_norm is not None:
            params = [p for p in self.parameters() if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(params, self.hparams.max_grad_norm)
            check_finite(float(norm), "the meta-gradient norm")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_value

    def meta_fit(
        self,
        source: TaskSource,
        iterations: int,
        meta_batch_size: int = 25,
        *,
        progress: bool | None = None,
        callback: Callable[[int, float], dict[str, float] | None] | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 100,
        **options: Any,
    ) -> History:
        """Meta-train on tasks drawn from ``source``.

        Parameters
        ----------
        source
            A task source (``source.sample(T)`` returns a :class:`TaskBatch`).
        iterations
            Number of meta-iterations (outer updates).
        meta_batch_size
            Tasks per meta-iteration ``T``.
        progress
            Progress bar; ``None`` shows one only on a terminal.
        callback
            ``callback(iteration, loss)`` after each step; a returned dict of
            floats is recorded in ``History.extra``.
        checkpoint
            A training-checkpoint file (see :mod:`bayesmeta.training.state`),
            written every ``checkpoint_every`` iterations and at the end. If it
            exists when ``meta_fit`` starts, training resumes from it (learner,
            optimiser, torch's and the source's random states, history) and
            ends as an uninterrupted run with the same seed would;
            ``iterations`` then counts the iterations done before too.
        checkpoint_every
            Iterations between checkpoints.
        **options
            Learner-specific options of the fit (VariationalMetaLearner's
            ``num_tasks``); none for most learners.

        Returns
        -------
        History
            Per-iteration losses and wall time (of all runs, when resumed).

        Raises
        ------
        NonFiniteLossError
            If the loss turns NaN or infinite; the learner keeps the last
            finite parameters and ``err.history`` holds the losses so far.
        CheckpointError
            If ``checkpoint`` exists but is corrupted or was written by a
            different learner or architecture.

        Notes
        -----
        When a ``torch.distributed`` process group of more than one rank is
        initialised (e.g. under ``torchrun``), training is data-parallel: rank
        0's parameters are broadcast, each rank computes the meta-gradient of
        its share of every meta-batch, and the ranks sum them before the same
        update (see :mod:`bayesmeta.training.distributed`). The source must be
        seeded alike on every rank; the first meta-batch is checked. Only rank
        0 writes checkpoints.

        """
        self.train()
        fit_source = self._fit_source(source, meta_batch_size, **options)
        history, after_step = None, None
        if checkpoint is not None:
            history, after_step = resume(checkpoint, self, fit_source, iterations, checkpoint_every)
        step = self._fit_step(fit_source, meta_batch_size)
        if is_distributed() and dist.get_rank() != 0:
            progress = False
        result = run_meta_fit(
            step,
            fit_source,
            iterations,
            meta_batch_size,
            progress=progress,
            description=type(self).__name__,
            callback=callback,
            history=history,
            after_step=after_step,
        )
        self._fit_done(fit_source)
        return result

    # The hooks of meta_fit: every learner trains on the same loop (run_meta_fit, with
    # resume and data-parallel steps); a learner that trains otherwise overrides these.

    def _fit_source(self, source: Any, meta_batch_size: int, **options: Any) -> TaskSource:
        """The task source meta-training draws from (``source`` itself here).

        Raises
        ------
        TypeError
            If ``options`` holds a keyword this learner's ``meta_fit`` does not take.

        """
        if options:
            raise TypeError(
                f"{type(self).__name__}.meta_fit got unexpected keyword argument(s) "
                f"{', '.join(map(repr, options))}"
            )
        return source

    def _fit_step(self, source: TaskSource, meta_batch_size: int) -> Callable[[TaskBatch], float]:
        """One meta-training step on a batch: :meth:`meta_step`, data-parallel under a group."""
        if is_distributed():
            sync_parameters(self)
            return data_parallel_step(self, self._apply_gradients)
        return self.meta_step

    def _fit_done(self, source: TaskSource) -> None:
        """After meta-training (nothing here)."""
