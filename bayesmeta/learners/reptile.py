"""Reptile (Nichol et al. 2018), vectorised over tasks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from bayesmeta.learners.gradient import GradientMetaLearner, OptimizerFactory
from bayesmeta.learners.hyper import GradientHyper, LearnerHyper, check_choice, pick_hyper
from bayesmeta.nets.losses import LossName, TaskLoss
from bayesmeta.tasks.task import TaskBatch

__all__ = ["Reptile", "ReptileHyper"]


@dataclass(frozen=True)
class ReptileHyper(GradientHyper):
    """:class:`Reptile`'s hyper-parameters (see its parameters).

    Attributes
    ----------
    train_on : str
        ``"all"`` or ``"support"``: the data of the inner loop in meta-training.

    """

    train_on: Literal["support", "all"] = "all"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("train_on", self.train_on, ("support", "all"))


class Reptile(GradientMetaLearner):
    """Reptile: move the shared weights towards each task's adapted weights.

    Each meta-iteration adapts every task with ``inner_steps`` plain gradient
    steps (no graph through them), then hands the optimiser the pseudo-gradient
    ``theta - mean_t(phi_t)``; with SGD of learning rate ``outer_lr`` this is
    the update ``theta <- theta + outer_lr * (mean_t phi_t - theta)``.

    Parameters
    ----------
    net
        An ``nn.Module`` or MLP layer widths.
    train_on
        Data the inner loop uses during meta-training: ``"all"`` (the
        default: support and query together, all of a task's data, as in the
        paper) or ``"support"`` (only what test-time adaptation will see). On
        5-shot sinusoids, ``"all"`` reached a held-out MSE of 0.43 against 0.65
        for ``"support"`` (40,000 meta-iterations each).
    inner_lr, inner_steps, adapt_steps, loss
        See :class:`~bayesmeta.learners.GradientMetaLearner` (``adapt_steps`` was
        ``eval_inner_steps``, still accepted with a warning for one release). Reptile does not
        learn inner step sizes.
    outer_lr, optimizer, max_grad_norm, inner_grad_clip, standardize
        See :class:`~bayesmeta.learners.GradientMetaLearner`.
    **deprecated
        ``eval_inner_steps``, the old name of ``adapt_steps`` (warns; goes in
        the next release).

    Notes
    -----
    The hyper-parameters are in :attr:`hparams` (see :mod:`bayesmeta.learners.hyper`).

    """

    hparams: ReptileHyper
    Hyper: ClassVar[type[LearnerHyper]] = ReptileHyper

    def __init__(
        self,
        net: nn.Module | Sequence[int],
        *,
        inner_lr: float = 0.01,
        inner_steps: int = 5,
        adapt_steps: int | None = None,
        train_on: Literal["support", "all"] = "all",
        loss: LossName | TaskLoss = "mse",
        outer_lr: float = 1e-3,
        optimizer: OptimizerFactory | None = None,
        max_grad_norm: float | None = None,
        inner_grad_clip: float | None = None,
        standardize: bool | Literal["auto"] = "auto",
        **deprecated: Any,
    ) -> None:
        args = locals()
        self._renamed(args, deprecated)
        super().__init__(net, pick_hyper(ReptileHyper, args), optimizer=optimizer)

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        """Mean query loss after adapting on the support sets (first-order graph).

        Reptile's update does not use this gradient; the value is reported as
        the training loss and its gradient is first-order MAML's.
        """
        batch = self._check_batch(batch, need_query=True)
        adapted = self._adapted(
            batch.support_x,
            batch.support_y,
            steps=self.hparams.inner_steps,
            first_order=True,
            differentiable=True,
        )
        return self.loss_fn(self.fnet(adapted, batch.query_x), batch.query_y).mean()

    def meta_gradients(self, batch: TaskBatch) -> float:
        """Put the Reptile direction ``theta - mean_t phi_t`` in ``.grad``; return the loss.

        The loss is the mean query loss of the adapted weights (the mean
        training loss when the tasks have no query points).
        """
        batch = self._check_batch(batch, need_query=self.hparams.train_on == "all")
        if self.hparams.train_on == "all":
            x = torch.cat([batch.support_x, batch.query_x], dim=1)
            y = torch.cat([batch.support_y, batch.query_y], dim=1)
        else:
            x, y = batch.support_x, batch.support_y
        adapted = self._adapted(
            x, y, steps=self.hparams.inner_steps, first_order=True, differentiable=False
        )
        with torch.no_grad():
            if batch.query_x.shape[1] > 0:
                value = float(self.loss_fn(self.fnet(adapted, batch.query_x), batch.query_y).mean())
            else:
                value = float(self.loss_fn(self.fnet(adapted, x), y).mean())
        self.optimizer.zero_grad(set_to_none=True)
        if math.isfinite(value):
            for p, phi in zip(self.fnet.params(), adapted, strict=True):
                p.grad = p.detach() - phi.mean(0)
        return value
