"""The model a learner adapts its task posteriors under, for the diagnostics that need it."""

from __future__ import annotations

from bayesmeta.learners.bayesian_maml import BayesianMAML
from bayesmeta.learners.variational import VariationalMetaLearner
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.priors.gaussian import GaussianPrior
from bayesmeta.priors.likelihoods import Likelihood


def adaptation_model(
    learner: object, caller: str, general: str
) -> tuple[FunctionalNet, GaussianPrior, Likelihood]:
    """``(fnet, prior, likelihood)`` that ``learner.adapt`` conditions on.

    ``BayesianMAML`` adapts under its learned ``prior``; ``VariationalMetaLearner``
    under ``learned_prior()`` (the hyper-posterior's mean).

    Raises
    ------
    TypeError
        For other learners, naming ``caller``, the two it supports, and
        ``general``, the function that takes the model's parts directly.

    """
    if isinstance(learner, BayesianMAML):
        return learner.fnet, learner.prior, learner.likelihood
    if isinstance(learner, VariationalMetaLearner):
        return learner.fnet, learner.learned_prior().to(learner.device), learner.likelihood
    raise TypeError(
        f"{caller} supports BayesianMAML and VariationalMetaLearner (learners with a Gaussian "
        f"weight prior), got {type(learner).__name__}; for another model call {general} "
        "with its fnet, prior and likelihood"
    )
