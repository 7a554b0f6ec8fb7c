"""Export task posteriors to ArviZ (``arviz.InferenceData``, the 0.23 line).

All ArviZ-specific code of bayesmeta is in this module, so that a port to
ArviZ 1.x touches one file.

:func:`to_inference_data` turns any adapted posterior (or a batch of them) and
optional query data into an ``InferenceData`` with the groups

- ``posterior``: the weights, one variable per parameter tensor (when the
  posterior has weight draws), the latent function ``f`` at the query points,
  and, given a ``learner`` with a hyper-posterior, its global sites
  ``prior_loc`` / ``prior_log_scale``;
- ``posterior_predictive``: replicated targets ``y`` drawn from the
  likelihood for each posterior draw;
- ``log_likelihood``: ``y``, the log-likelihood of each query point under
  each draw (so ``az.loo`` and ``az.waic`` work, one observation per task and
  point);
- ``observed_data`` (``y``) and ``constant_data`` (``x``, the query inputs).

Dimensions are named ``task`` (for a batch), ``point``, ``output`` (or
``class``), and ``<tensor>_dim_<i>`` for weights. Variational and closed-form
posteriors give independent draws; they are stored as one ``chain``, and the
attributes say so (``sampling``). Reference posteriors from NUTS keep their
chains.
"""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np
import torch
from torch import Tensor

from bayesmeta._checks import check_tensor, fmt_shape
from bayesmeta.diagnostics._model import draw_targets
from bayesmeta.errors import ShapeError
from bayesmeta.learners.adapted import AdaptedPredictor
from bayesmeta.model.likelihoods import categorical_point_log_prob
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.posteriors.gaussian import SampledPosterior
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction

__all__ = ["to_inference_data"]


