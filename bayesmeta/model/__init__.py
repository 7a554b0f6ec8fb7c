"""The one hierarchical Pyro model that every learner is a configuration of.

``theta_t ~ p(theta | psi)`` per task (plate ``"tasks"``, site ``"theta"``),
``y_t ~ p(y | f(x_t; theta_t))`` (site ``"y"``): priors in
:mod:`bayesmeta.model.priors`, likelihoods in :mod:`bayesmeta.model.likelihoods`,
the model itself in :mod:`bayesmeta.model.task_model`; the prototype learners'
model over class means in :mod:`bayesmeta.model.class_mean_model`.
"""

from bayesmeta.model.class_mean_model import ClassMeanModel
from bayesmeta.model.learner_model import LearnerModel
from bayesmeta.model.likelihoods import Likelihood, make_likelihood
from bayesmeta.model.priors import Flat, Laplace, Normal, StudentT, WeightPrior
from bayesmeta.model.task_model import TaskModel

__all__ = [
    "ClassMeanModel",
    "Flat",
    "Laplace",
    "LearnerModel",
    "Likelihood",
    "Normal",
    "StudentT",
    "TaskModel",
    "WeightPrior",
    "make_likelihood",
]
