"""Bayesian MAML: amortised Bayesian meta-learning (Ravi & Beatson 2019), vectorised."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_count
from bayesmeta.inference.gaussian_vi import ScaleUpdate, gaussian_steps
from bayesmeta.inference.guide_svi import GuideSpec
from bayesmeta.inference.inner_loop import gradient_steps
from bayesmeta.learners.adapted import AdaptedPredictor
from bayesmeta.learners.base import MetaLearner, OptimizerFactory
from bayesmeta.learners.bayesian_maml_hyper import BayesianMAMLHyper
from bayesmeta.learners.bayesian_maml_outer import BayesianOuter
from bayesmeta.learners.hyper import LearnerHyper, pick_hyper
from bayesmeta.learners.noise_calibration import CalibratedNoise, PredictiveNoise
from bayesmeta.model.likelihoods import (
    Likelihood,
    LikelihoodName,
    make_likelihood,
)
from bayesmeta.model.prior_names import PriorName, prior_spec, tied_prior
from bayesmeta.model.priors import Flat, WeightPrior
from bayesmeta.posteriors.gaussian import GaussianTaskPosterior
from bayesmeta.posteriors.guided import GuidePosterior

__all__ = ["BayesianMAML", "BayesianMAMLHyper"]


class BayesianMAML(PredictiveNoise, BayesianOuter, MetaLearner):
    """Bayesian MAML: a learned Gaussian prior, Gaussian task posteriors found by gradient steps.

    The model is ``theta_t ~ N(mu, diag(sigma^2))``, ``y ~ p(y | f(x; theta_t))``.
    For each task, ``q(theta_t) = N(m_t, diag(s_t^2))`` starts at the prior and
    takes ``inner_steps`` gradient steps of size ``inner_lr`` on the task's
    negative ELBO per support point (reparameterised, ``inner_num_particles`` draws,
    all tasks at once). Meta-training minimises, over the prior (and the noise
    scale), the query set's negative log predictive density under the adapted
    ``q`` (or its expected negative log-likelihood, ``objective="elbo"``)
    plus ``kl_weight * KL(q_t || prior)`` per query point, averaged over
    tasks, differentiating through the inner steps.

    The prior mean *is* the network's weights (``learner.net``), as MAML's
    initialisation is; ``learner.prior.log_scale`` and the likelihood's
    ``log_scale`` are the other meta-parameters.

    Parameters
    ----------
    net
        An ``nn.Module`` or MLP layer widths.
    likelihood
        ``"gaussian"`` (learned noise scale, regression), ``"student_t"``
        (heavy-tailed noise, learned scale), ``"categorical"``
        (classification), ``"bernoulli"``, ``"mse"`` (a generalised
        likelihood without a noise model), a
        :class:`~bayesmeta.priors.Likelihood`, or any callable
        ``f -> pyro.distributions.Distribution`` (e.g.
        ``lambda f: dist.StudentT(4.0, f, 0.3)``; an ``nn.Module`` to learn
        its parameters). Predictions and metrics score with its own
        distribution. For classification
        the regression defaults of ``prior_scale`` and ``kl_weight`` keep the
        posterior at the prior (a few labels cannot outweigh a KL over every
        weight); on Conv4 5-way glyphs ``prior_scale=0.003, kl_weight=3e-4``
        worked (see the docs' Bayesian MAML page, "Classification").
    prior
        The weight prior: ``None``, ``"normal"`` or :class:`~bayesmeta.priors.Normal` (the
        default; its closed forms make the fast inner loop),
        :class:`~bayesmeta.priors.Laplace` or
        :class:`~bayesmeta.priors.StudentT`, made without a network (e.g.
        ``bm.priors.Laplace()``; or by name, ``"laplace"``, ``"student_t"``, or
        ``{"family": "student_t", "df": 5.0}``): the learner ties its location
        to the network's weights and, where it has no scale, starts it at
        ``prior_scale``. Meta-training, adaptation and predictions all use it.
    noise_scale
        Initial noise standard deviation of the Gaussian likelihood.
    learn_noise
        Meta-learn the noise scale.
    prior_scale
        Initial prior standard deviation (also the task posteriors' initial one).
    scale_per
        One prior scale per ``"weight"`` or per parameter ``"tensor"``.
    posterior
        ``"gaussian"``, or ``"delta"`` (a point mass: no sampling and no KL
        term; with ``likelihood="mse"`` this is exactly :class:`~bayesmeta.MAML`).
    inner_lr, inner_steps
        Step size and number of inner steps in meta-training.
    adapt_steps
        Steps at test time (:meth:`adapt`); defaults to ``inner_steps``
        (was ``eval_inner_steps``).
    inner_num_particles
        Reparameterised weight draws per task in each inner step: the
        particles of the tasks' inner ELBO (was ``num_samples``).
    objective
        The query term of the outer objective: ``"predictive"``, the negative
        log posterior-predictive density of each query point,
        ``-log (1/S) sum_s p(y | theta_s)`` (what the predictions are scored
        by; it rewards a predictive spread that matches the errors), or
        ``"elbo"``, the expected negative log-likelihood
        ``E_q[-log p(y | theta)]`` (the ELBO's data term, as in ABML; it
        penalises any spread of ``q`` and tends to be over-confident).
        Both equal for ``num_particles=1``.
    num_particles
        Reparameterised draws ``S`` in the outer objective: its particles
        (was ``outer_samples``).
    particle_chunk
        Backpropagate the outer objective's particles this many at a time
        (``None``: all at once). The meta-gradient is the same (a first pass
        without a graph gives each particle's weight in the log-mean-exp), but
        only one chunk's query activations are held at once: less memory for
        wide networks and many query points, for one more forward pass.
    task_chunk
        Backpropagate the meta-batch's tasks this many at a time (``None``: all
        at once; see :mod:`bayesmeta.learners.task_chunks`). The meta-loss is a
        mean over tasks, so the meta-gradient is the same (the random draws are
        made per chunk), but only one chunk's inner loop graph is held at once;
        combines with ``particle_chunk``.
    kl_weight
        Weight of the KL terms (1: the ELBO).
    scale_update, scale_rate
        How the inner steps move ``q``'s scales: ``"natural"`` (a natural-
        gradient step on the precision at rate ``scale_rate``, using the
        reparameterisation estimate of the curvature; the scales shrink to
        their data-determined size in a few steps) or ``"gradient"`` (plain
        gradient steps on ``log scale``, which move by ``O(scale^2)`` and so
        leave a tight prior's scales almost unchanged). See
        :func:`~bayesmeta.inference.gaussian_vi.gaussian_steps`.
    first_order
        Treat the inner gradients as constants in the meta-gradient.
    outer_lr, optimizer, max_grad_norm, standardize
        See :class:`~bayesmeta.learners.MetaLearner`.
    calibrate_noise
        With a Gaussian likelihood, predict with a noise scale estimated from
        every meta-training batch's query errors after adaptation (see
        :mod:`bayesmeta.learners.noise_calibration`), rather than with the
        likelihood's slowly learned scale, which the inner loop keeps using:
        intervals start wide and stay calibrated on the training tasks as the
        learner improves. :meth:`fit_noise_scale` re-estimates it on
        held-out tasks. ``False``: predict with the likelihood's scale.
    **deprecated
        The old names ``eval_inner_steps``, ``num_samples`` and
        ``outer_samples``, accepted with a DeprecationWarning for one release.

    Notes
    -----
    Hyper-parameters are in :attr:`hparams` (a :class:`BayesianMAMLHyper`).

    """

    hparams: BayesianMAMLHyper
    Hyper: ClassVar[type[LearnerHyper]] = BayesianMAMLHyper
    hyper_not_attributes: ClassVar[frozenset[str]] = frozenset(
        {"likelihood", "prior", "noise_scale"}
    )
    renamed_keywords: ClassVar[dict[str, str]] = {
        "eval_inner_steps": "adapt_steps",
        "num_samples": "inner_num_particles",
        "outer_samples": "num_particles",
    }

    def __init__(
        self,
        net: nn.Module | Sequence[int],
        *,
        likelihood: LikelihoodName | Likelihood | Callable[[Tensor], Any] = "gaussian",
        prior: WeightPrior | PriorName | dict[str, Any] | None = None,
        noise_scale: float = 0.1,
        learn_noise: bool = True,
        prior_scale: float = 0.01,
        scale_per: Literal["weight", "tensor"] = "weight",
        posterior: Literal["gaussian", "delta"] = "gaussian",
        inner_lr: float = 0.01,
        inner_steps: int = 5,
        adapt_steps: int | None = None,
        inner_num_particles: int = 1,
        objective: Literal["predictive", "elbo"] = "predictive",
        num_particles: int = 8,
        particle_chunk: int | None = None,
        task_chunk: int | None = None,
        kl_weight: float = 1.0,
        scale_update: ScaleUpdate = "natural",
        scale_rate: float = 0.5,
        first_order: bool = False,
        outer_lr: float = 1e-3,
        optimizer: OptimizerFactory | None = None,
        max_grad_norm: float | None = None,
        standardize: bool | Literal["auto"] = "auto",
        calibrate_noise: bool = True,
        **deprecated: Any,
    ) -> None:
        args = locals()
        self._renamed(args, deprecated)
        super().__init__(net, pick_hyper(BayesianMAMLHyper, args), optimizer=optimizer)
        hp = self.hparams
        likelihood, prior = hp.likelihood, hp.prior
        outputs = int(getattr(self.net, "out_features", 1))
        self.likelihood = make_likelihood(likelihood, hp.noise_scale, hp.learn_noise, outputs)
        self.likelihood.bind_units(self.units)
        #: The predictive noise estimate (used when :meth:`calibrates_noise`).
        self.calibration = CalibratedNoise()
        self.likelihood_name = likelihood if isinstance(likelihood, str) else "custom"
        self.target_kind = "classification" if self.likelihood.classification else "regression"
        self.prior = tied_prior(prior, hp.scale_per, self.fnet, hp.prior_scale)
        self.prior_family = prior_spec(self.prior)

    def _objective_name(self) -> str:
        return f"BayesianMAML with likelihood {self.likelihood_name!r}"

    def _delta_steps(
        self, x: Tensor, y: Tensor, *, steps: int, differentiable: bool
    ) -> tuple[Tensor, ...]:
        """Point-mass adaptation: MAML's steps on the likelihood, preconditioned like q's."""
        scale = self.likelihood.step_scale()
        lr = self.hparams.inner_lr if isinstance(scale, float) else self.hparams.inner_lr * scale
        return gradient_steps(
            self.fnet,
            self.fnet.expand(self.fnet.params(), x.shape[:1]),
            x,
            y,
            self.likelihood,
            steps=steps,
            lr=lr,
            first_order=self.hparams.first_order,
            differentiable=differentiable,
        )

    # -- meta-training -----------------------------------------------------------

    def _inner_posterior(
        self,
        x: Tensor,
        y: Tensor,
        *,
        steps: int,
        differentiable: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``q(theta_t)``'s mean and log-scale ``[T, P]`` after ``steps`` inner steps."""
        hp = self.hparams
        return gaussian_steps(
            self.fnet,
            self.prior,
            self.likelihood,
            x,
            y,
            steps=steps,
            lr=hp.inner_lr,
            num_samples=hp.inner_num_particles,
            kl_weight=hp.kl_weight,
            scale_update=hp.scale_update,
            scale_rate=hp.scale_rate,
            first_order=hp.first_order,
            differentiable=differentiable,
            generator=generator,
        )

    # -- test time -----------------------------------------------------------------

    def adapt(
        self,
        support_x: Tensor,
        support_y: Tensor,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        guide: GuideSpec | None = None,
        lr: float | None = None,
    ) -> GaussianTaskPosterior | AdaptedPredictor | GuidePosterior:
        """Infer the task posterior(s) from support data.

        Parameters
        ----------
        support_x
            ``[K, *features]`` for one task or ``[T, K, *features]`` for ``T``.
        support_y
            Matching targets.
        steps
            Inner steps; defaults to ``adapt_steps`` (with ``guide``: SVI
            steps, default :data:`~bayesmeta.inference.guide_svi.GUIDE_STEPS`).
        generator
            Random generator for the reparameterisation noise of the inner
            steps (on the learner's device); ``None`` uses torch's global one.
        guide
            Any Pyro guide for the weights: an autoguide class (e.g.
            ``pyro.infer.autoguide.AutoLowRankMultivariateNormal``) or a guide
            callable. It is fitted by ``pyro.infer.SVI``-style steps of
            ``Trace_ELBO`` on :attr:`model` under the meta-learned prior
            (started at the prior's location), leaving the meta-parameters
            untouched.
        lr
            SVI learning rate with ``guide``.

        Returns
        -------
        GaussianTaskPosterior or AdaptedPredictor or GuidePosterior
            The posterior (its ``predict(query_x, num_samples=...)`` gives a
            :class:`~bayesmeta.Prediction` with epistemic and aleatoric parts;
            ``post.guide`` is its Pyro guide), or, for ``posterior="delta"``,
            the adapted point estimate, or with ``guide`` the fitted guide's
            posterior.

        Raises
        ------
        ValueError
            If the support data has the wrong shape, dtype or device, or holds
            NaN or infinite values (the message names the argument).
        NonFiniteLossError
            If the inner loop diverged: some task's posterior is NaN or infinite.

        """
        x, y, batched = self._support(support_x, support_y)
        if guide is not None:
            return self._adapt_guide(x, y, batched, guide, steps=steps, lr=lr, generator=generator)
        steps = (
            self.hparams.adapt_steps if steps is None else check_count("steps", steps, minimum=0)
        )
        noise = self.predictive_noise()
        observation = self.likelihood.observation()
        if self.hparams.posterior == "delta":
            params = self._delta_steps(x, y, steps=steps, differentiable=False)
            self._check_adapted(params)
            if not batched:
                params = tuple(p[0] for p in params)
            return AdaptedPredictor(
                self.fnet, params, noise, self.likelihood.classification, observation
            )
        loc, log_scale = self._inner_posterior(
            x, y, steps=steps, differentiable=False, generator=generator
        )
        self._check_adapted((loc, log_scale))
        if not batched:
            loc, log_scale = loc[0], log_scale[0]
        return GaussianTaskPosterior(
            self.fnet,
            loc,
            log_scale,
            noise,
            self.likelihood.classification,
            observation=observation,
        )

    def _standardizes_targets(self) -> bool:
        return self.likelihood.target_units

    def _model_parts(self) -> tuple[WeightPrior | Flat, Likelihood]:
        """The learned prior and the likelihood (``posterior="delta"``: a point mass in it)."""
        return self.prior, self.likelihood

    def _config_names(self) -> dict[str, Any]:
        """A likelihood or prior given as an object is recorded by name ("custom") or spec."""
        hp = self.hparams
        names: dict[str, Any] = {}
        if not isinstance(hp.likelihood, str):
            names["likelihood"] = self.likelihood_name
        if not (hp.prior is None or isinstance(hp.prior, str | dict)):
            names["prior"] = self.prior_family
        return names
