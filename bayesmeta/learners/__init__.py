"""Meta-learners: each is a prior, a task posterior and an inner rule."""

from bayesmeta.learners.adapted import AdaptedPredictor
from bayesmeta.learners.base import MetaLearner
from bayesmeta.learners.bayesian_maml import BayesianMAML, BayesianMAMLHyper
from bayesmeta.learners.bayesian_protonet import BayesianProtoNetHyper
from bayesmeta.learners.gradient import GradientMetaLearner, OptimizerFactory
from bayesmeta.learners.hyper import GradientHyper, LearnerHyper, MetricHyper
from bayesmeta.learners.maml import MAML, MAMLHyper
from bayesmeta.learners.matching import MatchingHyper, MatchingNet
from bayesmeta.learners.metric import MetricLearner, MetricPredictor
from bayesmeta.learners.protonet import (
    BayesianProtoNet,
    ProtoNet,
    ProtoNetHyper,
    PrototypePosterior,
    PrototypePredictor,
)
from bayesmeta.learners.registry import register
from bayesmeta.learners.reptile import Reptile, ReptileHyper
from bayesmeta.learners.support_augment import AugmentedSupport
from bayesmeta.learners.variational import VariationalHyper, VariationalMetaLearner
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
    "AugmentedSupport",
    "BayesianMAML",
    "BayesianMAMLHyper",
    "BayesianProtoNet",
    "BayesianProtoNetHyper",
    "GradientHyper",
    "GradientMetaLearner",
    "History",
    "LearnerHyper",
    "MAMLHyper",
    "MatchingHyper",
    "MatchingNet",
    "MetaLearner",
    "MetricHyper",
    "MetricLearner",
    "MetricPredictor",
    "OptimizerFactory",
    "ProtoNet",
    "ProtoNetHyper",
    "PrototypePosterior",
    "PrototypePredictor",
    "Reptile",
    "ReptileHyper",
    "VariationalHyper",
    "VariationalMetaLearner",
]
