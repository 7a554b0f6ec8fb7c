"""Test-time SVI with any Pyro guide on a learner's model, under its meta-learned prior.

``learner.adapt(x, y, guide=AutoLowRankMultivariateNormal)`` comes here: the
guide (an autoguide class, made on the model, or any guide callable you built)
is fitted by Pyro's ``Trace_ELBO`` on ``learner.model`` conditioned on the
support data, updating the guide's own parameters only; the model reads the
learner's meta-parameters as constants.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from pyro.infer.autoguide import AutoGuide, init_to_value
from torch import Tensor, nn

from bayesmeta._checks import check_count, positive
from bayesmeta._seeding import seeded_by
from bayesmeta.inference.svi import run_svi
from bayesmeta.inference.task_svi import INIT_SCALE_RATIO
from bayesmeta.model.task_model import TaskModel
from bayesmeta.model.weight_prior import WeightPrior
from bayesmeta.posteriors.guided import FittedGuide, GuidePosterior, draw_theta, local_params

__all__ = ["GUIDE_LR", "GUIDE_STEPS", "GuideSpec", "adapt_guide", "fit_guide"]

#: An autoguide class (made on the model) or a guide callable ``guide(x, y)``.
GuideSpec = type[AutoGuide] | Callable[..., Any]

#: Default SVI steps and Adam learning rate of ``adapt(..., guide=...)``.
GUIDE_STEPS = 500
GUIDE_LR = 0.01

#: Draws used to summarise a fitted guide's posterior mean.
_MEAN_DRAWS = 64


def fit_guide(
    model: TaskModel,
    x: Tensor,
    y: Tensor,
    guide: GuideSpec,
    *,
    steps: int,
    lr: float,
    num_particles: int = 1,
    init_loc: Tensor | None = None,
    init_scale: float | None = None,
    generator: torch.Generator | None = None,
) -> GuidePosterior:
    """Fit a Pyro guide to ``model`` on the support data of ``T`` tasks.

    Parameters
    ----------
    model
        The learner's model (its prior and likelihood stay fixed).
    x, y
        Support data ``[T, K, *features]`` and targets.
    guide
        An autoguide class such as ``pyro.infer.autoguide.AutoLowRankMultivariateNormal``
        (made on ``model``, started at ``init_loc`` with ``init_scale`` where
        the class takes them), or a guide callable ``guide(x, y)`` that samples
        ``"theta"`` inside a ``"tasks"`` plate (an ``nn.Module`` or
        ``PyroModule`` whose parameters are fitted).
    steps, lr
        Adam steps and learning rate (annealed on a cosine).
    num_particles
        ELBO samples per step.
    init_loc
        Where an autoguide starts ``"theta"`` ``[P]`` or ``[T, P]`` (the prior's location).
        Autoguides are fitted one task at a time (see
        :class:`~bayesmeta.posteriors.guided.GuidePosterior`); a guide you
        built is fitted to the whole batch and runs as you made it (a
        ``PyroModule``'s parameters where your Pyro settings put them).
    init_scale
        An autoguide's initial scale, where its class takes one.
    generator
        Seeds the SVI noise; ``None`` draws from torch's global generator.

    Returns
    -------
    GuidePosterior
        Batch shape ``[T]``; its ``guide`` replays the fitted guides; its
        ``elbo_trace`` is the negative ELBO summed over the tasks.

    Raises
    ------
    TypeError
        If ``guide`` is neither an autoguide class nor callable (a string
        names no Pyro guide here: pass the class).
    ValueError
        If the guide has no parameters to fit.
    NonFiniteLossError
        If the ELBO turns NaN or infinite.

    """
    if isinstance(guide, str) or not callable(guide):
        raise TypeError(
            "guide must be a Pyro autoguide class (e.g. pyro.infer.autoguide."
            f"AutoLowRankMultivariateNormal) or a guide callable, got {guide!r}"
        )
    auto = isinstance(guide, type) and issubclass(guide, AutoGuide)
    # An autoguide joins all latent sites into one vector: fitted to a batch it would
    # couple the tasks, which are independent given the prior; so one per task.
    rows = [slice(t, t + 1) for t in range(x.shape[0])] if auto else [slice(None)]
    fitted: list[FittedGuide] = []
    traces = []
    with seeded_by(generator, x.device):
        for rows_t in rows:
            xt, yt = x[rows_t], y[rows_t]
            start = None if init_loc is None else init_loc.expand(x.shape[0], -1)[rows_t]
            with local_params() if auto else contextlib.nullcontext():
                made = _make(guide, model, xt, start, init_scale)
                made(xt, yt)  # builds an autoguide's parameters from the model
                params = _parameters(made)
                traces.append(run_svi(model, made, params, xt, yt, steps, lr, num_particles))
            fitted.append(FittedGuide(made, xt, yt, local=auto))
    likelihood = model.likelihood
    noise = likelihood.noise_scale()
    loc = draw_theta(fitted, _MEAN_DRAWS, generator).mean(0)
    return GuidePosterior(
        model.fnet,
        tuple(fitted),
        loc,
        None if noise is None else noise.detach(),
        likelihood.classification,
        likelihood.observation(),
        torch.stack(traces).sum(0),
    )


def adapt_guide(
    model: TaskModel,
    x: Tensor,
    y: Tensor,
    batched: bool,
    guide: GuideSpec,
    *,
    steps: int | None,
    lr: float | None,
    generator: torch.Generator | None,
    start: Tensor | None = None,
) -> GuidePosterior:
    """What ``learner.adapt(..., guide=...)`` does: :func:`fit_guide` with the learner's defaults.

    An autoguide starts at the prior's location (``start`` where the prior has
    none, e.g. the flat prior of the MAML family) with ``INIT_SCALE_RATIO``
    times the prior's median standard deviation.

    Parameters
    ----------
    model
        The model the task is adapted under.
    x, y
        Checked support data ``[T, K, *features]`` and targets.
    batched
        Whether the caller gave a batch (else the posterior's batch shape is ``()``).
    guide
        See :func:`fit_guide`.
    steps, lr
        SVI steps and learning rate (``None``: ``GUIDE_STEPS``, ``GUIDE_LR``).
    generator
        Seeds the SVI noise.
    start
        Where to start without a prior location ``[P]``.

    Raises
    ------
    ValueError
        For a non-positive ``steps`` or ``lr``, and as :func:`fit_guide`.

    """
    prior = model.prior
    loc = prior.loc.detach() if isinstance(prior, WeightPrior) else start
    scale = None
    if isinstance(prior, WeightPrior):
        scale = float(prior.stddev().detach().median()) * INIT_SCALE_RATIO
    post = fit_guide(
        model,
        x,
        y,
        guide,
        steps=GUIDE_STEPS if steps is None else check_count("steps", steps, minimum=1),
        lr=GUIDE_LR if lr is None else positive("lr", lr),
        init_loc=loc,
        init_scale=scale,
        generator=generator,
    )
    return post if batched else replace(post, loc=post.loc[0])


def _parameters(guide: Callable[..., Any]) -> list[nn.Parameter]:
    params: list[nn.Parameter] = []
    if isinstance(guide, nn.Module):
        params = [p for p in guide.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            "the guide has no parameters to fit; give an autoguide class or an nn.Module / "
            "PyroModule guide"
        )
    return params


def _make(
    guide: GuideSpec,
    model: TaskModel,
    x: Tensor,
    init_loc: Tensor | None,
    init_scale: float | None,
) -> Callable[..., Any]:
    if not (isinstance(guide, type) and issubclass(guide, AutoGuide)):
        return guide
    accepted = inspect.signature(guide).parameters
    kwargs: dict[str, Any] = {}
    if init_loc is not None and "init_loc_fn" in accepted:
        start = init_loc.detach().expand(x.shape[0], -1).clone()
        kwargs["init_loc_fn"] = init_to_value(values={"theta": start})
    if init_scale is not None and "init_scale" in accepted:
        kwargs["init_scale"] = float(init_scale)
    return guide(model, **kwargs)
