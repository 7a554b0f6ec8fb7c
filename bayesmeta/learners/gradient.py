"""What MAML, first-order MAML and Reptile share: a module, an inner loop, a fit loop.

A :class:`GradientMetaLearner` is a ``torch.nn.Module`` whose parameters are the
meta-parameters: the network's initial weights (``self.net``) and, with
``learn_inner_lr=True``, one inner step size per weight (Meta-SGD). So
``learner.parameters()``, ``state_dict()`` and ``load_state_dict()`` work as
for any module. Subclasses define :meth:`meta_loss` (and Reptile
:meth:`meta_gradients`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_count
from bayesmeta.inference.guide_svi import GuideSpec
from bayesmeta.inference.inner_loop import gradient_steps
from bayesmeta.learners.adapted import AdaptedPredictor
from bayesmeta.learners.base import MetaLearner, OptimizerFactory, TargetKind
from bayesmeta.learners.hyper import GradientHyper, LearnerHyper
from bayesmeta.model.likelihoods import (
    CategoricalLikelihood,
    GaussianLikelihood,
    Likelihood,
    MSELikelihood,
)
from bayesmeta.model.priors import Flat
from bayesmeta.nets.losses import StandardizedMSE, TaskLoss, get_loss
from bayesmeta.posteriors.guided import GuidePosterior
from bayesmeta.tasks.task import TaskBatch

__all__ = ["GradientMetaLearner", "OptimizerFactory"]


class GradientMetaLearner(MetaLearner):
    """Base of the gradient-based meta-learners (see :class:`~bayesmeta.MAML`).

    Its hyper-parameters are a :class:`~bayesmeta.learners.hyper.GradientHyper`
    (or a subclass: :class:`~bayesmeta.learners.maml.MAMLHyper`, ...), given as
    ``hparams`` or as keywords, as for :class:`~bayesmeta.learners.MetaLearner`.
    The learners' constructors document them:

    Parameters
    ----------
    net
        The network: any ``nn.Module`` mapping ``[N, *features]`` to
        ``[N, O]``, or a tuple of layer widths for an :class:`~bayesmeta.nets.MLP`.
    hparams
        The hyper-parameters, or ``None`` to build them from ``**hyper``.
    optimizer
        Factory ``params -> torch.optim.Optimizer`` replacing the default.
    **hyper
        The fields of :attr:`Hyper`:

        - ``inner_lr``: inner-loop step size (the initial value when
          ``learn_inner_lr``);
        - ``inner_steps``: gradient steps on each task's support set during
          meta-training;
        - ``adapt_steps``: steps at test time (:meth:`adapt`); defaults to
          ``inner_steps``;
        - ``learn_inner_lr`` (MAML): meta-learn one inner step size per weight
          (Meta-SGD, Li et al. 2017);
        - ``loss``: ``"mse"`` (regression), ``"cross_entropy"``
          (classification) or a per-task loss ``(pred [*B, N, O], y) -> [*B]``;
        - ``outer_lr``: learning rate of the default optimiser (Adam);
        - ``max_grad_norm``: clip the meta-gradient to this norm (``None``:
          no clipping);
        - ``inner_grad_clip``: clip each task's inner-loop gradient to this
          norm (``None``: no clipping). A guard for long meta-training runs in
          which the learned initialisation drifts to where a few plain steps
          overshoot and diverge on some tasks (seen with first-order MAML on
          sinusoids);
        - ``standardize``: standardise vector inputs and, with ``loss="mse"``,
          the targets inside the learner (see
          :class:`~bayesmeta.learners.MetaLearner`); the squared error of the
          inner and outer loops is then measured in units of the targets'
          standard deviation, so ``inner_lr`` means the same whatever the
          data's units. A custom loss sees the targets as given.

    """

    hparams: GradientHyper
    Hyper: ClassVar[type[LearnerHyper]] = GradientHyper
    renamed_keywords: ClassVar[dict[str, str]] = {"eval_inner_steps": "adapt_steps"}

    def __init__(
        self,
        net: nn.Module | Sequence[int],
        hparams: GradientHyper | None = None,
        *,
        optimizer: OptimizerFactory | None = None,
        **hyper: Any,
    ) -> None:
        super().__init__(net, hparams, optimizer=optimizer, **hyper)
        hp = self.hparams
        loss = hp.loss
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
        self._loss = get_loss(loss)  # type: ignore[arg-type]
        kinds: dict[str, TargetKind] = {"mse": "regression", "cross_entropy": "classification"}
        self.target_kind = kinds.get(self.loss_name, "any")
        self.inner_lrs: nn.ParameterList | None = None
        if getattr(hp, "learn_inner_lr", False):
            self.inner_lrs = nn.ParameterList(
                nn.Parameter(torch.full_like(p, hp.inner_lr)) for p in self.fnet.params()
            )
        # Fitted observation-noise scale [O]; empty until fit_noise_scale is called.
        self.noise_scale: Tensor
        self.register_buffer("noise_scale", torch.zeros(0))

    def _config_names(self) -> dict[str, Any]:
        """A custom loss is recorded by its function's name."""
        return {"loss": self.loss_name}

    def _model_parts(self) -> tuple[Flat, Likelihood]:
        """A flat prior and the loss as a likelihood (the point-mass case of the model).

        Regression scores with Gaussian noise of the fitted ``noise_scale``
        (:meth:`fit_noise_scale`), or without one with the squared error's
        Gibbs likelihood ``Normal(f, sqrt(O / 2))``; classification with a
        categorical likelihood on the scores. A custom loss has no model.
        """
        if self.loss_name == "cross_entropy":
            return self._flat(), CategoricalLikelihood()
        if self.loss_name != "mse":
            raise NotImplementedError(
                f"a custom loss ({self.loss_name!r}) has no likelihood, so {type(self).__name__} "
                "has no probabilistic model; use loss='mse' or 'cross_entropy'"
            )
        if self.noise_scale.numel():
            noise = self.noise_scale.detach()
            lik = GaussianLikelihood(1.0, num_outputs=noise.numel(), learn_scale=False)
            lik.log_scale.data.copy_(noise.log().to(lik.log_scale))
            return self._flat(), lik.to(noise.device)
        return self._flat(), MSELikelihood()

    @property
    def loss_fn(self) -> TaskLoss:
        """The per-task loss of the inner and outer loops, ``(out, y) -> [*B]``.

        With standardised targets the squared error is measured in units of
        their standard deviation (:class:`~bayesmeta.nets.losses.StandardizedMSE`).
        """
        scale = self.units.target_scale()
        if scale is None or self.loss_name != "mse":
            return self._loss
        return StandardizedMSE(scale)

    def _standardizes_targets(self) -> bool:
        return self.loss_name == "mse"

    def _flat(self) -> Flat:
        start = self.fnet.flatten([p.detach() for p in self.fnet.params()])
        return Flat(self.fnet.num_params, at=start)

    def inner_rates(self) -> float | tuple[Tensor, ...]:
        """The inner step size: a float, or one tensor per weight (Meta-SGD)."""
        return self.hparams.inner_lr if self.inner_lrs is None else tuple(self.inner_lrs)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # The noise scale's shape is set by fit_noise_scale; take the saved one's shape.
        key = prefix + "noise_scale"
        if key in state_dict:
            self.noise_scale = torch.empty_like(state_dict[key], device=self.noise_scale.device)
        super()._load_from_state_dict(state_dict, prefix, *args)

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
            max_grad_norm=self.hparams.inner_grad_clip,
        )

    # -- test time -------------------------------------------------------------

    def adapt(
        self,
        support_x: Tensor,
        support_y: Tensor,
        *,
        steps: int | None = None,
        guide: GuideSpec | None = None,
        lr: float | None = None,
        generator: torch.Generator | None = None,
    ) -> AdaptedPredictor | GuidePosterior:
        """Adapt the meta-learned weights to new task(s).

        Parameters
        ----------
        support_x
            ``[K, *features]`` for one task, or ``[T, K, *features]`` for ``T``.
        support_y
            ``[K, O]`` (or ``[K]`` labels), or with a leading ``T``.
        steps
            Gradient steps; defaults to ``adapt_steps`` (with ``guide``:
            SVI steps, default ``GUIDE_STEPS``).
        guide
            A Pyro autoguide class or guide callable: instead of gradient
            steps, fit it by SVI on :attr:`model` (flat prior: the likelihood
            alone), started at the meta-learned weights.
        lr
            SVI learning rate with ``guide`` (default ``GUIDE_LR``).
        generator
            Seeds the SVI noise with ``guide``.

        Returns
        -------
        AdaptedPredictor or GuidePosterior
            Detached adapted weights (``predict(query_x)`` gives a
            :class:`~bayesmeta.Prediction`; ``guide`` is their point mass), or
            with ``guide`` the fitted guide's posterior.

        Raises
        ------
        ValueError
            If the support data has the wrong shape, dtype or device, or holds
            NaN or infinite values (the message names the argument).
        NonFiniteLossError
            If the inner loop diverged: some task's adapted weights are NaN or
            infinite.

        """
        if guide is not None:
            xg, yg, batched = self._support(support_x, support_y)
            return self._adapt_guide(
                xg, yg, batched, guide, steps=steps, lr=lr, generator=generator
            )
        steps = (
            self.hparams.adapt_steps if steps is None else check_count("steps", steps, minimum=0)
        )
        xb, yb, batched = self._support(support_x, support_y)
        params = self._adapted(xb, yb, steps=steps, first_order=True, differentiable=False)
        self._check_adapted(params)
        if not batched:
            params = tuple(p[0] for p in params)
        noise = self.noise_scale.detach() if self.noise_scale.numel() else None
        return AdaptedPredictor(self.fnet, params, noise, classification=not yb.is_floating_point())

    def predictive_noise(self) -> Tensor | None:
        """The fitted noise scale ``[O]`` (:meth:`fit_noise_scale`); ``None`` before it."""
        return self.noise_scale.detach() if self.noise_scale.numel() else None

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
