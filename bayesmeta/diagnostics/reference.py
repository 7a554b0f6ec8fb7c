"""Reference posteriors by NUTS, to check the variational task posteriors.

:func:`nuts_posterior` runs Pyro's No-U-Turn sampler on the model of one task,
``theta ~ prior``, ``y ~ p(y | f(x; theta))`` (:func:`~bayesmeta.inference.
model.TaskModel` with a task plate of size 1), and returns a
:class:`ReferencePosterior`: the draws of every chain with their split R-hat,
bulk effective sample size (both from ArviZ) and divergence count. It predicts
like any other task posterior, so :func:`compare_predictives` can set a
learner's adapted posterior (Bayesian MAML's gradient-step Gaussian, the
variational learner's SVI guide) against it on the same query points.

NUTS is slow: every draw costs tens to hundreds of forward and backward passes
over the support set, one task at a time. It is meant for small models (a
Bayesian last layer, a small MLP; at most ``max_params`` weights) and as a check
of the fast posteriors, not as a learner's inference. Chains run one after
another in float64 (the returned draws have the network's dtype), each started
near the prior mean.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import arviz as az
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide import init_to_value
from torch import Tensor

from bayesmeta._checks import check_count, check_pair, fmt_shape
from bayesmeta.diagnostics._model import adaptation_model
from bayesmeta.errors import ShapeError
from bayesmeta.model.likelihoods import Likelihood, Observation
from bayesmeta.model.priors import WeightPrior
from bayesmeta.model.task_model import TaskModel
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import SampledPosterior
from bayesmeta.predictions.prediction import Prediction

__all__ = ["ReferencePosterior", "compare_predictives", "nuts_posterior", "reference_posterior"]

#: Chains start at ``prior mean + _INIT_JITTER * prior scale * N(0, 1)``.
_INIT_JITTER = 0.1


@dataclass(frozen=True, eq=False)
class ReferencePosterior(SampledPosterior):
    """NUTS draws from one task's weight posterior, with their convergence diagnostics.

    Attributes
    ----------
    fnet : FunctionalNet
        The network the weights belong to.
    samples : Tensor
        Draws ``[C, D, P]``: ``D`` per chain, ``C`` chains.
    noise_scale : Tensor or None
        The likelihood's observation-noise scale, for predictions.
    classification : bool
        The network's outputs are class scores (a categorical likelihood).
    rhat : Tensor
        Split R-hat of each weight ``[P]`` (near 1 when the chains agree).
    ess_bulk : Tensor
        Bulk effective sample size of each weight ``[P]``.
    divergences : int
        Divergent transitions after warm-up, over all chains.
    observation : callable or None
        The likelihood's observation model for predictions, where it is not
        Gaussian noise (see :class:`~bayesmeta.Prediction`).

    """

    fnet: FunctionalNet
    samples: Tensor
    noise_scale: Tensor | None
    classification: bool
    rhat: Tensor
    ess_bulk: Tensor
    divergences: int
    observation: Observation | None = None

    def __post_init__(self) -> None:
        p = self.fnet.num_params
        if self.samples.dim() != 3 or self.samples.shape[-1] != p or self.samples.numel() == 0:
            raise ShapeError(
                f"samples must have shape [C, D, P] with P = {p}, got "
                f"{fmt_shape(self.samples.shape)}"
            )
        for name in ("rhat", "ess_bulk"):
            value: Tensor = getattr(self, name)
            if value.shape != (p,):
                raise ShapeError(f"{name} must have shape [{p}], got {fmt_shape(value.shape)}")

    @property
    def loc(self) -> Tensor:  # type: ignore[override]
        """Posterior mean ``[P]`` over all chains and draws."""
        return self.samples.mean((0, 1))

    @property
    def num_chains(self) -> int:
        """Number of chains ``C``."""
        return int(self.samples.shape[0])

    @property
    def num_draws(self) -> int:
        """Draws per chain ``D``."""
        return int(self.samples.shape[1])

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Weights ``[num_samples, P]`` drawn with replacement from the pooled draws."""
        check_count("num_samples", num_samples, minimum=1)
        pooled = self.samples.reshape(-1, self.samples.shape[-1])
        device = pooled.device if generator is None else generator.device
        idx = torch.randint(pooled.shape[0], (num_samples,), generator=generator, device=device)
        return pooled[idx.to(pooled.device)]

    def summary(self) -> dict[str, float]:
        """``max_rhat``, ``min_ess_bulk``, ``divergences``, ``num_chains`` and ``num_draws``."""
        return {
            "max_rhat": float(self.rhat.max()),
            "min_ess_bulk": float(self.ess_bulk.min()),
            "divergences": float(self.divergences),
            "num_chains": float(self.num_chains),
            "num_draws": float(self.num_draws),
        }


