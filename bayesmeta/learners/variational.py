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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_count
from bayesmeta.inference.guide_svi import GuideSpec
from bayesmeta.inference.task_svi import INIT_SCALE_RATIO, task_posterior_svi
from bayesmeta.learners.base import OptimizerFactory, positive
from bayesmeta.learners.hyper import (
    LearnerHyper,
    check_standardize,
    pick_hyper,
)
from bayesmeta.learners.noise_calibration import CalibratedNoise
from bayesmeta.learners.variational_fit import HierarchicalSVI
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
from bayesmeta.tasks.task import TaskBatch

__all__ = ["VariationalHyper", "VariationalMetaLearner"]

GuideName = Literal["normal", "lowrank"]


@dataclass(frozen=True)
class VariationalHyper(LearnerHyper):
    """:class:`VariationalMetaLearner`'s hyper-parameters (see its parameters for each field).

    ``num_particles`` are the draws of the meta-training ELBO (Pyro's
    particles); ``adapt_steps`` and ``adapt_lr`` are test-time adaptation's.
    """

    likelihood: Any = "gaussian"
    noise_scale: float = 0.1
    learn_noise: bool = True
    prior_scale: float = 0.1
    hyper_loc: Literal["zeros", "module"] = "zeros"
    hyper_loc_std: float = 1.0
    hyper_log_scale_std: float | None = 1.0
    scale_per: Literal["weight", "tensor"] = "weight"
    hyper_kl_weight: float = 1.0
    num_particles: int = 1
    adapt_steps: int = 300
    adapt_lr: float = 0.05
    guide: GuideName = "normal"
    rank: int = 10
    outer_lr: float = 1e-2
    standardize: bool | Literal["auto"] = "auto"
    calibrate_noise: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("noise_scale", float(self.noise_scale))
        self._set("learn_noise", bool(self.learn_noise))
        self._set("prior_scale", positive("prior_scale", self.prior_scale))
        self._set("hyper_loc_std", positive("hyper_loc_std", self.hyper_loc_std))
        if self.hyper_log_scale_std is not None:
            std = positive("hyper_log_scale_std", self.hyper_log_scale_std)
            self._set("hyper_log_scale_std", std)
        self._set("hyper_kl_weight", positive("hyper_kl_weight", self.hyper_kl_weight))
        check_count("num_particles", self.num_particles, minimum=1)
        check_count("adapt_steps", self.adapt_steps, minimum=0)
        self._set("adapt_lr", positive("adapt_lr", self.adapt_lr))
        _check_guide(self.guide)
        check_count("rank", self.rank, minimum=1)
        check_standardize(self.standardize)
        self._set("calibrate_noise", bool(self.calibrate_noise))


class VariationalMetaLearner(HierarchicalSVI):
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

    hparams: VariationalHyper
    Hyper: ClassVar[type[LearnerHyper]] = VariationalHyper
    hyper_not_attributes: ClassVar[frozenset[str]] = frozenset({"likelihood", "noise_scale"})

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
        hp = pick_hyper(VariationalHyper, locals())
        super().__init__(net, hp, optimizer=optimizer)
        outputs = int(getattr(self.net, "out_features", 1))
        self.likelihood = make_likelihood(hp.likelihood, hp.noise_scale, hp.learn_noise, outputs)
        self.likelihood.bind_units(self.units)
        #: The predictive noise estimate (see ``calibrate_noise``).
        self.calibration = CalibratedNoise()
        self.likelihood_name = hp.likelihood if isinstance(hp.likelihood, str) else "custom"
        self.target_kind = (
            "classification" if isinstance(self.likelihood, CategoricalLikelihood) else "regression"
        )
        self.prior = HierarchicalGaussianPrior.for_net(
            self.fnet,
            loc=hp.hyper_loc,
            loc_std=hp.hyper_loc_std,
            scale=hp.prior_scale,
            log_scale_std=hp.hyper_log_scale_std,
            scale_per=hp.scale_per,
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
        steps = (
            self.hparams.adapt_steps if steps is None else check_count("steps", steps, minimum=0)
        )
        lr = self.hparams.adapt_lr if lr is None else positive("lr", lr)
        if guide is not None and not isinstance(guide, str):
            xg, yg, batched_g = self._support(support_x, support_y)
            return self._adapt_guide(
                xg, yg, batched_g, guide, steps=steps, lr=lr, generator=generator
            )
        kind = self.hparams.guide if guide is None else _check_guide(guide)
        r = self.hparams.rank if rank is None else check_count("rank", rank, minimum=1)
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
            num_particles=self.hparams.num_particles,
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

    def _config_names(self) -> dict[str, Any]:
        """A likelihood given as an object is recorded as ``"custom"``."""
        likelihood = self.hparams.likelihood
        return {} if isinstance(likelihood, str) else {"likelihood": "custom"}


def _check_guide(guide: str) -> GuideName:
    if guide not in ("normal", "lowrank"):
        raise ValueError(
            f"guide must be 'normal', 'lowrank', a Pyro autoguide class or a guide callable, "
            f"got {guide!r}"
        )
    return guide  # type: ignore[return-value]
