"""What MAML, first-order MAML and Reptile share: a module, an inner loop, a fit loop.

A :class:`GradientMetaLearner` is a ``torch.nn.Module`` whose parameters are the
meta-parameters: the network's initial weights (``self.net``) and, with
``learn_inner_lr=True``, one inner step size per weight (Meta-SGD). So
``learner.parameters()``, ``state_dict()`` and ``load_state_dict()`` work as
for any module. Subclasses define :meth:`meta_step`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from bayesmeta.errors import ShapeError
from bayesmeta.inference.inner_loop import gradient_steps
from bayesmeta.learners.adapted import AdaptedPredictor
from bayesmeta.learners.training import History, check_finite, run_meta_fit
from bayesmeta.losses import LossName, TaskLoss, get_loss
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.nets.mlp import MLP
from bayesmeta.tasks._checks import check_pair, fmt_shape
from bayesmeta.tasks.source import TaskSource, check_count
from bayesmeta.tasks.task import TaskBatch

__all__ = ["GradientMetaLearner", "OptimizerFactory"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return float(value)


class GradientMetaLearner(nn.Module):
    """Base of the gradient-based meta-learners (see :class:`~bayesmeta.MAML`).

    Parameters
    ----------
    net
        The network: any ``nn.Module`` mapping ``[N, *features]`` to
        ``[N, O]``, or a tuple of layer widths for an :class:`~bayesmeta.nets.MLP`.
    inner_lr
        Inner-loop step size (the initial value when ``learn_inner_lr``).
    inner_steps
        Gradient steps on each task's support set during meta-training.
    eval_inner_steps
        Steps at test time (:meth:`adapt`); defaults to ``inner_steps``.
    learn_inner_lr
        Meta-learn one inner step size per weight (Meta-SGD, Li et al. 2017).
    loss
        ``"mse"`` (regression), ``"cross_entropy"`` (classification) or a
        per-task loss ``(pred [*B, N, O], y) -> [*B]``.
    outer_lr
        Learning rate of the default optimiser (Adam).
    optimizer
        Factory ``params -> torch.optim.Optimizer`` replacing the default.
    max_grad_norm
        Clip the meta-gradient to this norm (``None``: no clipping).
    inner_grad_clip
        Clip each task's inner-loop gradient to this norm (``None``: no
        clipping). A guard for long meta-training runs in which the learned
        initialisation drifts to where a few plain steps overshoot and
        diverge on some tasks (seen with first-order MAML on sinusoids).

    """

    def __init__(
        self,
        net: nn.Module | Sequence[int],
        *,
        inner_lr: float = 0.01,
        inner_steps: int = 5,
        eval_inner_steps: int | None = None,
        learn_inner_lr: bool = False,
        loss: LossName | TaskLoss = "mse",
        outer_lr: float = 1e-3,
        optimizer: OptimizerFactory | None = None,
        max_grad_norm: float | None = None,
        inner_grad_clip: float | None = None,
    ) -> None:
        super().__init__()
        self.net = net if isinstance(net, nn.Module) else MLP(tuple(net))
        self.fnet = FunctionalNet(self.net)
        self.inner_lr = _positive("inner_lr", inner_lr)
        self.inner_steps = check_count("inner_steps", inner_steps, minimum=0)
        self.eval_inner_steps = check_count(
            "eval_inner_steps",
            inner_steps if eval_inner_steps is None else eval_inner_steps,
            minimum=0,
        )
        self.outer_lr = _positive("outer_lr", outer_lr)
        self.max_grad_norm = (
            None if max_grad_norm is None else _positive("max_grad_norm", max_grad_norm)
        )
        self.inner_grad_clip = (
            None if inner_grad_clip is None else _positive("inner_grad_clip", inner_grad_clip)
        )
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
        self.loss_fn = get_loss(loss)
        self.learn_inner_lr = bool(learn_inner_lr)
        self.inner_lrs: nn.ParameterList | None = None
        if self.learn_inner_lr:
            self.inner_lrs = nn.ParameterList(
                nn.Parameter(torch.full_like(p, self.inner_lr)) for p in self.fnet.params()
            )
        self._optimizer_factory = optimizer
        self._optimizer: torch.optim.Optimizer | None = None
        # Fitted observation-noise scale [O]; empty until fit_noise_scale is called.
        self.noise_scale: Tensor
        self.register_buffer("noise_scale", torch.zeros(0))

    # -- configuration -----------------------------------------------------

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The outer optimiser, made on first use over ``self.parameters()``."""
        if self._optimizer is None:
            params = [p for p in self.parameters() if p.requires_grad]
            if self._optimizer_factory is None:
                self._optimizer = torch.optim.Adam(params, lr=self.outer_lr)
            else:
                self._optimizer = self._optimizer_factory(params)
        return self._optimizer

    @property
    def device(self) -> torch.device:
        """Device of the meta-parameters."""
        return next(self.parameters()).device

    def inner_rates(self) -> float | tuple[Tensor, ...]:
        """The inner step size: a float, or one tensor per weight (Meta-SGD)."""
        return self.inner_lr if self.inner_lrs is None else tuple(self.inner_lrs)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # The noise scale's shape is set by fit_noise_scale; take the saved one's shape.
        key = prefix + "noise_scale"
        if key in state_dict:
            self.noise_scale = torch.empty_like(state_dict[key], device=self.noise_scale.device)
        super()._load_from_state_dict(state_dict, prefix, *args)

    # -- data checks ---------------------------------------------------------

    def _check_batch(self, batch: TaskBatch, *, need_query: bool) -> TaskBatch:
        if not isinstance(batch, TaskBatch):
            raise TypeError(f"expected a TaskBatch, got {type(batch).__name__}")
        if need_query and batch.query_x.shape[1] == 0:
            raise ValueError("the tasks have empty query sets; meta-training needs query points")
        self._check_io(batch.support_x, batch.support_y, batch_dims=1)
        return batch.to(self.device)

    def _check_io(self, x: Tensor, y: Tensor, *, batch_dims: int) -> None:
        if isinstance(self.net, MLP):
            if x.shape[-1] != self.net.in_features:
                raise ShapeError(
                    f"the network takes {self.net.in_features} input feature(s) but the "
                    f"inputs have shape {fmt_shape(x.shape)}"
                )
            if y.is_floating_point() and y.shape[-1] != self.net.out_features:
                raise ShapeError(
                    f"the network has {self.net.out_features} output(s) but the targets have "
                    f"shape {fmt_shape(y.shape)}"
                )
        if self.loss_name == "mse" and not y.is_floating_point():
            raise ShapeError(
                f"loss 'mse' needs floating regression targets, got {y.dtype}; use "
                "loss='cross_entropy' for class labels"
            )
        if self.loss_name == "cross_entropy" and y.is_floating_point():
            raise ShapeError("loss 'cross_entropy' needs integer class labels as targets")

    # -- the meta-objective ----------------------------------------------------

    def _adapted(
        self, x: Tensor, y: Tensor, *, steps: int, first_order: bool, differentiable: bool
    ) -> tuple[Tensor, ...]:
        start = self.fnet.expand(self.fnet.params(), x.shape[:1])
        return gradient_steps(
            self.fnet,
            start,
            x,
            y,
            self.loss_fn,
            steps=steps,
            lr=self.inner_rates(),
            first_order=first_order,
            differentiable=differentiable,
            max_grad_norm=self.inner_grad_clip,
        )

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        """Mean query loss after adaptation on each task's support set.

        Subclasses say how the inner steps are differentiated; see
        :class:`~bayesmeta.MAML`.

        Parameters
        ----------
        batch
            ``T`` tasks with non-empty query sets.

        Returns
        -------
        Tensor
            A differentiable scalar.

        """
        raise NotImplementedError

    def meta_step(self, batch: TaskBatch) -> float:
        """One outer update on ``batch``; returns the meta-training loss."""
        raise NotImplementedError

    def _apply_gradients(self, loss_value: float) -> float:
        """Clip, check and apply the gradients held in ``.grad``; zero them after."""
        check_finite(loss_value, "the meta-training loss")
        params = [p for p in self.parameters() if p.grad is not None]
        if self.max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
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

        Returns
        -------
        History
            Per-iteration losses and wall time.

        Raises
        ------
        NonFiniteLossError
            If the loss turns NaN or infinite; the learner keeps the last
            finite parameters and ``err.history`` holds the losses so far.

        """
        self.train()
        return run_meta_fit(
            self.meta_step,
            source,
            iterations,
            meta_batch_size,
            progress=progress,
            description=type(self).__name__,
            callback=callback,
        )

    # -- test time -------------------------------------------------------------

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None
    ) -> AdaptedPredictor:
        """Adapt the meta-learned weights to new task(s).

        Parameters
        ----------
        support_x
            ``[K, *features]`` for one task, or ``[T, K, *features]`` for ``T``.
        support_y
            ``[K, O]`` (or ``[K]`` labels), or with a leading ``T``.
        steps
            Gradient steps; defaults to ``eval_inner_steps``.

        Returns
        -------
        AdaptedPredictor
            Detached adapted weights; ``predict(query_x)`` gives a
            :class:`~bayesmeta.Prediction`.

        """
        steps = self.eval_inner_steps if steps is None else check_count("steps", steps, minimum=0)
        if not isinstance(support_x, Tensor):
            raise TypeError("support_x must be a torch.Tensor")
        batched = support_x.dim() == self.fnet.feature_dims + 2
        batch = tuple(support_x.shape[:1]) if batched else ()
        x, y = check_pair("support", support_x, support_y, batch=batch, allow_empty=False)
        self._check_io(x, y, batch_dims=len(batch))
        x, y = x.to(self.device), y.to(self.device)
        xb, yb = (x, y) if batched else (x.unsqueeze(0), y.unsqueeze(0))
        params = self._adapted(xb, yb, steps=steps, first_order=True, differentiable=False)
        if not batched:
            params = tuple(p[0] for p in params)
        noise = self.noise_scale.detach() if self.noise_scale.numel() else None
        return AdaptedPredictor(self.fnet, params, noise)

    @torch.no_grad()
    def fit_noise_scale(self, batch: TaskBatch) -> Tensor:
        """Fit a homoscedastic Gaussian noise scale for regression predictions.

        Adapts to each task's support set and sets ``noise_scale`` to the
        maximum-likelihood value on the query residuals (the root mean square
        residual per output). Use held-out tasks, not the training batch.

        Returns
        -------
        Tensor
            The fitted scale ``[O]`` (also stored in ``self.noise_scale``).

        """
        batch = self._check_batch(batch, need_query=True)
        if batch.kind != "regression":
            raise ValueError("a noise scale is only defined for regression tasks")
        adapted = self.adapt(batch.support_x, batch.support_y)
        resid = adapted.predict(batch.query_x).mean - batch.query_y
        scale = resid.pow(2).mean(dim=(0, 1)).sqrt().clamp_min(1e-6)
        self.noise_scale = scale
        return scale

    def config(self) -> dict[str, Any]:
        """The constructor arguments needed to rebuild this learner (JSON-ready)."""
        cfg: dict[str, Any] = {
            "learner": type(self).__name__,
            "inner_lr": self.inner_lr,
            "inner_steps": self.inner_steps,
            "eval_inner_steps": self.eval_inner_steps,
            "learn_inner_lr": self.learn_inner_lr,
            "loss": self.loss_name,
            "outer_lr": self.outer_lr,
            "max_grad_norm": self.max_grad_norm,
            "inner_grad_clip": self.inner_grad_clip,
        }
        if isinstance(self.net, MLP):
            cfg["net"] = {"sizes": list(self.net.sizes), "activation": self.net.activation_name}
        return cfg
