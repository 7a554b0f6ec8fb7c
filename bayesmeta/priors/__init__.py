"""Priors over network weights and observation models (likelihoods)."""

from bayesmeta.priors.gaussian import GaussianPrior, gaussian_kl
from bayesmeta.priors.hierarchical import HierarchicalGaussianPrior, HyperPosterior
from bayesmeta.priors.likelihoods import (
    CategoricalLikelihood,
    GaussianLikelihood,
    Likelihood,
    MSELikelihood,
    make_likelihood,
)

__all__ = [
    "CategoricalLikelihood",
    "GaussianLikelihood",
    "GaussianPrior",
    "HierarchicalGaussianPrior",
    "HyperPosterior",
    "Likelihood",
    "MSELikelihood",
    "gaussian_kl",
    "make_likelihood",
]