def nuts_posterior(
    fnet: FunctionalNet,
    prior: WeightPrior,
    likelihood: Likelihood,
    support_x: Tensor,
    support_y: Tensor,
    *,
    num_samples: int = 500,
    warmup_steps: int = 500,
    num_chains: int = 2,
    seed: int = 0,
    max_params: int = 5000,
    progress: bool = False,
) -> ReferencePosterior:
    """Sample one task's weight posterior ``p(theta | support)`` with NUTS.

    Parameters
    ----------
    fnet, prior, likelihood
        The model: weights ``theta ~ prior``, ``y ~ likelihood(f(x; theta))``.
    support_x
        Inputs of one task ``[K, *features]``.
    support_y
        Targets ``[K, O]`` (regression) or class labels ``[K]``.
    num_samples
        Draws kept per chain ``D`` (at least 4, for split R-hat).
    warmup_steps
        Warm-up (step size and diagonal mass matrix adaptation) steps per chain.
    num_chains
        Chains ``C``, run one after another; chain ``c`` uses seed ``seed + c``.
    seed
        Seeds the initial jitter and the sampler (torch's global RNG is restored).
    max_params
        Refuse networks with more weights than this.
    progress
        Show Pyro's progress bar.

    Returns
    -------
    ReferencePosterior
        Draws ``[C, D, P]`` in the network's dtype, with diagnostics.

    Raises
    ------
    ShapeError
        If the inputs are a batch of tasks or do not fit the network and prior.
    ValueError
        For bad counts or a network with more than ``max_params`` weights.

    """
    check_count("num_samples", num_samples, minimum=4)
    check_count("warmup_steps", warmup_steps, minimum=0)
    check_count("num_chains", num_chains, minimum=1)
    check_count("max_params", max_params, minimum=1)
    p = fnet.num_params
    if p > max_params:
        raise ValueError(
            f"the network has P = {p} weights, more than max_params = {max_params}; NUTS is slow "
            "and meant for small models (a Bayesian last layer, a small MLP): raise max_params "
            "to sample anyway"
        )
    prior.check(fnet)
    if isinstance(support_x, Tensor) and support_x.dim() == fnet.feature_dims + 2:
        raise ShapeError(
            f"support_x has shape {fmt_shape(support_x.shape)}, a batch of tasks "
            "[T, K, *features]; NUTS samples one task: pass support_x[t], support_y[t]"
        )
    x, y = check_pair("support", support_x, support_y, batch=(), allow_empty=False)
    x = fnet.check_inputs("support_x", x, ())
    dtype, device = prior.loc.dtype, prior.loc.device
    with torch.no_grad():
        out = fnet(prior.loc.detach(), x.to(device=device, dtype=dtype))
    want = out.shape if y.is_floating_point() else out.shape[:-1]
    if y.shape != want or y.is_floating_point() == likelihood.classification:
        kind = "class labels" if likelihood.classification else "floating targets"
        raise ShapeError(
            f"the network maps support_x to {fmt_shape(out.shape)}, so support_y must be "
            f"{kind} of shape {fmt_shape(want)}, got {y.dtype} {fmt_shape(y.shape)}"
        )
    f64 = torch.float64
    net64 = FunctionalNet(copy.deepcopy(fnet.module).to(f64), feature_dims=fnet.feature_dims)
    net64.units = None if fnet.units is None else copy.deepcopy(fnet.units).to(f64)
    loc64, scale64 = prior.loc.detach().to(f64), prior.stddev().detach().to(f64)
    prior64 = prior.frozen(f64)  # the same family (a Laplace prior stays Laplace)
    lik64 = copy.deepcopy(likelihood).to(f64)
    x64 = x.to(device=device, dtype=f64)[None]
    y64 = (y.to(f64) if y.is_floating_point() else y).to(device)[None]
    model = TaskModel(net64, prior64, lik64)
    chains: list[Tensor] = []
    divergences = 0
    devices = [device.index or 0] if device.type == "cuda" else []
    for c in range(num_chains):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + c)
            jitter = _INIT_JITTER * scale64 * torch.randn(p, dtype=f64, device=device)
            init = init_to_value(values={"theta": (loc64 + jitter)[None]})
            kernel = NUTS(model, jit_compile=False, init_strategy=init)
            mcmc = MCMC(kernel, num_samples, warmup_steps, disable_progbar=not progress)
            mcmc.run(x64, y64)
        chains.append(mcmc.get_samples()["theta"].reshape(num_samples, p))
        divergences += len(mcmc.diagnostics()["divergences"]["chain 0"])
    draws = torch.stack(chains).detach()  # [C, D, P]
    dataset = az.convert_to_dataset({"theta": draws.cpu().numpy()})
    rhat = torch.as_tensor(az.rhat(dataset)["theta"].values, dtype=dtype, device=device)
    ess = torch.as_tensor(
        az.ess(dataset, method="bulk")["theta"].values, dtype=dtype, device=device
    )
    noise = likelihood.noise_scale()
    noise = None if noise is None else noise.detach()
    return ReferencePosterior(
        fnet,
        draws.to(dtype),
        noise,
        likelihood.classification,
        rhat,
        ess,
        divergences,
        likelihood.observation(),
    )


