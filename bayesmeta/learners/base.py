"""What every learner shares: meta-parameters, an optimiser, checks and the fit loop.

A learner is an ``nn.Module`` of meta-parameters with an outer optimiser, input
checks and the meta-training loop. Subclasses define ``meta_loss`` and ``adapt``
(and ``meta_gradients`` where an update is not a gradient step on ``meta_loss``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from bayesmeta._checks import check_like, check_support, positive
from bayesmeta._deprecated import renamed
from bayesmeta.inference.guide_svi import GuideSpec, adapt_guide
from bayesmeta.learners.data_checks import check_adapted, check_io
from bayesmeta.learners.hyper import LearnerHyper, hyper_properties, renamed_properties
from bayesmeta.model.learner_model import LearnerModel
from bayesmeta.model.likelihoods import Likelihood
from bayesmeta.model.task_model import TaskModel, ThetaPrior
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.nets.mlp import MLP
from bayesmeta.nets.spec import net_spec
from bayesmeta.nets.units import Units
from bayesmeta.posteriors.guided import GuidePosterior
from bayesmeta.tasks.source import TaskSource
from bayesmeta.tasks.task import TaskBatch
from bayesmeta.training.distributed import data_parallel_step, is_distributed, sync_parameters
from bayesmeta.training.loop import History, check_finite, run_meta_fit
from bayesmeta.training.state import resume

__all__ = ["MetaLearner", "OptimizerFactory", "TargetKind", "positive"]

P = TypeVar("P")
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
TargetKind = Literal["regression", "classification", "any"]


class MetaLearner(nn.Module):
    """Base of all learners.

    Parameters
    ----------
    net
        The network: an ``nn.Module`` mapping ``[N, *features]`` to ``[N, O]``,
        or a tuple of MLP layer widths.
    hparams
        The learner's hyper-parameters, an instance of its :attr:`Hyper`
        dataclass; or ``None`` to build one from ``**hyper``. A learner's own
        constructor takes them as keyword arguments and builds it (see
        :func:`~bayesmeta.learners.hyper.pick_hyper`).
    optimizer
        Factory ``params -> torch.optim.Optimizer`` replacing the default
        (Adam at ``hparams.outer_lr``).
    **hyper
        The fields of :attr:`Hyper` when ``hparams`` is ``None``: here
        ``outer_lr`` (learning rate of the default optimiser) and
        ``max_grad_norm`` (clip the meta-gradient to this norm; ``None``: no
        clipping).

    Attributes
    ----------
    hparams : LearnerHyper
        The hyper-parameters (a frozen dataclass); :meth:`config` is derived
        from it, and each field reads as an attribute too
        (``learner.outer_lr``).

    Notes
    -----
    Learners that standardise their data take ``standardize``: ``True``
    standardises the inputs (vector features) and real-valued targets inside
    the learner, from the first batch it trains on (see
    :mod:`bayesmeta.nets.units`): data, predictions and intervals stay in the
    user's units, while the weights, the prior, the inner steps and the
    initial noise scale work in standardised ones. ``"auto"``: the same, but
    inputs (or targets) already near unit scale
    (:func:`~bayesmeta.nets.units.on_unit_scale`: standard deviations in
    0.1-10, means within 5 of zero) are left as they are, so settings tuned on
    such data keep their meaning. ``False``: the data as given.

    Data given to ``meta_fit``, ``adapt`` and ``predict`` may be on the CPU
    (task sources draw there; it is moved to the learner's device) or on the
    learner's device. Data on any other device, and floating data of another
    dtype than the weights, is refused with an error that names the
    argument, both devices or both dtypes.

    """

    #: The learner's hyper-parameter dataclass (each learner names its own).
    Hyper: ClassVar[type[LearnerHyper]] = LearnerHyper
    #: Fields of :attr:`Hyper` that do not read as attributes, because the learner
    #: uses the name for something built from them (``prior``: the prior module).
    hyper_not_attributes: ClassVar[frozenset[str]] = frozenset()
    #: Old keyword names of the constructor, ``{old: new}``: passed, they warn and
    #: stand for the new one; in a stored config they are read as the new one.
    renamed_keywords: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hyper_properties(cls, cls.Hyper, cls.hyper_not_attributes)
        renamed_properties(cls, cls.renamed_keywords)

    def __init__(
        self,
        net: nn.Module | Sequence[int],
        hparams: LearnerHyper | None = None,
        *,
        optimizer: OptimizerFactory | None = None,
        **hyper: Any,
    ) -> None:
        super().__init__()
        if hparams is None:
            hparams = self.Hyper(**hyper)
        elif hyper:
            raise TypeError(f"pass hparams or keyword hyper-parameters, not both: {sorted(hyper)}")
        if not isinstance(hparams, self.Hyper):
            raise TypeError(
                f"{type(self).__name__} takes a {self.Hyper.__name__} as hparams, "
                f"got {type(hparams).__name__}"
            )
        #: The hyper-parameters (a frozen dataclass).
        self.hparams = hparams
        self.net = net if isinstance(net, nn.Module) else MLP(tuple(net))
        self.fnet = FunctionalNet(self.net)
        #: The affine maps between the user's units and the network's (buffers).
        self.units = Units()
        self.fnet.units = self.units
        self._units_checked = False
        if optimizer is not None and not callable(optimizer):
            raise TypeError(
                "optimizer must be a factory params -> torch.optim.Optimizer (e.g. "
                f"functools.partial(torch.optim.SGD, lr=0.1)), got {type(optimizer).__name__}"
            )
        self._optimizer_factory = optimizer
        self._optimizer: torch.optim.Optimizer | None = None

    @classmethod
    def _renamed(cls, arguments: dict[str, Any], deprecated: dict[str, Any]) -> None:
        """Move old keyword names in ``deprecated`` to their new names in ``arguments``.

        For a constructor's ``**deprecated``: each old name warns (naming the new
        one, pointing at the user's line); any other keyword is refused.

        Raises
        ------
        TypeError
            If ``deprecated`` holds a keyword that was never a name of this
            learner's, or both an old name and its new one are given.

        """
        for old, new in cls.renamed_keywords.items():
            if old not in deprecated:
                continue
            # stacklevel 4: warn -> renamed -> _renamed -> the constructor -> the user's line
            value = renamed({old: deprecated.pop(old)}, old, new, stacklevel=4)
            default = next(f.default for f in fields(cls.Hyper) if f.name == new)
            if arguments[new] != default:
                raise TypeError(f"{old} is renamed {new}: pass only {new}=")
            arguments[new] = value
        if deprecated:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(map(repr, deprecated))}")

    @property
    def standardize(self) -> bool | Literal["auto"]:
        """Whether the learner standardises its data (``False`` for learners that never do)."""
        value: bool | Literal["auto"] = getattr(self.hparams, "standardize", False)
        return value

    #: Which targets the learner accepts; set by subclasses.
    target_kind: TargetKind = "any"
    #: Whether the network's outputs are the targets' scores, one per class for labels
    #: (``False`` for metric learners, whose network gives embeddings).
    net_gives_scores: bool = True

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The outer optimiser, made on first use over ``self.parameters()``."""
        if self._optimizer is None:
            params = [p for p in self.parameters() if p.requires_grad]
            if self._optimizer_factory is None:
                # foreach: one multi-tensor kernel per update stage instead of a loop
                # over the parameters (CUDA's default; on the CPU the same numbers,
                # ~2% of a small MAML meta-iteration). fused=True was not bit-identical.
                self._optimizer = torch.optim.Adam(params, lr=self.hparams.outer_lr, foreach=True)
            else:
                self._optimizer = self._optimizer_factory(params)
        return self._optimizer

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers of meta-training by name (their state is in training checkpoints)."""
        return {"outer": self.optimizer}

    @property
    def device(self) -> torch.device:
        """Device of the meta-parameters."""
        return next(self.parameters()).device

    # -- the model -----------------------------------------------------------

    @property
    def model(self) -> LearnerModel:
        """The learner's hierarchical model as a Pyro model ``model(x, y=None)``.

        ``x`` is ``[T, N, *features]`` and ``y`` ``[T, N, O]`` (labels
        ``[T, N]``); the model has a plate ``"tasks"``, a sample site
        ``"theta"`` (each task's flat weights ``[T, P]``) drawn from the
        learner's prior and an observed site ``"y"`` from its likelihood (see
        :class:`~bayesmeta.model.TaskModel`). Pyro's inference runs on it:
        ``Predictive(learner.model, guide=learner.adapt(xs, ys).guide)``,
        ``MCMC(NUTS(learner.model)).run(x, y)``. The meta-parameters are read
        as constants, so such inference leaves them (and their ``.grad``)
        untouched.

        Raises
        ------
        NotImplementedError
            For a learner without a probabilistic model (Matching Networks).

        Notes
        -----
        ProtoNet and BayesianProtoNet return a
        :class:`~bayesmeta.model.ClassMeanModel` instead: the same plate and
        sites, with ``"theta"`` the class means in embedding space.

        """
        prior, likelihood = self._model_parts()
        return TaskModel(self.fnet, prior, likelihood, owner=self, **self._model_options())

    def meta_model(self) -> LearnerModel:
        """:attr:`model` with gradients reaching the meta-parameters.

        For meta-training the model with your own Pyro inference: e.g. SVI
        over many tasks with a guide for ``"theta"`` and an optimiser over
        ``learner.parameters()`` (type-II maximum likelihood of the prior and
        noise). :attr:`model` reads them as constants instead.
        """
        prior, likelihood = self._model_parts()
        return TaskModel(
            self.fnet, prior, likelihood, owner=self, learn=True, **self._model_options()
        )

    def adaptation_model(self) -> LearnerModel:
        """The model a new task is adapted under: :attr:`model` unless a learner plugs in a prior.

        VariationalMetaLearner adapts under the prior at its hyper-posterior
        mean, without the hyper sites.
        """
        return self.model

    def _model_options(self) -> dict[str, Any]:
        """Further :class:`~bayesmeta.model.TaskModel` arguments of :attr:`model` (none here)."""
        return {}

    def _model_parts(self) -> tuple[ThetaPrior, Likelihood]:
        """The prior over the weights and the likelihood of :attr:`model`."""
        raise NotImplementedError(
            f"{type(self).__name__} has no probabilistic model over network weights"
        )

    def _adapt_guide(
        self,
        x: Tensor,
        y: Tensor,
        batched: bool,
        guide: GuideSpec,
        *,
        steps: int | None,
        lr: float | None,
        generator: torch.Generator | None,
    ) -> GuidePosterior:
        """Fit ``guide`` by Pyro SVI on :meth:`adaptation_model` (support data ``[T, K, ...]``)."""
        model = self.adaptation_model()
        if not isinstance(model, TaskModel):
            raise TypeError(f"{type(self).__name__} does not fit Pyro guides to its model")
        start = self.fnet.flatten([p.detach() for p in self.fnet.params()])
        post = adapt_guide(
            model,
            x,
            y,
            batched,
            guide,
            steps=steps,
            lr=lr,
            generator=generator,
            start=start,
        )
        return self.with_predictive_noise(post)

    def with_predictive_noise(self, posterior: P) -> P:
        """``posterior`` as the learner's predictions use it (unchanged here).

        Learners that calibrate their predictive noise (see
        :mod:`bayesmeta.learners.noise_calibration`) swap in that noise scale.
        """
        return posterior

    # -- data checks ---------------------------------------------------------

    def _check_batch(self, batch: TaskBatch, *, need_query: bool) -> TaskBatch:
        if not isinstance(batch, TaskBatch):
            raise TypeError(f"expected a TaskBatch, got {type(batch).__name__}")
        if need_query and batch.query_x.shape[1] == 0:
            raise ValueError("the tasks have empty query sets; meta-training needs query points")
        check_like("the tasks' support_x", batch.support_x, self.fnet.params()[0])
        self._check_io(batch.support_x, batch.support_y)
        batch = batch.to(self.device)
        if self.standardize and not self.units.fitted and not self._units_checked:
            self._units_checked = True
            self._fit_units(batch)
        return batch

    def _standardizes_targets(self) -> bool:
        """Whether the learner's objective measures real targets relative to their scale."""
        return False

    def _fit_units(self, batch: TaskBatch) -> None:
        """Set :attr:`units` from a batch's support and query points."""
        x = y = None
        if self.fnet.feature_dims == 1:
            x = torch.cat([batch.support_x, batch.query_x], dim=1)
        if self._standardizes_targets() and batch.support_y.is_floating_point():
            y = torch.cat([batch.support_y, batch.query_y], dim=1)
        self.units.fit(x, y, only_off_scale=self.standardize == "auto")

    def _check_io(self, x: Tensor, y: Tensor) -> None:
        check_io(
            x,
            y,
            target_kind=self.target_kind,
            objective=self._objective_name(),
            net=self.net,
            net_gives_scores=self.net_gives_scores,
        )

    def _objective_name(self) -> str:
        return type(self).__name__

    def _support(self, support_x: Tensor, support_y: Tensor) -> tuple[Tensor, Tensor, bool]:
        """Validate support data of one task or a batch; return ``(x, y, batched)``.

        ``x`` and ``y`` come back with a leading task dimension and on the
        learner's device (data on the CPU is moved there; data on another
        device, or of another floating dtype than the weights, is refused).
        """
        x, y, batched = check_support(
            support_x, support_y, self.fnet.feature_dims, like=self.fnet.params()[0]
        )
        self._check_io(x, y)
        x, y = x.to(self.device), y.to(self.device)
        if not batched:
            x, y = x.unsqueeze(0), y.unsqueeze(0)
        return x, y, batched

    def _check_adapted(self, weights: Sequence[Tensor]) -> None:
        """Raise if test-time adaptation left NaN or infinite weights (each ``[T, ...]``)."""
        check_adapted(weights, type(self).__name__, clip_hint=hasattr(self, "inner_grad_clip"))

    # -- meta-training -----------------------------------------------------------

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        """The differentiable meta-training objective on ``batch`` (a scalar)."""
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
        batch. A non-finite loss leaves ``.grad`` empty.
        """
        return self._backward(self.meta_loss(batch))

    def _backward(self, loss: Tensor) -> float:
        """Backpropagate ``loss`` into fresh ``.grad``, unless it is not finite."""
        self.optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if math.isfinite(value):
            loss.backward()
        return value

    def _apply_gradients(self, loss_value: float) -> float:
        """Clip, check and apply the gradients held in ``.grad``; zero them after."""
        check_finite(loss_value, "the meta-training loss")
        params = [p for p in self.parameters() if p.grad is not None]
        if self.hparams.max_grad_norm is not None:
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

    def config(self) -> dict[str, Any]:
        """The constructor arguments needed to rebuild this learner (JSON-ready).

        ``{"learner": class name, **hparams, "net": spec}``: every field of
        :attr:`hparams` (those holding an object rather than a JSON value, such
        as a custom likelihood, by the name a checkpoint records for it) and
        the network's spec when it has one (see :func:`~bayesmeta.nets.net_spec`).
        ``type(learner)(net, **rest)`` rebuilds an equal learner.
        """
        cfg: dict[str, Any] = {"learner": type(self).__name__}
        cfg.update({f.name: getattr(self.hparams, f.name) for f in fields(self.hparams)})
        cfg.update(self._config_names())
        spec = net_spec(self.net)
        if spec is not None:
            cfg["net"] = spec
        return cfg

    def _config_names(self) -> dict[str, Any]:
        """JSON names of the hyper-parameters given as objects (a custom loss), by field."""
        return {}


hyper_properties(MetaLearner, LearnerHyper, frozenset())
