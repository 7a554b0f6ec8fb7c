"""Priors over network weights and observation models (likelihoods).

The classes live in :mod:`bayesmeta.model` (the one hierarchical model);
this namespace is where users pick them: ``prior=bm.priors.Laplace()``.
"""

from bayesmeta.model.hyper import HierarchicalGaussianPrior, HyperPosterior
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
