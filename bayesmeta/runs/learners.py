"""The learners of ``bayesmeta run``: each registered with its run name and builder.

Each built-in learner is registered here (:func:`~bayesmeta.learners.registry.register_run`)
under the name a run config and ``--learner`` use, with the function that builds it
from a :class:`~bayesmeta.runs.config.RunConfig` and the learner-specific settings it
reads. :meth:`RunConfig.build_learner <bayesmeta.runs.config.RunConfig.build_learner>`,
the config checks and the command's ``--learner`` choices all read this registry.
Regression data get an MLP; image data the config's backbone (a :class:`~bayesmeta.nets.Conv4`,
or an MLP on the flattened pixels), with a classification head for the weight-space learners
and as an encoder for the metric ones.
"""

from __future__ import annotations

from typing import Any, cast

from bayesmeta.learners.base import MetaLearner
from bayesmeta.learners.bayesian_maml import BayesianMAML
from bayesmeta.learners.bayesian_protonet import BayesianProtoNet
from bayesmeta.learners.maml import MAML
from bayesmeta.learners.matching import MatchingNet
from bayesmeta.learners.protonet import ProtoNet
from bayesmeta.learners.registry import meta_fit_run, register_run
from bayesmeta.learners.reptile import Reptile
from bayesmeta.learners.variational import VariationalMetaLearner
from bayesmeta.model.prior_names import PriorName
from bayesmeta.nets.conv import Conv4
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.transfer import build_transfer, fit_transfer_run
from bayesmeta.training.loop import History
from bayesmeta.transfer.prior import TransferLearner

__all__ = ["network"]

#: Settings every meta-trained learner reads (a transfer run has no meta-training loop).
_META = ("outer_lr", "max_grad_norm", "meta_batch_size", "checkpoint_every")
_INNER = ("inner_lr", "inner_steps", "adapt_steps")
#: Test-time steps when a config leaves adapt_steps unset: gradient steps, SVI steps.
_GRADIENT_STEPS, _SVI_STEPS = {"adapt_steps": 10}, {"adapt_steps": 300}


def network(config: RunConfig, *, head: bool = True) -> Any:
    """The network of a run: MLP widths for regression, the config's backbone for images.

    Image data get a Conv4 (``backbone="conv4"``) or the widths of an MLP on the
    flattened pixels (``backbone="mlp"``: ``C*H*W``, then ``hidden``). ``head=False``
    gives the network without a classification head (an encoder).
    """
    if config.classification:
        shape = config.image_shape()
        n_out = config.n_way if head else None
        if config.backbone == "mlp":
            pixels = shape[0] * shape[1] * shape[2]
            return (pixels, *config.hidden, *(() if n_out is None else (n_out,)))
        return Conv4(1, n_out, hidden=config.channels, image_size=shape[-1])
    return (len(config.x) if config.data == "table" else 1, *config.hidden, 1)


def _meta(config: RunConfig) -> dict[str, Any]:
    return {"outer_lr": config.outer_lr, "max_grad_norm": config.max_grad_norm}


def _prior(config: RunConfig) -> dict[str, Any]:
    return {} if config.prior_scale is None else {"prior_scale": config.prior_scale}


def _inner(config: RunConfig) -> dict[str, Any]:
    return {
        "inner_lr": config.inner_lr,
        "inner_steps": config.inner_steps,
        "adapt_steps": config.adapt_steps,
        "standardize": config.standardize,
    }


def _loss(config: RunConfig) -> Any:
    return "cross_entropy" if config.classification else "mse"


def _maml(config: RunConfig, *, first_order: bool = False) -> MAML:
    return MAML(
        network(config),
        first_order=first_order,
        learn_inner_lr=config.learn_inner_lr,
        loss=_loss(config),
        task_chunk=config.task_chunk,
        **_inner(config),
        **_meta(config),
    )


def _fomaml(config: RunConfig) -> MAML:
    return _maml(config, first_order=True)


def _reptile(config: RunConfig) -> Reptile:
    return Reptile(network(config), loss=_loss(config), **_inner(config), **_meta(config))


def _bayesian_maml(config: RunConfig) -> BayesianMAML:
    return BayesianMAML(
        network(config),
        likelihood=cast(Any, "categorical" if config.classification else config.noise),
        prior=cast(PriorName, config.prior),
        kl_weight=config.kl_weight,
        particle_chunk=config.particle_chunk,
        task_chunk=config.task_chunk,
        **_prior(config),
        **_inner(config),
        **_meta(config),
    )