def to_inference_data(
    posterior: object,
    query_x: Tensor | None = None,
    query_y: Tensor | None = None,
    *,
    num_samples: int = 200,
    weights: bool = True,
    learner: object | None = None,
    generator: torch.Generator | None = None,
) -> az.InferenceData:
    """An ``arviz.InferenceData`` of a task posterior, its predictions and the data.

    Parameters
    ----------
    posterior
        What a learner's ``adapt`` returned for one task or a batch of ``T``:
        a weight posterior (Gaussian, low-rank, NUTS reference), a point
        estimate (:class:`~bayesmeta.AdaptedPredictor`, one draw), or any
        predictor whose ``predict(query_x, num_samples=...)`` gives function
        samples (linearised Laplace, Bayesian last layer).
    query_x
        Query inputs ``[*B, Q, *features]``; needed for every group but the
        weights.
    query_y
        Query targets ``[*B, Q, O]`` (regression) or labels ``[*B, Q]``; needed
        for ``log_likelihood`` and ``observed_data``.
    num_samples
        Posterior draws ``S`` (NUTS references keep their own draws).
    weights
        Include the weight draws (``False`` keeps only function-space groups,
        smaller for large networks).
    learner
        The learner that adapted ``posterior``; a ``hyper_posterior()`` method
        (``VariationalMetaLearner``) adds its global sites to ``posterior``.
    generator
        Seeds the draws.

    Returns
    -------
    arviz.InferenceData

    Raises
    ------
    ShapeError
        If the query data do not match the posterior's batch shape.
    TypeError
        If ``posterior`` can neither be sampled nor predict.

    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    batch = _batch_shape(posterior)
    task_dims = ["task"] if batch else []
    coords: dict[str, Any] = {"task": np.arange(batch[0])} if batch else {}
    groups: dict[str, dict[str, np.ndarray]] = {"posterior": {}}
    dims: dict[str, list[str]] = {}
    attrs = {"inference_library": "bayesmeta", "posterior_type": type(posterior).__name__}

    theta, chains, sampling = _weight_draws(posterior, num_samples, generator)
    attrs["sampling"] = sampling
    fnet = getattr(posterior, "fnet", None)
    if theta is not None and weights and isinstance(fnet, FunctionalNet):
        for name, value in zip(fnet.names, fnet.unflatten(theta), strict=True):
            groups["posterior"][name] = _chains(value, chains)
            dims[name] = [
                *task_dims,
                *(f"{name}_dim_{i}" for i in range(value.dim() - 1 - len(batch))),
            ]
    if learner is not None and callable(getattr(learner, "hyper_posterior", None)):
        for site, dist in learner.hyper_posterior().distributions().items():  # type: ignore[attr-defined]
            draws = dist.sample((chains[0] * chains[1],))
            groups["posterior"][site] = _chains(draws, chains)
            dims[site] = [f"{site}_dim_0"]
        attrs["hyper_posterior"] = "mean-field Gaussian q(psi) of the hierarchical prior"

    if query_x is not None:
        _add_predictive(
            groups,
            dims,
            posterior,
            theta,
            chains,
            query_x,
            query_y,
            task_dims,
            batch,
            num_samples,
            generator,
        )
    elif query_y is not None:
        raise ValueError("query_y needs query_x (the predictions are made at query_x)")
    if not groups["posterior"]:
        raise ValueError(
            "nothing to export: pass query_x (for the function-space groups) or a posterior "
            "with weight draws"
        )
    convert: Any = az.from_dict
    idata: az.InferenceData = convert(**groups, coords=coords, dims=dims, attrs=attrs)
    for group in idata.groups():
        idata[group].attrs.update(attrs)  # each group says how it was made
    return idata


def _batch_shape(posterior: object) -> tuple[int, ...]:
    shape = getattr(posterior, "batch_shape", None)
    if shape is None:
        raise TypeError(
            f"cannot export a {type(posterior).__name__}: expected an adapted posterior "
            "(with batch_shape and predict)"
        )
    return tuple(shape)


def _weight_draws(
    posterior: object, num_samples: int, generator: torch.Generator | None
) -> tuple[Tensor | None, tuple[int, int], str]:
    """Weights ``[S, *B, P]``, the ``(chains, draws)`` split of ``S``, and how they were drawn."""
    samples = getattr(posterior, "samples", None)
    if isinstance(posterior, SampledPosterior) and isinstance(samples, Tensor):
        c, d = samples.shape[0], samples.shape[1]  # NUTS: [C, D, P]
        return samples.reshape(c * d, -1).detach(), (c, d), f"MCMC ({c} chains)"
    if isinstance(posterior, SampledPosterior):
        with torch.no_grad():
            theta = posterior.sample(num_samples, generator=generator)
        return theta, (1, num_samples), "independent draws from the posterior (one chain)"
    if isinstance(posterior, AdaptedPredictor):
        return posterior.flat().detach().unsqueeze(0), (1, 1), "point estimate (one draw)"
    return None, (1, num_samples), "independent draws from the predictive (one chain)"


def _chains(value: Tensor, chains: tuple[int, int]) -> np.ndarray:
    """``[S, ...]`` -> ``[chains, draws, ...]`` as a numpy array."""
    return value.detach().cpu().reshape(*chains, *value.shape[1:]).numpy()


def _add_predictive(
    groups: dict[str, dict[str, np.ndarray]],
    dims: dict[str, list[str]],
    posterior: object,
    theta: Tensor | None,
    chains: tuple[int, int],
    query_x: Tensor,
    query_y: Tensor | None,
    task_dims: list[str],
    batch: tuple[int, ...],
    num_samples: int,
    generator: torch.Generator | None,
) -> None:
    x = check_tensor("query_x", query_x)
    fnet = getattr(posterior, "fnet", None)
    if theta is not None and isinstance(fnet, FunctionalNet):
        x = fnet.check_inputs("query_x", x, batch)
        with torch.no_grad():
            out = fnet(theta, x.to(theta.device))  # [S, *B, Q, O or C]
        classification = bool(getattr(posterior, "classification", False))
        noise = getattr(posterior, "noise_scale", None)
        observation = getattr(posterior, "observation", None)
    else:
        pred = posterior.predict(x, num_samples=num_samples, generator=generator)  # type: ignore[attr-defined]
        observation = None
        if isinstance(pred, ClassPrediction):
            out, classification, noise = pred.sample_log_probs, True, None
        elif isinstance(pred, Prediction):
            out, classification, noise = pred.function_samples, False, pred.noise_scale
            observation = pred.observation
        else:
            raise TypeError(f"predict returned a {type(pred).__name__}, not a prediction")
        chains = (1, out.shape[0])
    point = [*task_dims, "point"]
    last = "class" if classification else "output"
    groups["posterior"]["f"] = _chains(out, chains)
    dims["f"] = [*point, last]
    groups["constant_data"] = {"x": x.detach().cpu().numpy()}
    dims["x"] = [*point, *(f"x_dim_{i}" for i in range(x.dim() - len(point)))]
    if classification or noise is not None or observation is not None:
        # (without a noise model there is nothing to draw)
        y_rep = draw_targets(out, noise, classification, generator, observation)
        groups["posterior_predictive"] = {"y": _chains(y_rep, chains)}
        dims["y"] = point if classification else [*point, "output"]
    if query_y is None:
        return
    y = check_tensor("query_y", query_y).to(out.device)
    want = out.shape[1:-1] if classification else out.shape[1:]
    if tuple(y.shape) != tuple(want):
        raise ShapeError(
            f"query_y must have shape {fmt_shape(want)} to match the predictions, got "
            f"{fmt_shape(y.shape)}"
        )
    groups["observed_data"] = {"y": y.cpu().numpy()}
    if classification:
        ll = categorical_point_log_prob(out, y.long())
    elif observation is not None:
        ll = observation(out).log_prob(y)
    elif noise is not None:
        ll = torch.distributions.Normal(out, noise.to(out)).log_prob(y).sum(-1)
    else:
        return  # no noise model: no likelihood to evaluate
    groups["log_likelihood"] = {"y": _chains(ll, chains)}