def reference_posterior(
    learner: object, support_x: Tensor, support_y: Tensor, **kwargs: Any
) -> ReferencePosterior:
    """NUTS reference posterior of one task under a learner's prior and likelihood.

    Parameters
    ----------
    learner
        A :class:`~bayesmeta.BayesianMAML` (its prior ``learner.prior``) or a
        :class:`~bayesmeta.VariationalMetaLearner` (its ``learned_prior()``).
    support_x, support_y
        One task's support set ``[K, *features]`` and targets.
    **kwargs
        Passed to :func:`nuts_posterior` (``num_samples``, ``num_chains``, ...).

    Raises
    ------
    TypeError
        For other learners, which have no weight prior to sample under.

    """
    fnet, prior, likelihood = adaptation_model(learner, "reference_posterior", "nuts_posterior")
    return nuts_posterior(fnet, prior, likelihood, support_x, support_y, **kwargs)


def compare_predictives(
    approx: Prediction, reference: Prediction, y: Tensor | None = None, level: float = 0.9
) -> dict[str, float]:
    """How far an approximate posterior predictive is from the reference one.

    Parameters
    ----------
    approx, reference
        Regression predictions at the same query points ``[*B, Q, O]``
        (e.g. ``posterior.predict(query_x)`` and ``reference.predict(query_x)``).
    y
        Query targets ``[*B, Q, O]``; adds both negative log predictive densities.
    level
        Probability of the central intervals compared.

    Returns
    -------
    dict of str to float
        ``mean_gap``: mean ``|mean_a - mean_r|`` over the mean reference
        predictive std (0 is perfect); ``width_ratio``: mean interval width,
        approximate over reference (1 is perfect, below 1 over-confident);
        ``epistemic_std_gap``: mean ``|epistemic std_a - epistemic std_r|``;
        with ``y``, ``nll_approx`` and ``nll_reference``, the mean negative log
        predictive density per point.

    Raises
    ------
    ShapeError
        If the predictions (or ``y``) do not have the same shape.

    """
    for name, pred in (("approx", approx), ("reference", reference)):
        if not isinstance(pred, Prediction):
            raise TypeError(
                f"{name} must be a regression Prediction (from posterior.predict), got "
                f"{type(pred).__name__}"
            )
    shape = reference.mean.shape
    if approx.mean.shape != shape:
        raise ShapeError(
            f"approx predicts {fmt_shape(approx.mean.shape)} but reference predicts "
            f"{fmt_shape(shape)}; predict both at the same query_x"
        )
    lo_a, hi_a = approx.interval(level)
    lo_r, hi_r = reference.interval(level)
    gap = (approx.mean - reference.mean).abs().mean() / reference.std.mean()
    out = {
        "mean_gap": float(gap),
        "width_ratio": float((hi_a - lo_a).mean() / (hi_r - lo_r).mean()),
        "epistemic_std_gap": float((approx.epistemic_std - reference.epistemic_std).abs().mean()),
    }
    if y is not None:
        if y.shape != shape:
            raise ShapeError(
                f"y must have the predictions' shape {fmt_shape(shape)}, got {fmt_shape(y.shape)}"
            )
        out["nll_approx"] = float(-approx.log_prob(y).mean())
        out["nll_reference"] = float(-reference.log_prob(y).mean())
    return out
