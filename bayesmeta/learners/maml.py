"""MAML and first-order MAML (Finn et al. 2017), vectorised over tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from bayesmeta.learners.gradient import GradientMetaLearner, OptimizerFactory
from bayesmeta.learners.hyper import GradientHyper, LearnerHyper, pick_hyper
from bayesmeta.learners.task_chunks import check_task_chunk
from bayesmeta.nets.losses import LossName, TaskLoss
from bayesmeta.tasks.task import TaskBatch

__all__ = ["MAML", "MAMLHyper"]


@dataclass(frozen=True)
class MAMLHyper(GradientHyper):
    """:class:`MAML`'s hyper-parameters (see its parameters).

    Attributes
    ----------
    first_order : bool
        Drop the second-order terms (FOMAML).
    learn_inner_lr : bool
        Meta-learn one inner step size per weight (Meta-SGD).
    task_chunk : int or None
        Backpropagate the meta-batch's tasks this many at a time (``None``: all).

    """

    first_order: bool = False
    learn_inner_lr: bool = False
    task_chunk: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_task_chunk(self.task_chunk)


class MAML(GradientMetaLearner):
    """Model-agnostic meta-learning: learn weights that adapt in a few steps.

    Each meta-iteration takes ``inner_steps`` gradient steps of size
    ``inner_lr`` on every task's support loss, starting from the shared
    weights, and updates those weights to lower the query loss after
    adaptation. All tasks of the meta-batch are adapted together in one
    batched computation. In bayesmeta's terms, MAML is the hierarchical model
    with a point-mass task posterior and no prior term.

    Parameters
    ----------
    net
        An ``nn.Module`` or MLP layer widths such as ``(1, 40, 40, 1)``.
    inner_lr, inner_steps, adapt_steps, learn_inner_lr
        See :class:`~bayesmeta.learners.GradientMetaLearner` (``adapt_steps`` was
        ``eval_inner_steps``, still accepted with a warning for one release).
    loss, outer_lr, optimizer, max_grad_norm, inner_grad_clip
        See :class:`~bayesmeta.learners.GradientMetaLearner`.
    first_order
        Drop the second-order terms (FOMAML): the meta-gradient is the query
        gradient at the adapted weights.
    task_chunk
        Backpropagate the meta-batch's tasks this many at a time (``None``: all
        at once; see :mod:`bayesmeta.learners.task_chunks`): the same
        meta-gradient, with one chunk's inner-loop graph in memory at a time.
    **deprecated
        ``eval_inner_steps``, the old name of ``adapt_steps`` (warns; goes in
        the next release).

    Notes
    -----
    The hyper-parameters are in :attr:`hparams` (see :mod:`bayesmeta.learners.hyper`).

    Examples
    --------
    >>> from bayesmeta.tasks import Sinusoid
    >>> learner = MAML((1, 40, 40, 1), inner_lr=0.01, inner_steps=5)
    >>> history = learner.meta_fit(Sinusoid(5, 10, seed=0), iterations=3, progress=False)
    >>> task = Sinusoid(5, 10, seed=1).sample(1)[0]
    >>> learner.adapt(task.support_x, task.support_y).predict(task.query_x).mean.shape
    torch.Size([10, 1])

    """

    hparams: MAMLHyper
    Hyper: ClassVar[type[LearnerHyper]] = MAMLHyper

    def __init__(
        self,
        net: nn.Module | Sequence[int],
        *,
        inner_lr: float = 0.01,
        inner_steps: int = 5,
        first_order: bool = False,
        adapt_steps: int | None = None,
        learn_inner_lr: bool = False,
        loss: LossName | TaskLoss = "mse",
        outer_lr: float = 1e-3,
        optimizer: OptimizerFactory | None = None,
        max_grad_norm: float | None = None,
        inner_grad_clip: float | None = None,
        standardize: bool | Literal["auto"] = "auto",
        task_chunk: int | None = None,
        **deprecated: Any,
    ) -> None:
        args = locals()
        self._renamed(args, deprecated)
        super().__init__(net, pick_hyper(MAMLHyper, args), optimizer=optimizer)

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        """Mean query loss after ``inner_steps`` differentiable steps per task.

        Parameters
        ----------
        batch
            ``T`` tasks: support ``[T, K, *features]``, query ``[T, Q, *features]``.

        Returns
        -------
        Tensor
            Scalar ``(1/T) sum_t L_query_t(theta - inner_lr * grad ...)``,
            differentiable with respect to the meta-parameters (to second
            order unless ``first_order``).

        """
        batch = self._check_batch(batch, need_query=True)
        adapted = self._adapted(
            batch.support_x,
            batch.support_y,
            steps=self.hparams.inner_steps,
            first_order=self.hparams.first_order,
            differentiable=True,
        )
        return self.loss_fn(self.fnet(adapted, batch.query_x), batch.query_y).mean()
