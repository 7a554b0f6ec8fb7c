"""What every learner shares: meta-parameters, hyper-parameters, an optimiser and checks.

A learner is an ``nn.Module`` of meta-parameters with its hyper-parameters (a frozen
dataclass, :mod:`bayesmeta.learners.hyper`), an outer optimiser, input checks and the
meta-training loop (inherited from :class:`~bayesmeta.learners.meta_training.MetaTraining`).
Subclasses define ``meta_loss`` and ``adapt`` (and ``meta_gradients`` where an update is
not a gradient step on ``meta_loss``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_like, check_support, positive
from bayesmeta._deprecated import renamed
from bayesmeta.inference.guide_svi import GuideSpec, adapt_guide
from bayesmeta.learners.data_checks import check_adapted, check_io
from bayesmeta.learners.hyper import LearnerHyper, hyper_properties, renamed_properties
from bayesmeta.learners.meta_training import MetaTraining
from bayesmeta.model.learner_model import LearnerModel
from bayesmeta.model.likelihoods import Likelihood
from bayesmeta.model.task_model import TaskModel, ThetaPrior
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.nets.mlp import MLP
from bayesmeta.nets.spec import net_spec
from bayesmeta.nets.units import Units
from bayesmeta.posteriors.guided import GuidePosterior
from bayesmeta.tasks.task import TaskBatch

__all__ = ["MetaLearner", "OptimizerFactory", "TargetKind", "positive"]

P = TypeVar("P")
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
TargetKind = Literal["regression", "classification", "any"]


class MetaLearner(MetaTraining):
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

    def predictive_noise(self) -> Tensor | None:
        """The observation-noise scale ``[O]`` that predictions use, or ``None``.

        ``None`` here: a learner without a noise model (the classifiers).
        Regression learners return their fitted, calibrated or meta-learned
        scale, as the run's ``metrics.json`` reports it.
        """
        return None

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
        like = self.fnet.params()[0]
        check_like("the tasks' support_x", batch.support_x, like)
        self._check_io(batch.support_x, batch.support_y)
        batch = batch.to(like.device)  # the learner's device, without a second module walk
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
        like = self.fnet.params()[0]
        x, y, batched = check_support(support_x, support_y, self.fnet.feature_dims, like=like)
        self._check_io(x, y)
        # The learner's device, read from the weights in hand: self.device walks the modules
        # (8 us a call, a tenth of a 5-way metric learner's adapt).
        x, y = x.to(like.device), y.to(like.device)
        if not batched:
            x, y = x.unsqueeze(0), y.unsqueeze(0)
        return x, y, batched

    def _check_adapted(self, weights: Sequence[Tensor]) -> None:
        """Raise if test-time adaptation left NaN or infinite weights (each ``[T, ...]``)."""
        check_adapted(weights, type(self).__name__, clip_hint=hasattr(self, "inner_grad_clip"))

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
