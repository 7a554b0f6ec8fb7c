"""Task posteriors: what adapting to a task's support set produces."""

from bayesmeta.posteriors.gaussian import GaussianTaskPosterior, SampledPosterior, standard_normal
from bayesmeta.posteriors.lowrank import LowRankTaskPosterior

__all__ = ["GaussianTaskPosterior", "LowRankTaskPosterior", "SampledPosterior", "standard_normal"]
