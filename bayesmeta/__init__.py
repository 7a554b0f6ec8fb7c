"""bayesmeta: Bayesian meta-learning and transfer learning on Pyro and PyTorch."""

from bayesmeta import baselines, guides, model, nets, priors, tasks, transfer
from bayesmeta.errors import BayesmetaError, NonFiniteLossError, ShapeError
from bayesmeta.learners import (
    MAML,
    AdaptedPredictor,
    AugmentedSupport,
    BayesianMAML,
    BayesianProtoNet,
    History,
    MatchingNet,
    ProtoNet,
    Reptile,
    VariationalMetaLearner,
)
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction
from bayesmeta.scoring import metrics
from bayesmeta.scoring.evaluation import evaluate
from bayesmeta.tasks import Sinusoid, SinusoidOrLine, Task, TaskBatch
from bayesmeta.transfer import BayesianLastLayer, TransferLearner

__version__ = "0.1.0.dev0"

__all__ = [
    "MAML",
    "AdaptedPredictor",
    "AugmentedSupport",
    "BayesianLastLayer",
    "BayesianMAML",
    "BayesianProtoNet",
    "BayesmetaError",
    "ClassPrediction",
    "History",
    "MatchingNet",
    "NonFiniteLossError",
    "Prediction",
    "ProtoNet",
    "Reptile",
    "ShapeError",
    "Sinusoid",
    "SinusoidOrLine",
    "Task",
    "TaskBatch",
    "TransferLearner",
    "VariationalMetaLearner",
    "__version__",
    "baselines",
    "evaluate",
    "guides",
    "metrics",
    "model",
    "nets",
    "priors",
    "tasks",
    "transfer",
]
