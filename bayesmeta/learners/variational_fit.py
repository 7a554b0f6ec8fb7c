"""Meta-training of :class:`~bayesmeta.learners.VariationalMetaLearner`: hierarchical SVI.

:class:`HierarchicalSVI` holds the half of the learner that fits the model to a fixed set of
meta-training tasks: the guide ``q(psi) prod_t q(theta_t)``, the binding of the tasks to
their ``q(theta_t)``, the ELBO, one step (with task subsampling and data-parallel
gradients), the two optimisers and the fit loop. The public class adds the model, its
constructor and adaptation to new tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pyro
import pyro.distributions as pdist
import torch
import torch.distributed as dist
from pyro.infer import TraceMeanField_ELBO
from torch import Tensor, nn

from bayesmeta._checks import check_count
from bayesmeta.inference.task_svi import INIT_SCALE_RATIO
from bayesmeta.learners.base import MetaLearner
from bayesmeta.learners.fixed_tasks import FixedTasks, fixed_task_batch
from bayesmeta.learners.noise_calibration import PredictiveNoise
from bayesmeta.model.hyper import HierarchicalGaussianPrior, HyperPosterior
from bayesmeta.model.priors import GaussianPrior
from bayesmeta.tasks.source import TaskSource
from bayesmeta.tasks.task import Task, TaskBatch
from bayesmeta.training.distributed import (
    all_reduce_gradients,
    broadcast_seed,
    check_same_batch,
    is_distributed,
    shard_range,
    sync_parameters,
)
from bayesmeta.training.loop import History, check_finite

__all__ = ["HierarchicalSVI"]

#: The per-task variational parameters, stepped by their own (sparse) optimiser.
_LOCAL_PARAMS = ("task_loc", "task_log_scale")


class HierarchicalSVI(PredictiveNoise, MetaLearner):
    """The meta-training half of :class:`~bayesmeta.learners.VariationalMetaLearner`.

    Not a learner of its own: the subclass sets the attributes below in its
    constructor and provides :meth:`learned_prior` and :meth:`_q_psi`.
    """

    prior: HierarchicalGaussianPrior
    hyper_kl_weight: float
    num_particles: int
    task_loc: nn.Parameter
    task_log_scale: nn.Parameter
    tasks_: TaskBatch | None
    _data: tuple[Tensor, Tensor] | None
    _check_sites: bool
    _local_optimizer: torch.optim.Optimizer | None

    #: Most meta-training tasks :meth:`meta_fit` calibrates the predictive noise on.
    CALIBRATION_TASKS = 50

    def learned_prior(self) -> GaussianPrior:
        """The prior at the hyper-posterior mean (the subclass's)."""
        raise NotImplementedError

    def _q_psi(self) -> HyperPosterior:
        raise NotImplementedError

    def _model_options(self) -> dict[str, Any]:
        return {"hyper_scale": self.hyper_kl_weight}

    def _guide(self, x: Tensor, y: Tensor, subsample: Tensor | None) -> None:
        with pyro.poutine.scale(scale=self.hyper_kl_weight):
            for name, q in self._q_psi().distributions().items():
                pyro.sample(name, q)
        with pyro.plate("tasks", x.shape[0], subsample=subsample, dim=-1) as idx:
            assert idx is not None
            loc = nn.functional.embedding(idx, self.task_loc, sparse=True)
            log_scale = nn.functional.embedding(idx, self.task_log_scale, sparse=True)
            pyro.sample("theta", pdist.Normal(loc, log_scale.exp()).to_event(1))

    def _bind(self, batch: TaskBatch) -> tuple[Tensor, Tensor]:
        """Use ``batch`` as the meta-training tasks; return their data ``[N, n, ...]``.

        Each task's support and query points are its data. New tasks get new
        ``q(theta_t)``, started at the mean of :meth:`learned_prior` with
        ``INIT_SCALE_RATIO`` times its scale.
        """
        if batch is not self.tasks_ or self._data is None:
            checked = self._check_batch(batch, need_query=False)
            x = torch.cat([checked.support_x, checked.query_x], dim=1)
            y = torch.cat([checked.support_y, checked.query_y], dim=1)
            n = len(batch)
            fresh = self.tasks_ is not None or self.task_loc.shape[0] != n
            if fresh:
                prior = self.learned_prior()
                self.task_loc = nn.Parameter(prior.loc.expand(n, -1).clone())
                # As at test time (INIT_SCALE_RATIO); with task subsampling it matters
                # more: each q(theta_t) moves only on the steps that draw its task (in
                # the conjugate subsampling test a start at the full prior scale left
                # task sds up to 49 % too wide after 2000 steps; this start, 6 %).
                log_scale = prior.scale.log() + math.log(INIT_SCALE_RATIO)
                self.task_log_scale = nn.Parameter(log_scale.expand(n, -1).clone())
                self._local_optimizer = None  # the parameters changed
            self.tasks_, self._data = batch, (x, y)
            self._check_sites = True
        x, y = self._data
        if x.device != self.device:
            x, y = x.to(self.device), y.to(self.device)
            self._data = (x, y)
        return x, y

    def meta_loss(
        self,
        batch: TaskBatch,
        *,
        subsample_size: int | None = None,
        subsample: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Pyro's negative ELBO of the hierarchical model, on ``subsample_size`` tasks.

        Parameters
        ----------
        batch
            The ``N`` meta-training tasks (support and query points are both
            used). The first call with a batch creates its ``q(theta_t)``;
            later calls with the same batch object continue with them.
        subsample_size
            Tasks ``T`` in this estimate, drawn without replacement from
            ``generator`` (``None`` or ``>= N``: all of them).
        subsample
            Or the indices of the tasks ``[T]`` (long), given instead.
        generator
            Draws the subsample (``None``: torch's global generator).

        Returns
        -------
        Tensor
            Scalar: an unbiased estimate of the full negative ELBO (the
            likelihood and KL terms of the ``T`` tasks are scaled by ``N / T``).

        """
        x, y = self._bind(batch)
        if subsample is None:
            subsample = self._subsample(x.shape[0], subsample_size, generator)
        elif subsample_size is not None:
            raise ValueError("give subsample_size or subsample, not both")
        elif subsample.dtype != torch.long or subsample.dim() != 1 or len(subsample) == 0:
            raise ValueError(
                f"subsample must be a non-empty 1-D long tensor of task indices, got "
                f"{subsample.dtype} of shape {tuple(subsample.shape)}"
            )
        elif int(subsample.min()) < 0 or int(subsample.max()) >= x.shape[0]:
            raise ValueError(f"subsample indices must lie in [0, {x.shape[0]})")
        elbo = TraceMeanField_ELBO(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=1,
        )
        # Pyro checks sites' shapes and parameters on the first step with new tasks;
        # later, NaN parameters reach the loss (NonFiniteLossError) and steps are ~10 % faster.
        validate, self._check_sites = self._check_sites, False
        with pyro.validation_enabled(validate):
            return elbo.differentiable_loss(self.meta_model(), self._guide, x, y, subsample)

    def _subsample(
        self, n: int, size: int | None, generator: torch.Generator | None
    ) -> Tensor | None:
        """``size`` of ``n`` task indices without replacement, or ``None`` for all of them."""
        if size is None or check_count("subsample_size", size, minimum=1) >= n:
            return None
        return torch.randperm(n, generator=generator)[:size].to(self.device)

    def meta_step(
        self,
        batch: TaskBatch,
        *,
        subsample_size: int | None = None,
        generator: torch.Generator | None = None,
    ) -> float:
        """One step of both optimisers on :meth:`meta_loss`; returns the loss before it.

        ``max_grad_norm`` clips the global parameters' gradient (``q(psi)`` and
        the likelihood), not the tasks' ``q(theta_t)``. Under a
        ``torch.distributed`` process group the step's tasks are split over the
        ranks and the gradients summed (see :meth:`meta_fit`).

        Raises
        ------
        NonFiniteLossError
            If the loss or the clipped gradient norm is not finite (nothing is
            updated).

        """
        optimizers = (self.optimizer, self.local_optimizer)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        if is_distributed():
            value = self._distributed_gradients(batch, subsample_size, generator)
        else:
            loss = self.meta_loss(batch, subsample_size=subsample_size, generator=generator)
            value = check_finite(float(loss.detach()), "the negative ELBO")
            loss.backward()
        if self.hparams.max_grad_norm is not None:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            norm = torch.nn.utils.clip_grad_norm_(params, self.hparams.max_grad_norm)
            check_finite(float(norm), "the gradient norm")
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return value

    def _distributed_gradients(
        self, batch: TaskBatch, subsample_size: int | None, generator: torch.Generator | None
    ) -> float:
        """The step's summed gradient on every rank, each rank computing its share of tasks.

        Every rank draws the same subsample (``generator`` is seeded alike), takes its
        contiguous share, and weights its loss by its share: the local terms are then
        scaled by ``N / T`` overall and the global (``q(psi)``) terms counted once, as in
        one process. The tasks' sparse ``q(theta_t)`` gradients travel as dense rows of
        the drawn tasks.
        """
        x, _ = self._bind(batch)
        n = x.shape[0]
        idx = self._subsample(n, subsample_size, generator)
        idx = torch.arange(n, device=self.device) if idx is None else idx
        share = idx[shard_range(len(idx), dist.get_rank(), dist.get_world_size())]
        weight = len(share) / len(idx)
        loss = self.meta_loss(batch, subsample=share)
        check_finite(float(loss.detach()), "the negative ELBO")
        loss.backward()
        rows: list[Tensor] = []  # this rank's weighted rows of the drawn tasks, others zero
        for param in (self.task_loc, self.task_log_scale):
            grad = param.grad
            dense = torch.zeros_like(param) if grad is None else grad.to_dense()
            rows.append(dense[idx] * weight)
            param.grad = None
        value = all_reduce_gradients(  # weights the global gradients and sums them
            [p for group in self.optimizer.param_groups for p in group["params"]],
            float(loss.detach()),
            weight,
        )
        for param, part in zip((self.task_loc, self.task_log_scale), rows, strict=True):
            dist.all_reduce(part)
            param.grad = torch.sparse_coo_tensor(
                idx.unsqueeze(0), part, param.shape, check_invariants=True
            )
        return check_finite(value, "the negative ELBO")

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """Optimiser of the global parameters: ``q(psi)`` and the likelihood's.

        Adam at ``outer_lr`` unless an ``optimizer`` factory was given.
        """
        if self._optimizer is None:
            params = [
                p
                for name, p in self.named_parameters()
                if p.requires_grad and name not in _LOCAL_PARAMS
            ]
            factory = self._optimizer_factory
            self._optimizer = (
                torch.optim.Adam(params, lr=self.hparams.outer_lr)
                if factory is None
                else factory(params)
            )
        return self._optimizer

    @property
    def local_optimizer(self) -> torch.optim.Optimizer:
        """Optimiser of the tasks' ``q(theta_t)``: ``SparseAdam`` at ``outer_lr``.

        The guide reads the drawn tasks' rows through a sparse embedding, so a
        step costs ``O(T P)``, not ``O(N P)``, and each task's Adam moments move
        only when its task is drawn (lazy Adam).
        """
        if self._local_optimizer is None:
            self._local_optimizer = torch.optim.SparseAdam(
                [self.task_loc, self.task_log_scale], lr=self.hparams.outer_lr
            )
        return self._local_optimizer

    # Its first argument keeps its name, tasks (it takes a batch or a list too).
    def meta_fit(  # type: ignore[override]
        self,
        tasks: TaskBatch | Sequence[Task] | TaskSource,
        iterations: int,
        meta_batch_size: int = 25,
        *,
        progress: bool | None = None,
        callback: Callable[[int, float], dict[str, float] | None] | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 100,
        **options: Any,
    ) -> History:
        """Fit ``q(psi)`` and each task's ``q(theta_t)`` by SVI on a fixed set of tasks.

        The shared meta-training loop of :meth:`MetaLearner.meta_fit
        <bayesmeta.learners.MetaLearner.meta_fit>` (checkpoints, resume, data-parallel
        training), on the fixed tasks; this method only names its arguments.

        Parameters
        ----------
        tasks
            The meta-training tasks: a :class:`TaskBatch`, a sequence of equally
            sized :class:`Task`, or a task source to draw ``num_tasks`` from
            once. Passing the same ``TaskBatch`` again continues the fit;
            other tasks start new ``q(theta_t)`` (``q(psi)`` carries on).
        iterations
            SVI steps.
        meta_batch_size
            Tasks subsampled per step ``T`` (all ``N`` when ``T >= N``).
        num_tasks
            How many tasks to draw when ``tasks`` is a source; for a finite
            source (a table's groups from ``tasks.from_dataframe``, a
            ``TaskPool``) all of its tasks by default, each once.
        progress, callback
            As for :meth:`~bayesmeta.learners.MetaLearner.meta_fit`.

        checkpoint, checkpoint_every
            A training checkpoint, as for :meth:`MetaLearner.meta_fit
            <bayesmeta.learners.MetaLearner.meta_fit>`; it also holds the tasks'
            ``q(theta_t)`` and their optimiser. Resume with the same tasks.
        **options
            ``num_tasks`` only (above; another keyword raises ``TypeError``).

        Returns
        -------
        History
            The loss (negative ELBO estimate) of every step.

        Raises
        ------
        NonFiniteLossError
            If the ELBO turns NaN or infinite; the learner keeps the last
            finite parameters and ``err.history`` holds the losses so far.
        CheckpointError
            If ``checkpoint`` exists but is corrupted or was written by a
            different learner or architecture.
        DistributedError
            Under a ``torch.distributed`` process group: if the ranks hold
            different tasks, or a step's tasks are fewer than the ranks.

        Notes
        -----
        Under a ``torch.distributed`` process group of several ranks (see
        :mod:`bayesmeta.learners.distributed`) every rank holds all ``N`` tasks
        and their ``q(theta_t)``; each step's subsample is the same on every
        rank, each rank computes the ELBO terms of its share of it, and the
        gradients are summed, so every rank applies the same update. As with
        :class:`~bayesmeta.BayesianMAML`, the Monte Carlo draws differ from a
        single process's, so the result matches one process in distribution
        (and to float tolerance when the guide's scales are tiny).

        """
        return super().meta_fit(
            tasks,  # type: ignore[arg-type]  # made a task source by _fit_source
            iterations,
            meta_batch_size,
            progress=progress,
            callback=callback,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            **options,
        )

    # meta_fit's hooks: the shared loop of MetaLearner.meta_fit (run_meta_fit, resume,
    # data-parallel training) on a fixed set of tasks.

    def _fit_source(self, source: Any, meta_batch_size: int, **options: Any) -> TaskSource:
        """The fixed tasks (bound to their ``q(theta_t)``) and each step's subsample generator."""
        num_tasks = options.pop("num_tasks", None)
        if options:
            raise TypeError(
                f"meta_fit got unexpected keyword argument(s) {', '.join(map(repr, options))}"
            )
        batch = fixed_task_batch(source, num_tasks)
        check_count("meta_batch_size", meta_batch_size, minimum=1)
        self._bind(batch)
        # Each step's subsample comes from the source's own generator (saved in training
        # checkpoints), seeded from torch's global one so that a seeded run repeats.
        seed = int(torch.randint(0, 2**62, ()))
        if is_distributed():
            check_same_batch(batch)
            sync_parameters(self)
            seed = broadcast_seed(seed)
        # The checkpoint is loaded after this: the tasks' q(theta_t) exist to load into.
        return FixedTasks(batch, seed)

    def _fit_step(self, source: TaskSource, meta_batch_size: int) -> Callable[[TaskBatch], float]:
        """An SVI step on a subsample of ``meta_batch_size`` of the fixed tasks."""
        generator = cast(FixedTasks, source).generator
        return lambda b: self.meta_step(b, subsample_size=meta_batch_size, generator=generator)

    def _fit_done(self, source: TaskSource) -> None:
        """Calibrate the predictive noise on up to ``CALIBRATION_TASKS`` of the tasks."""
        batch = cast(FixedTasks, source).batch
        if self.calibrates_noise() and batch.query_x.shape[1] > 0:
            count = min(batch.support_x.shape[0], self.CALIBRATION_TASKS)
            self.fit_noise_scale(batch.select(range(count)))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The global (``q(psi)``) and per-task (``q(theta_t)``) optimisers, by name."""
        return {"outer": self.optimizer, "local": self.local_optimizer}
