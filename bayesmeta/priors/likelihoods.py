"""Old home of the likelihoods; they live in :mod:`bayesmeta.model.likelihoods` now."""

from bayesmeta.model.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    FunctionLikelihood,
    GaussianLikelihood,
    Likelihood,
    LikelihoodName,
    MSELikelihood,
    StudentTLikelihood,
    categorical_point_log_prob,
    make_likelihood,
)

__all__ = [
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "FunctionLikelihood",
    "GaussianLikelihood",
    "Likelihood",
    "LikelihoodName",
    "MSELikelihood",
    "StudentTLikelihood",
    "categorical_point_log_prob",
    "make_likelihood",
]
