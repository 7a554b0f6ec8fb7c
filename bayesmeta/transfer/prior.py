"""Model-based transfer: a Gaussian prior centred on a source network's weights."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_count
from bayesmeta._deprecated import MISSING, renamed
from bayesmeta.inference.guide_svi import GuideSpec, adapt_guide
from bayesmeta.learners.adapted import AdaptedPredictor
from bayesmeta.learners.hyper import hyper_properties, pick_hyper, renamed_properties
from bayesmeta.model.likelihoods import CategoricalLikelihood, GaussianLikelihood, Likelihood
from bayesmeta.model.priors import Normal
from bayesmeta.model.task_model import TaskModel
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import GaussianTaskPosterior
from bayesmeta.posteriors.guided import GuidePosterior
from bayesmeta.tasks.task import TaskBatch
from bayesmeta.transfer.fitting import TransferFit
from bayesmeta.transfer.hyper import TransferHyper, TransferMethod
from bayesmeta.transfer.laplace import (
    LaplacePosterior,
)
from bayesmeta.transfer.predictive_noise import fit_predictive_noise, with_noise
from bayesmeta.transfer.prior_state import SourcePriorState
from bayesmeta.transfer.source import free_mask, load_source

__all__ = ["TransferLearner"]


#: The prior scale that stands for "held at the source weights" in :attr:`TransferLearner.model`.
FROZEN_SCALE = 1e-6


class TransferLearner(SourcePriorState):
    """Learn target tasks from a few examples under a prior centred on source weights.

    The target weights get the prior ``theta ~ N(mu, sigma^2)``, with ``mu`` the
    source network's weights and one scale ``sigma`` per parameter tensor
    (``scale_per="tensor"``) or one for all (``"global"``): ``sigma`` says how
    far the target may move from what the source domain taught. Three methods
    share this prior (see :mod:`bayesmeta.transfer.fitting`):

    - ``"bayes"``: a mean-field Gaussian posterior by SVI on the target data;
      predictions carry epistemic uncertainty;
    - ``"map"``: the posterior mode, which is L2-SP (weight decay towards the
      source weights);
    - ``"finetune"``: plain fine-tuning from the source weights (the
      flat-prior limit), regularised only by the number of steps.

    The prior scale is given (a float), or chosen per target task by empirical
    Bayes (``"empirical"``: maximising the ELBO over it), or learned once from
    a few related target tasks with :meth:`fit_prior` and then kept.

    Parameters
    ----------
    source
        The source-domain network, or its ``state_dict``.
    net
        The target network; a copy of ``source`` by default (required when
        ``source`` is a state dict). Its parameters must match the source's in
        names and shapes.
    method
        ``"bayes"``, ``"map"`` or ``"finetune"``.
    prior_scale
        The prior standard deviation, or ``"empirical"`` (``"bayes"`` only).
    scale_per
        ``"tensor"`` (one scale per parameter tensor) or ``"global"``.
    likelihood
        ``"gaussian"`` (regression targets ``[K, O]``) or ``"categorical"``
        (labels ``[K]``, the network's outputs being class scores).
    noise_scale
        Starting Gaussian noise standard deviation.
    learn_noise
        Fit the noise scale on each target task (by the method's objective);
        ``False`` keeps ``noise_scale``.
    freeze
        Names (or name prefixes) of parameters kept at the source values, e.g.
        the first layers of a network: a partly frozen network.
    init_prior_scale
        Where empirical Bayes (``"empirical"`` or :meth:`fit_prior`) starts the
        prior scales.
    laplace_rounds
        ``"laplace"`` with learned scales alternates MAP fits and evidence
        maximisation this many times (MacKay's loop); a prior far from its
        fitted value (e.g. a network trained from scratch) needs more rounds.
    steps, lr
        Adam steps and learning rate for each adaptation.
    num_particles
        Monte Carlo samples of the objective per step (``"bayes"``), as Pyro's
        ``num_particles``; ``num_samples``, its old name, is accepted with a
        ``DeprecationWarning`` until the next release.
    seed
        Seeds the Monte Carlo noise of every fit (``None``: torch's global
        generator).
    progress
        Progress bars on fits (``None``: only on a terminal).

    Notes
    -----
    A transfer learner has no ``meta_fit``: it is not meta-trained. Its prior is
    centred on the source network, and :meth:`fit_prior` fits the prior's (and
    noise) scales to related target tasks by empirical Bayes, with no
    meta-training loop to checkpoint or resume. ``bayesmeta run`` trains it
    through the registry's ``fit`` hook, the one call it makes for every learner.
    Its hyper-parameters are :attr:`hparams` (a
    :class:`~bayesmeta.transfer.TransferHyper`).

    Attributes
    ----------
    prior_scale_ : Tensor or None
        Per-group prior scales ``[G]`` learned by :meth:`fit_prior`.
    noise_scale_ : Tensor or None
        Noise scale ``[O]`` learned by :meth:`fit_prior` (adaptation uses it).
    predictive_noise_ : Tensor or None
        Noise scale ``[O]`` that predictions use, set by :meth:`fit_noise_scale`
        (``None``: the noise adaptation used).
    last_fit_ : TransferFit or None
        The raw result of the latest fit, with its objective trace.

    Examples
    --------
    >>> from bayesmeta.nets import MLP
    >>> source = MLP((1, 16, 1))  # trained on the source domain
    >>> learner = TransferLearner(source, steps=20)
    >>> posterior = learner.adapt(torch.randn(5, 1), torch.randn(5, 1))
    >>> posterior.predict(torch.randn(7, 1)).mean.shape
    torch.Size([7, 1])

    """

    #: Old keyword names, ``{old: new}`` (a checkpoint's config may hold them).
    renamed_keywords: ClassVar[dict[str, str]] = {"num_samples": "num_particles"}

    def __init__(
        self,
        source: nn.Module | Mapping[str, Tensor],
        *,
        net: nn.Module | None = None,
        method: TransferMethod = "bayes",
        prior_scale: float | Literal["empirical"] = "empirical",
        scale_per: Literal["tensor", "global"] = "tensor",
        likelihood: Literal["gaussian", "categorical"] = "gaussian",
        noise_scale: float = 0.1,
        learn_noise: bool = True,
        freeze: Sequence[str] = (),
        init_prior_scale: float = 0.1,
        laplace_rounds: int = 2,
        steps: int = 1000,
        lr: float = 1e-2,
        num_particles: int = 4,
        seed: int | None = 0,
        progress: bool | None = None,
        **deprecated: int,
    ) -> None:
        old = renamed(deprecated, "num_samples", "num_particles")
        num_particles = num_particles if old is MISSING else old
        #: The hyper-parameters (a frozen dataclass); each reads as an attribute too.
        self.hparams = pick_hyper(TransferHyper, locals())
        self.net = load_source(source, net)
        self.fnet = FunctionalNet(self.net)
        self.progress = progress
        self.free = free_mask(self.fnet, freeze)
        with torch.no_grad():
            self.centre = self.fnet.flatten([p.detach() for p in self.fnet.params()]).clone()
        self.init: Tensor | None = None
        self.prior_scale_: Tensor | None = None
        self.noise_scale_: Tensor | None = None
        self.predictive_noise_: Tensor | None = None
        self.last_fit_: TransferFit | None = None

    @classmethod
    def from_scratch(
        cls,
        net: nn.Module,
        *,
        prior_scale: float | Literal["empirical"] = 1.0,
        init_prior_scale: float = 1.0,
        **kwargs: object,
    ) -> TransferLearner:
        """The no-transfer baseline: a prior ``N(0, sigma^2)`` centred at zero.

        The fit starts from ``net``'s current (random) weights, and empirical
        Bayes from ``init_prior_scale``; the other keyword arguments are the
        constructor's.
        """
        learner = cls(
            net,
            prior_scale=prior_scale,
            init_prior_scale=init_prior_scale,
            **kwargs,  # type: ignore[arg-type]
        )
        learner.init = learner.centre
        learner.centre = torch.zeros_like(learner.centre)
        return learner

    @property
    def model(self) -> TaskModel:
        """The transfer model as a Pyro model ``model(x, y=None)``: the one hierarchical model.

        ``theta ~ Normal(source weights, sigma^2)`` per task (plate
        ``"tasks"``, site ``"theta"`` ``[T, P]``), with ``sigma`` the fitted
        prior scales (:meth:`fit_prior`), else the given ``prior_scale``, else
        ``init_prior_scale``; frozen layers get a negligible scale
        (``FROZEN_SCALE``), i.e. they stay at the source weights. ``"y"`` from
        the likelihood: Gaussian with the fitted (else initial) noise scale,
        or categorical. The source weights are read as constants.
        """
        if self.prior_scale_ is not None:
            per_group = self.prior_scale_.detach().reshape(-1)
        else:
            value = self.prior_scale if isinstance(self.prior_scale, float) else None
            per_group = torch.full((self.num_groups,), value or self.init_prior_scale)
        scale = per_group.to(self.centre)[self.groups().to(self.centre.device)]
        scale = torch.where(self.free.to(torch.bool), scale, torch.full_like(scale, FROZEN_SCALE))
        prior = Normal(self.centre, scale, learn_loc=False, learn_scale=False)
        likelihood: Likelihood
        if self.classification:
            likelihood = CategoricalLikelihood()
        else:
            noise = self.noise_scale_ if self.noise_scale_ is not None else None
            outputs = int(getattr(self.net, "out_features", 1))
            likelihood = GaussianLikelihood(
                self.noise_scale, num_outputs=outputs, learn_scale=False
            )
            if noise is not None:
                likelihood.log_scale.data.copy_(noise.detach().reshape(-1).log())
        return TaskModel(self.fnet, prior, likelihood, owner=self.net)

    def fit_prior(
        self,
        support_x: Tensor,
        support_y: Tensor,
        *,
        weights: Tensor | None = None,
        steps: int | None = None,
    ) -> TransferLearner:
        """Learn the prior scales (and noise scale) from related target tasks.

        Empirical Bayes across tasks: each task gets its own ``q``, all share
        the prior scales and the noise scale, and the summed ELBO is
        maximised. Later :meth:`adapt` calls keep the learned values fixed.

        Parameters
        ----------
        support_x, support_y
            All data of ``T`` related tasks, ``[T, K, *features]`` and targets.
        weights
            Per-point likelihood weights ``[T, K]``.
        steps
            Adam steps of this fit (``None``: the learner's ``steps``, which
            each :meth:`adapt` keeps using).

        Returns
        -------
        TransferLearner
            ``self``, with ``prior_scale_``, ``noise_scale_`` and ``last_fit_`` set.

        """
        if self.method not in ("bayes", "laplace"):
            raise ValueError(f"fit_prior needs method='bayes' or 'laplace', not {self.method!r}")
        x, y, _ = self._data(support_x, support_y, batched_only=True)
        w = self._weights(weights, y)
        start = self._start_scale()
        p_log = torch.full((1, self.num_groups), math.log(start))
        kept = self.hparams
        if steps is not None:
            self.hparams = replace(kept, steps=check_count("steps", steps, minimum=1))
        try:
            if self.method == "laplace":
                fit, p_log, log_noise = self._laplace(x, y, w, p_log, True, self.learn_noise, 1)
            else:
                fit = self._fit(x, y, w, p_log, True, True, 1)
                p_log, log_noise = fit.prior_log_scale, fit.log_noise
        finally:
            self.hparams = kept
        self.last_fit_ = fit
        self.prior_scale_ = p_log[0].exp()
        self.noise_scale_ = None if log_noise is None else log_noise[0].exp()
        self.predictive_noise_ = None  # calibrated for the previous prior
        return self

    def fit_noise_scale(
        self,
        batch: TaskBatch,
        *,
        num_samples: int = 50,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Calibrate the noise that predictions use on related tasks' held-out points.

        Adapts to each task's support set and sets :attr:`predictive_noise_` to
        what the posterior's function draws leave unexplained on the query sets
        (see :mod:`bayesmeta.transfer.predictive_noise`); adaptation keeps its
        own noise scale. Call it after :meth:`fit_prior`, with tasks split as
        the target tasks will be (e.g. each related group's first K points as
        support and the later ones as query for forecasting).

        Parameters
        ----------
        batch
            Related tasks ``[T, K, *features]`` with query sets ``[T, Q, *features]``.
        num_samples
            Function draws per task.
        generator
            Random generator for the draws (default: seeded 0).

        Returns
        -------
        Tensor
            The predictive noise scale ``[O]``.

        Raises
        ------
        ValueError
            For classification, ``method="laplace"`` or a batch without query points.

        """
        self.predictive_noise_ = None
        noise = fit_predictive_noise(self, batch, num_samples=num_samples, generator=generator)
        self.predictive_noise_ = noise
        return noise

    def adapt(
        self,
        support_x: Tensor,
        support_y: Tensor,
        *,
        weights: Tensor | None = None,
        guide: GuideSpec | None = None,
        steps: int | None = None,
        lr: float | None = None,
        generator: torch.Generator | None = None,
    ) -> GaussianTaskPosterior | LaplacePosterior | AdaptedPredictor | GuidePosterior:
        """Fit one target task ``[K, *features]`` or a batch ``[T, K, *features]``.

        Parameters
        ----------
        support_x, support_y
            Target data and targets (``[.., K, O]`` floats or ``[.., K]`` labels).
        weights
            Per-point likelihood weights ``[.., K]`` (e.g. importance weights
            of source points added to the target data).
        guide
            Any Pyro autoguide class or guide callable: instead of ``method``,
            fit it by SVI on :attr:`model` (the source-centred prior with the
            current scales), started at the source weights.
        steps, lr, generator
            SVI steps, learning rate and seed with ``guide``.

        Returns
        -------
        GaussianTaskPosterior or AdaptedPredictor or GuidePosterior
            The posterior (``"bayes"``) or the point estimate, with
            ``predict(query_x)``; with ``guide``, the fitted guide's posterior.

        Raises
        ------
        ValueError
            For ``weights`` with ``guide`` (the model has no per-point weights).

        """
        x, y, batched = self._data(support_x, support_y, batched_only=False)
        if guide is not None:
            if weights is not None:
                raise ValueError(
                    "weights are not part of the transfer model: adapt with guide= without "
                    "weights, or use method='bayes'"
                )
            return with_noise(
                adapt_guide(
                    self.model, x, y, batched, guide, steps=steps, lr=lr, generator=generator
                ),
                self.predictive_noise_,
            )
        w = self._weights(weights if weights is None or batched else weights.unsqueeze(0), y)
        t = x.shape[0]
        if self.prior_scale_ is not None:
            p_log = self.prior_scale_.log().unsqueeze(0)
            learn_prior, learn_noise, noise_rows = False, False, 1
        else:
            empirical = self.prior_scale == "empirical"
            start = self._start_scale()
            rows = t if empirical else 1
            p_log = torch.full((rows, self.num_groups), math.log(start))
            learn_prior, learn_noise, noise_rows = empirical, self.learn_noise, t
        if self.method == "laplace":
            if w is not None:
                raise ValueError("weights are supported by the bayes, map and finetune methods")
            fit, p_log, log_noise = self._laplace(x, y, w, p_log, learn_prior, learn_noise, t)
            self.last_fit_ = fit
            assert log_noise is not None
            prior_sd = (p_log[:, self.groups()].exp() * self.free).to(x.dtype)
            sd, noise_sd = prior_sd, log_noise.exp()
            if not batched:
                return LaplacePosterior(
                    self.fnet, fit.loc[0], self.centre, sd[0], noise_sd[0], x[0], y[0]
                )
            return LaplacePosterior(self.fnet, fit.loc, self.centre, sd, noise_sd, x, y)
        fit = self._fit(x, y, w, p_log, learn_prior, learn_noise, noise_rows)
        self.last_fit_ = fit
        noise = None
        if fit.log_noise is not None:
            noise = fit.log_noise.exp().unsqueeze(-2)  # [T or 1, 1, O]
        loc = fit.loc if batched else fit.loc[0]
        if not batched and noise is not None:
            noise = noise[0, 0]
        if fit.log_scale is not None:
            log_scale = fit.log_scale if batched else fit.log_scale[0]
            post = GaussianTaskPosterior(self.fnet, loc, log_scale, noise, self.classification)
            return with_noise(post, self.predictive_noise_)
        point = AdaptedPredictor(self.fnet, self.fnet.unflatten(loc), noise, self.classification)
        return with_noise(point, self.predictive_noise_)


hyper_properties(TransferLearner, TransferHyper, frozenset())
renamed_properties(TransferLearner, TransferLearner.renamed_keywords)