def _variational(config: RunConfig) -> VariationalMetaLearner:
    return VariationalMetaLearner(
        network(config),
        likelihood="categorical" if config.classification else "gaussian",
        adapt_steps=cast(int, config.adapt_steps),  # set from the registry's defaults
        standardize=cast(Any, config.standardize),
        **_prior(config),
        **_meta(config),
    )


def _protonet(config: RunConfig) -> MetaLearner:
    return ProtoNet(network(config, head=False), **_meta(config))


def _bayesian_protonet(config: RunConfig) -> MetaLearner:
    return BayesianProtoNet(network(config, head=False), **_prior(config), **_meta(config))


def _matching(config: RunConfig) -> MetaLearner:
    return MatchingNet(network(config, head=False), **_meta(config))


def _gradient_fit(learner: Any, config: RunConfig, train: Any, **options: Any) -> History:
    """Meta-train a point-estimate learner; on regression, fit its predictive noise scale.

    The noise scale (for predictive intervals) is fitted on tasks drawn with ``seed``.
    """
    history = meta_fit_run(learner, config, train, **options)
    if not config.classification:
        learner.fit_noise_scale(config.noise_fit_tasks(options["seed"]))
    return history


def _fixed_tasks_fit(
    learner: VariationalMetaLearner, config: RunConfig, train: Any, **options: Any
) -> History:
    """Meta-train on ``train_tasks`` tasks drawn once (a posterior per task of a fixed set)."""
    return learner.meta_fit(
        train,
        config.meta_iterations,
        config.meta_batch_size,
        num_tasks=config.train_tasks,
        progress=options["progress"],
        checkpoint=options["checkpoint"],
        checkpoint_every=options["checkpoint_every"],
    )


def _transfer_fit(
    learner: TransferLearner, config: RunConfig, train: Any, **options: Any
) -> History:
    """No meta-training loop (nothing to checkpoint): fit the prior's scales, then the noise.

    A transfer learner fits a prior centred on its source network to the run's tasks
    (:func:`~bayesmeta.runs.transfer.fit_transfer_run`); ``seed`` draws its noise tasks.
    """
    return fit_transfer_run(learner, config, train, options["seed"])


register_run(
    "maml",
    MAML,
    _maml,
    reads=(*_META, *_INNER, "learn_inner_lr", "standardize", "task_chunk"),
    defaults=_GRADIENT_STEPS,
    fit=_gradient_fit,
    summary="MAML: second-order meta-gradients through the inner steps",
)
register_run(
    "fomaml",
    MAML,
    _fomaml,
    reads=(*_META, *_INNER, "learn_inner_lr", "standardize", "task_chunk"),
    defaults=_GRADIENT_STEPS,
    fit=_gradient_fit,
    summary="first-order MAML",
)
register_run(
    "reptile",
    Reptile,
    _reptile,
    reads=(*_META, *_INNER, "standardize"),
    defaults=_GRADIENT_STEPS,
    fit=_gradient_fit,
    summary="Reptile: moves the initialisation towards the adapted weights",
)
register_run(
    "bayesian_maml",
    BayesianMAML,
    _bayesian_maml,
    reads=(
        *_META,
        *_INNER,
        "standardize",
        "prior_scale",
        "kl_weight",
        "prior",
        "noise",
        "particle_chunk",
        "task_chunk",
    ),
    defaults=_GRADIENT_STEPS,
    summary="Bayesian MAML: a meta-learned prior and a Gaussian posterior per task",
)
register_run(
    "variational",
    VariationalMetaLearner,
    _variational,
    reads=(*_META, "standardize", "prior_scale", "train_tasks", "adapt_steps"),
    defaults=_SVI_STEPS,
    fit=_fixed_tasks_fit,
    summary="hierarchical variational inference over a fixed set of tasks",
)
register_run(
    "protonet",
    ProtoNet,
    _protonet,
    reads=_META,
    targets="classes",
    summary="prototypical networks",
)
register_run(
    "bayesian_protonet",
    BayesianProtoNet,
    _bayesian_protonet,
    reads=(*_META, "prior_scale"),
    targets="classes",
    summary="prototypical networks with a Gaussian posterior over the class means",
)
register_run(
    "matching",
    MatchingNet,
    _matching,
    reads=_META,
    targets="classes",
    summary="matching networks",
)
register_run(
    "transfer",
    TransferLearner,
    build_transfer,
    reads=("source", "prior_scale", "train_tasks", "adapt_steps"),
    targets="regression",
    requires=("source",),
    defaults=_SVI_STEPS,
    fit=_transfer_fit,
    summary="a prior centred on a source network's weights (needs source)",
)
