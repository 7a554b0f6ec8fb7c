"""Meta-learners: each is a prior, a task posterior and an inner rule."""

from bayesmeta.learners.adapted import AdaptedPredictor
from bayesmeta.learners.base import MetaLearner
from bayesmeta.learners.bayesian_maml import BayesianMAML
from bayesmeta.learners.gradient import GradientMetaLearner, OptimizerFactory
from bayesmeta.learners.maml import MAML
from bayesmeta.learners.matching import MatchingNet
from bayesmeta.learners.metric import MetricLearner, MetricPredictor
from bayesmeta.learners.protonet import (
    BayesianProtoNet,
    ProtoNet,
    PrototypePosterior,
    PrototypePredictor,
)
from bayesmeta.learners.registry import register
from bayesmeta.learners.reptile import Reptile
from bayesmeta.learners.variational import VariationalMetaLearner
from bayesmeta.training.loop import History

for _learner in (
    BayesianMAML,
    BayesianProtoNet,
    MAML,
    MatchingNet,
    ProtoNet,
    Reptile,
    VariationalMetaLearner,
):
    register(_learner)

__all__ = [
    "MAML",
    "AdaptedPredictor",
    "BayesianMAML",
    "BayesianProtoNet",
    "GradientMetaLearner",
    "History",
    "MatchingNet",
    "MetaLearner",
    "MetricLearner",
    "MetricPredictor",
    "OptimizerFactory",
    "ProtoNet",
    "PrototypePosterior",
    "PrototypePredictor",
    "Reptile",
    "VariationalMetaLearner",
]
