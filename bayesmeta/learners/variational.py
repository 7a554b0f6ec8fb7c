"""Hierarchical SVI over a fixed set of meta-training tasks (PACOH-style empirical Bayes).

The model is the one hierarchical model of the design notes with hyper-priors
(:class:`~bayesmeta.priors.HierarchicalGaussianPrior`)::

    psi = (prior_loc, prior_log_scale) ~ p(psi)
    theta_t | psi ~ N(prior_loc, diag(exp(prior_log_scale)^2))   t = 1..N, plate "tasks"
    y_tj ~ p(y | f(x_tj; theta_t))

Meta-training maximises Pyro's ELBO of the whole model over the ``N`` tasks
with a mean-field guide ``q(psi) prod_t q(theta_t)``, subsampling ``T`` tasks
per step with ``pyro.plate("tasks", N, subsample_size=T)`` (Pyro scales their
terms by ``N / T``, so each step's loss is an unbiased estimate of the full
negative ELBO). The likelihood's noise scale is a point estimate, learned with
the variational parameters (type-II maximum likelihood), not a latent site.

Adapting to a new task runs SVI on its weights under the prior at the
hyper-posterior mean, ``p(theta | E_q[psi])``; see
:meth:`VariationalMetaLearner.adapt`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence, Sized
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pyro
import pyro.distributions as pdist
import torch
import torch.distributed as dist
from pyro.infer import TraceMeanField_ELBO
from torch import Tensor, nn

from bayesmeta.inference.guide_svi import GuideSpec
from bayesmeta.inference.task_svi import INIT_SCALE_RATIO, task_posterior_svi
from bayesmeta.learners.base import MetaLearner, OptimizerFactory, positive
from bayesmeta.learners.noise_calibration import CalibratedNoise, PredictiveNoise
from bayesmeta.model.hyper import HierarchicalGaussianPrior, HyperPosterior
from bayesmeta.model.likelihoods import (
    CategoricalLikelihood,
    Likelihood,
    LikelihoodName,
    make_likelihood,
)
from bayesmeta.model.priors import GaussianPrior
from bayesmeta.model.task_model import TaskModel
from bayesmeta.posteriors.gaussian import GaussianTaskPosterior
from bayesmeta.posteriors.guided import GuidePosterior
from bayesmeta.posteriors.lowrank import LowRankTaskPosterior
from bayesmeta.tasks.source import TaskSource, check_count
from bayesmeta.tasks.task import Task, TaskBatch
from bayesmeta.training.distributed import (
    all_reduce_gradients,
    broadcast_seed,
    check_same_batch,
    is_distributed,
    shard_range,
    sync_parameters,
)
from bayesmeta.training.loop import History, check_finite, run_meta_fit
from bayesmeta.training.state import resume

__all__ = ["VariationalMetaLearner"]

GuideName = Literal["normal", "lowrank"]
_LOCAL_PARAMS = ("task_loc", "task_log_scale")


class VariationalMetaLearner(PredictiveNoise, MetaLearner):
    """Meta-learn a weight prior by hierarchical SVI; adapt to new tasks by SVI under it.

    Meta-training fits ``q(psi)`` and one ``q(theta_t)`` per meta-training
    task (all mean-field Gaussian) by maximising the ELBO of the full model,
    ``T`` tasks per step. ``learner.net``'s weights are the mean of
    ``q(prior_loc)``, i.e. the meta-learned prior mean, as the initialisation
    is in MAML.

    Parameters
    ----------
    net
        An ``nn.Module`` or MLP layer widths.
    likelihood
        ``"gaussian"`` (regression, learned noise scale), ``"categorical"``
        (classification), ``"mse"`` (a Gibbs likelihood without a noise
        model) or a :class:`~bayesmeta.priors.Likelihood`.
    noise_scale
        Initial noise standard deviation of the Gaussian likelihood.
    learn_noise
        Learn the noise scale during meta-training. It is a point estimate
        (a parameter, like type-II maximum likelihood), not a latent site,
        and stays fixed at test time.
    prior_scale
        Hyper-prior median of the prior standard deviation, and where
        ``q(prior_log_scale)``'s mean starts.
    hyper_loc
        Hyper-prior mean of the prior mean: ``"zeros"`` or ``"module"`` (the
        network's initial weights).
    hyper_loc_std
        Hyper-prior standard deviation of the prior mean.
    hyper_log_scale_std
        Hyper-prior standard deviation of the log prior scale; ``None`` fixes
        the prior scale at ``prior_scale`` (then only the prior mean is latent).
    scale_per
        One prior scale per ``"weight"`` or per parameter ``"tensor"``.
    hyper_kl_weight
        Weight of ``KL(q(psi) || p(psi))`` in the objective: 1 is the ELBO;
        smaller values temper the hyper-prior (towards empirical Bayes, a
        point estimate of ``psi``), which helps networks with many weights and
        few meta-training points (see ``docs/variational.md``).
    num_particles
        Monte Carlo samples of the ELBO per step (vectorised), in meta-training
        and adaptation.
    adapt_steps, adapt_lr
        SVI steps and Adam learning rate of :meth:`adapt`.
    guide
        Default task posterior of :meth:`adapt`: ``"normal"`` (mean-field,
        Pyro's ``AutoNormal``) or ``"lowrank"`` (low-rank plus diagonal).
    rank
        Rank of the ``"lowrank"`` guide.
    outer_lr, optimizer, max_grad_norm, standardize
        Adam learning rate (or optimiser factory) and gradient clipping of
        meta-training; see :class:`~bayesmeta.learners.MetaLearner`.
    calibrate_noise
        With a Gaussian likelihood, predict with a noise scale calibrated at the
        end of every :meth:`meta_fit` on up to ``CALIBRATION_TASKS`` of the
        meta-training tasks (adapted to their support sets, scored on their
        query sets; see :mod:`bayesmeta.learners.noise_calibration`), rather
        than with the likelihood's learned scale, which adaptation keeps
        using: a short run's intervals are wide, not narrow.

    Attributes
    ----------
    prior : HierarchicalGaussianPrior
        The hyper-prior ``p(psi)`` and the conditional prior ``p(theta | psi)``.
    likelihood : Likelihood
        The observation model.
    tasks_ : TaskBatch or None
        The meta-training tasks that ``task_loc`` / ``task_log_scale`` belong to.
    task_loc, task_log_scale : nn.Parameter
        ``q(theta_t)`` of the meta-training tasks, ``[N, P]`` each.

    """

    def __init__(
        self,
        net: nn.Module | Sequence[int],
        *,
        likelihood: LikelihoodName | Likelihood = "gaussian",
        noise_scale: float = 0.1,
        learn_noise: bool = True,
        prior_scale: float = 0.1,
        hyper_loc: Literal["zeros", "module"] = "zeros",
        hyper_loc_std: float = 1.0,
        hyper_log_scale_std: float | None = 1.0,
        scale_per: Literal["weight", "tensor"] = "weight",
        hyper_kl_weight: float = 1.0,
        num_particles: int = 1,
        adapt_steps: int = 300,
        adapt_lr: float = 0.05,
        guide: GuideName = "normal",
        rank: int = 10,
        outer_lr: float = 1e-2,
        optimizer: OptimizerFactory | None = None,
        max_grad_norm: float | None = None,
        standardize: bool | Literal["auto"] = "auto",
        calibrate_noise: bool = True,
    ) -> None:
        super().__init__(
            net,
            outer_lr=outer_lr,
            optimizer=optimizer,
            max_grad_norm=max_grad_norm,
            standardize=standardize,
        )
        outputs = int(getattr(self.net, "out_features", 1))
        self.likelihood = make_likelihood(likelihood, noise_scale, learn_noise, outputs)
        self.likelihood.bind_units(self.units)
        self.calibrate_noise = bool(calibrate_noise)
        #: The predictive noise estimate (see ``calibrate_noise``).
        self.calibration = CalibratedNoise()
        self.likelihood_name = likelihood if isinstance(likelihood, str) else "custom"
        self.target_kind = (
            "classification" if isinstance(self.likelihood, CategoricalLikelihood) else "regression"
        )
        self.prior = HierarchicalGaussianPrior.for_net(
            self.fnet,
            loc=hyper_loc,
            loc_std=positive("hyper_loc_std", hyper_loc_std),
            scale=positive("prior_scale", prior_scale),
            log_scale_std=(
                None
                if hyper_log_scale_std is None
                else positive("hyper_log_scale_std", hyper_log_scale_std)
            ),
            scale_per=scale_per,
        )
        # q(psi): the mean of q(prior_loc) is the network's own weights; q starts narrow
        # (std: a tenth of the prior scale for the mean, 0.1 for the log-scale).
        p = self.fnet.num_params
        log_s0 = self.prior.log_scale_mean
        narrow = math.log(INIT_SCALE_RATIO)
        self.hyper_loc_log_std = nn.Parameter(self.prior.per_weight(log_s0) + narrow)
        self.hyper_log_scale_mean: nn.Parameter | None = None
        self.hyper_log_scale_log_std: nn.Parameter | None = None
        if self.prior.learns_scale:
            self.hyper_log_scale_mean = nn.Parameter(log_s0.clone())
            self.hyper_log_scale_log_std = nn.Parameter(torch.full_like(log_s0, narrow))
        # q(theta_t) of the meta-training tasks, made by meta_fit.
        self.task_loc = nn.Parameter(log_s0.new_zeros(0, p))
        self.task_log_scale = nn.Parameter(log_s0.new_zeros(0, p))
        self.tasks_: TaskBatch | None = None
        self._data: tuple[Tensor, Tensor] | None = None
        self._check_sites = True  # let Pyro validate the next step (new tasks)
        self._local_optimizer: torch.optim.Optimizer | None = None
        self.noise_init = float(noise_scale)
        self.learn_noise = bool(learn_noise)
        self.prior_scale = float(prior_scale)
        self.hyper_loc = hyper_loc
        self.hyper_loc_std = float(hyper_loc_std)
        self.hyper_log_scale_std = (
            None if hyper_log_scale_std is None else float(hyper_log_scale_std)
        )
        self.scale_per = scale_per
        self.hyper_kl_weight = positive("hyper_kl_weight", hyper_kl_weight)
        self.num_particles = check_count("num_particles", num_particles, minimum=1)
        self.adapt_steps = check_count("adapt_steps", adapt_steps, minimum=0)
        self.adapt_lr = positive("adapt_lr", adapt_lr)
        self.guide = _check_guide(guide)
        self.rank = check_count("rank", rank, minimum=1)

    #: Most meta-training tasks :meth:`meta_fit` calibrates the predictive noise on.
    CALIBRATION_TASKS = 50

    def _objective_name(self) -> str:
        return f"VariationalMetaLearner with likelihood {self.likelihood_name!r}"

    def _standardizes_targets(self) -> bool:
        return self.likelihood.target_units

    def _model_parts(self) -> tuple[HierarchicalGaussianPrior, Likelihood]:
        """The hierarchical prior (hyper sites ``psi``, then ``theta | psi``) and the likelihood."""
        return self.prior, self.likelihood

    def adaptation_model(self) -> TaskModel:
        """The model under :meth:`learned_prior` (no hyper sites), which :meth:`adapt` uses."""
        return TaskModel(
            self.fnet, self.learned_prior().to(self.device), self.likelihood, owner=self
        )

    # -- the hyper-posterior -------------------------------------------------------

    def hyper_posterior(self) -> HyperPosterior:
        """``q(psi)``, detached: its ``distributions()`` are keyed by the model's site names."""
        q = self._q_psi()
        return HyperPosterior(
            q.loc_mean.detach().clone(),
            q.loc_std.detach().clone(),
            None if q.log_scale_mean is None else q.log_scale_mean.detach().clone(),
            None if q.log_scale_std is None else q.log_scale_std.detach().clone(),
        )

    def learned_prior(self) -> GaussianPrior:
        """The prior at the hyper-posterior mean, ``p(theta | E_q[psi])`` (frozen).

        Its mean is ``E_q[prior_loc]`` (the network's weights) and its scale
        ``exp(E_q[prior_log_scale])``, the median of the scale under ``q``.
        """
        with torch.no_grad():
            loc = self.fnet.flatten([w.detach() for w in self.fnet.params()]).clone()
            log_scale = self.prior.per_weight(self._plugin_log_scale())
            return GaussianPrior(loc, log_scale.exp(), learn_loc=False, learn_scale=False)

    def _plugin_log_scale(self) -> Tensor:
        if self.hyper_log_scale_mean is None:
            return self.prior.log_scale_mean
        return self.hyper_log_scale_mean

    def _q_psi(self) -> HyperPosterior:
        loc = self.fnet.flatten(self.fnet.params())
        if self.hyper_log_scale_mean is None or self.hyper_log_scale_log_std is None:
            return HyperPosterior(loc, self.hyper_loc_log_std.exp(), None, None)
        return HyperPosterior(
            loc,
            self.hyper_loc_log_std.exp(),
            self.hyper_log_scale_mean,
            self.hyper_log_scale_log_std.exp(),
        )

    # -- meta-training -------------------------------------------------------------

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
        if self.max_grad_norm is not None:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
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
                torch.optim.Adam(params, lr=self.outer_lr) if factory is None else factory(params)
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
                [self.task_loc, self.task_log_scale], lr=self.outer_lr
            )
        return self._local_optimizer

    def meta_fit(
        self,
        tasks: TaskBatch | Sequence[Task] | TaskSource,
        iterations: int,
        meta_batch_size: int = 25,
        *,
        num_tasks: int | None = None,
        progress: bool | None = None,
        callback: Callable[[int, float], dict[str, float] | None] | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 100,
    ) -> History:
        """Fit ``q(psi)`` and each task's ``q(theta_t)`` by SVI on a fixed set of tasks.

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
        batch = self._as_batch(tasks, num_tasks)
        check_count("meta_batch_size", meta_batch_size, minimum=1)
        self.train()
        self._bind(batch)
        # Each step's subsample comes from the source's own generator (saved in training
        # checkpoints), seeded from torch's global one so that a seeded run repeats.
        seed = int(torch.randint(0, 2**62, ()))
        if is_distributed():
            check_same_batch(batch)
            sync_parameters(self)
            seed = broadcast_seed(seed)
        source = _Fixed(batch, seed)
        history, after_step = None, None
        if checkpoint is not None:  # after _bind: the tasks' q(theta_t) exist to load into
            history, after_step = resume(checkpoint, self, source, iterations, checkpoint_every)
        result = run_meta_fit(
            lambda b: self.meta_step(b, subsample_size=meta_batch_size, generator=source.generator),
            source,
            iterations,
            meta_batch_size,
            progress=progress,
            description=type(self).__name__,
            callback=callback,
            history=history,
            after_step=after_step,
        )
        if self.calibrates_noise() and batch.query_x.shape[1] > 0:
            count = min(batch.support_x.shape[0], self.CALIBRATION_TASKS)
            self.fit_noise_scale(batch.select(range(count)))
        return result

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The global (``q(psi)``) and per-task (``q(theta_t)``) optimisers, by name."""
        return {"outer": self.optimizer, "local": self.local_optimizer}

    @staticmethod
    def _as_batch(
        tasks: TaskBatch | Sequence[Task] | TaskSource, num_tasks: int | None
    ) -> TaskBatch:
        if isinstance(tasks, TaskBatch):
            if num_tasks is not None:
                raise ValueError("num_tasks is only for a task source; a TaskBatch is used whole")
            return tasks
        if isinstance(tasks, Sequence) and not isinstance(tasks, str):
            if not all(isinstance(t, Task) for t in tasks):
                raise TypeError("tasks must be a TaskBatch, a sequence of Task or a task source")
            return TaskBatch.stack(list(tasks))
        if callable(getattr(tasks, "sample", None)):
            if num_tasks is None and isinstance(tasks, Sized):
                num_tasks = len(tasks)  # a finite source (a table's groups, a pool): all of it
            if num_tasks is None:
                raise ValueError(
                    "VariationalMetaLearner meta-trains on a fixed set of tasks: pass "
                    "num_tasks to draw them from the source once"
                )
            batch = tasks.sample(check_count("num_tasks", num_tasks, minimum=1))
            if not isinstance(batch, TaskBatch):
                raise TypeError(f"the source returned {type(batch).__name__}, not a TaskBatch")
            return batch
        raise TypeError(
            f"tasks must be a TaskBatch, a sequence of Task or a task source, "
            f"got {type(tasks).__name__}"
        )

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # q(theta_t) has one row per meta-training task: take the saved number of rows.
        for name in ("task_loc", "task_log_scale"):
            saved = state_dict.get(prefix + name)
            if isinstance(saved, Tensor) and saved.shape != getattr(self, name).shape:
                setattr(self, name, nn.Parameter(getattr(self, name).new_zeros(saved.shape)))
                self._local_optimizer = None
        super()._load_from_state_dict(state_dict, prefix, *args)

    # -- test time -----------------------------------------------------------------

    def adapt(
        self,
        support_x: Tensor,
        support_y: Tensor,
        *,
        steps: int | None = None,
        lr: float | None = None,
        guide: GuideName | GuideSpec | None = None,
        rank: int | None = None,
        generator: torch.Generator | None = None,
    ) -> GaussianTaskPosterior | LowRankTaskPosterior | GuidePosterior:
        """Infer the task posterior(s) by SVI under the learned prior.

        The prior is ``p(theta | E_q[psi])`` (:meth:`learned_prior`): the
        hyper-posterior is plugged in at its mean rather than integrated over.
        After meta-training on many tasks ``q(psi)`` is narrow (its variance
        shrinks as ``1 / N``), so integrating would change the prior little,
        while a fixed Gaussian prior keeps the tasks independent, the guide
        small and the result a plain Gaussian. Each task's guide starts at
        the prior mean with a tenth of its scale; tasks in a batch are adapted
        together in one plate (:func:`~bayesmeta.inference.task_svi.task_posterior_svi`).

        Parameters
        ----------
        support_x
            ``[K, *features]`` for one task or ``[T, K, *features]`` for ``T``.
        support_y
            Matching targets.
        steps, lr
            SVI steps and Adam learning rate (default ``adapt_steps``,
            ``adapt_lr``).
        guide
            ``"normal"``: Pyro's ``AutoNormal`` (mean-field); ``"lowrank"``:
            per task ``N(m, W W^T + diag(d))`` with ``W`` of rank ``rank``,
            parametrised as Pyro's ``AutoLowRankMultivariateNormal`` (which
            itself would join all tasks of a batch into one vector and share
            one rank between them). Or any Pyro autoguide class or guide
            callable, fitted by SVI on :attr:`model` under the learned prior
            (see :meth:`BayesianMAML.adapt <bayesmeta.BayesianMAML.adapt>`).
        rank
            Rank of the ``"lowrank"`` guide (default: the learner's).
        generator
            Seeds the SVI noise (and the low-rank factor's initialisation);
            ``None`` uses torch's global generator.

        Returns
        -------
        GaussianTaskPosterior or LowRankTaskPosterior
            Its ``predict(query_x, num_samples=...)`` gives a
            :class:`~bayesmeta.Prediction`.

        Raises
        ------
        NonFiniteLossError
            If the ELBO turns NaN or infinite.

        """
        steps = self.adapt_steps if steps is None else check_count("steps", steps, minimum=0)
        lr = self.adapt_lr if lr is None else positive("lr", lr)
        if guide is not None and not isinstance(guide, str):
            xg, yg, batched_g = self._support(support_x, support_y)
            return self._adapt_guide(
                xg, yg, batched_g, guide, steps=steps, lr=lr, generator=generator
            )
        kind = self.guide if guide is None else _check_guide(guide)
        r = self.rank if rank is None else check_count("rank", rank, minimum=1)
        x, y, batched = self._support(support_x, support_y)
        post = task_posterior_svi(
            self.fnet,
            self.learned_prior().to(self.device),
            self.likelihood,
            x,
            y,
            guide=kind,
            rank=r,
            steps=steps,
            lr=lr,
            num_particles=self.num_particles,
            generator=generator,
        )
        post = self.with_predictive_noise(post)
        if batched:
            return post
        if isinstance(post, GaussianTaskPosterior):
            return replace(post, loc=post.loc[0], log_scale=post.log_scale[0])
        return replace(
            post, loc=post.loc[0], cov_factor=post.cov_factor[0], cov_diag=post.cov_diag[0]
        )

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready)."""
        return {
            **super().config(),
            "likelihood": self.likelihood_name,
            "noise_scale": self.noise_init,
            "learn_noise": self.learn_noise,
            "calibrate_noise": self.calibrate_noise,
            "prior_scale": self.prior_scale,
            "hyper_loc": self.hyper_loc,
            "hyper_loc_std": self.hyper_loc_std,
            "hyper_log_scale_std": self.hyper_log_scale_std,
            "scale_per": self.scale_per,
            "hyper_kl_weight": self.hyper_kl_weight,
            "num_particles": self.num_particles,
            "adapt_steps": self.adapt_steps,
            "adapt_lr": self.adapt_lr,
            "guide": self.guide,
            "rank": self.rank,
        }


class _Fixed:
    """The same (fixed) tasks every time, and the generator of each step's subsample."""

    def __init__(self, batch: TaskBatch, seed: int) -> None:
        self.batch = batch
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        return self.batch


def _check_guide(guide: str) -> GuideName:
    if guide not in ("normal", "lowrank"):
        raise ValueError(
            f"guide must be 'normal', 'lowrank', a Pyro autoguide class or a guide callable, "
            f"got {guide!r}"
        )
    return guide  # type: ignore[return-value]
