"""Priors over network weights and observation models (likelihoods).

The classes live in :mod:`bayesmeta.model` (the one hierarchical model);
this namespace is where users pick them: ``prior=bm.priors.Laplace()``.
"""

from bayesmeta.model.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    FunctionLikelihood,
    GaussianLikelihood,
    Likelihood,
    MSELikelihood,
    StudentTLikelihood,
    make_likelihood,
)
from bayesmeta.model.priors import (
    Flat,
    GaussianPrior,
    Laplace,
    Normal,
    StudentT,
    WeightPrior,
    gaussian_kl,
)
from bayesmeta.priors.hierarchical import HierarchicalGaussianPrior, HyperPosterior

__all__ = [
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "Flat",
    "FunctionLikelihood",
    "GaussianLikelihood",
    "GaussianPrior",
    "HierarchicalGaussianPrior",
    "HyperPosterior",
    "Laplace",
    "Likelihood",
    "MSELikelihood",
    "Normal",
    "StudentT",
    "StudentTLikelihood",
    "WeightPrior",
    "gaussian_kl",
    "make_likelihood",
]
