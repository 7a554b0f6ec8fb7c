"""What the diagnostics share about the model: a learner's prior and likelihood, and draws of y."""

from __future__ import annotations

import torch
from torch import Tensor

from bayesmeta.learners.base import MetaLearner
from bayesmeta.model.likelihoods import Likelihood, Observation
from bayesmeta.model.priors import WeightPrior
from bayesmeta.model.task_model import TaskModel
from bayesmeta.nets.functional import FunctionalNet


def adaptation_model(
    learner: object, caller: str, general: str
) -> tuple[FunctionalNet, WeightPrior, Likelihood]:
    """``(fnet, prior, likelihood)`` of the model that ``learner.adapt`` conditions on.

    Read from the learner's :meth:`~bayesmeta.learners.MetaLearner.adaptation_model`:
    ``BayesianMAML`` adapts under its learned ``prior`` (of any family),
    ``VariationalMetaLearner`` under ``learned_prior()`` (the hyper-posterior's mean).

    Raises
    ------
    TypeError
        For learners without a proper weight prior (the flat prior of the MAML
        family, the metric learners), naming ``caller`` and ``general``, the
        function that takes the model's parts directly.

    """
    model = learner.adaptation_model() if isinstance(learner, MetaLearner) else None
    if isinstance(model, TaskModel) and isinstance(model.prior, WeightPrior):
        return model.fnet, model.prior, model.likelihood
    raise TypeError(
        f"{caller} supports BayesianMAML and VariationalMetaLearner (learners with a proper "
        f"weight prior), got {type(learner).__name__}; for another model call {general} "
        "with its fnet, prior and likelihood"
    )


def draw_targets(
    out: Tensor,
    noise_scale: Tensor | None,
    classification: bool,
    generator: torch.Generator | None,
    observation: Observation | None = None,
) -> Tensor:
    """Targets drawn from the likelihood at the network's outputs ``[..., N, O or C]``.

    With an ``observation`` model (a likelihood's own distribution, e.g. a
    Student-t), a draw from it (seeded from ``generator``). Otherwise,
    regression: ``out + noise_scale * eps`` (``noise_scale`` broadcastable to
    ``out``); classification: labels ``[..., N]`` drawn from ``softmax(out)``
    by inverting its CDF with one uniform per point.
    """
    if observation is not None:
        if generator is None:
            return observation(out).sample()
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        with torch.random.fork_rng(devices=[out.device] if out.is_cuda else []):
            torch.manual_seed(seed)
            return observation(out).sample()
    if classification:
        u = torch.rand(out.shape[:-1], generator=generator, dtype=out.dtype).to(out.device)
        cdf = torch.softmax(out, -1).cumsum(-1)
        return (cdf < u.unsqueeze(-1)).sum(-1).clamp_max(out.shape[-1] - 1)
    if noise_scale is None:
        raise ValueError("drawing regression targets needs a noise scale")
    eps = torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
    return out + noise_scale.to(out) * eps
