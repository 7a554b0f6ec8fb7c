"""Task posteriors: what adapting to a task's support set produces."""

from bayesmeta.posteriors.gaussian import GaussianTaskPosterior, standard_normal
from bayesmeta.posteriors.lowrank import LowRankTaskPosterior

__all__ = ["GaussianTaskPosterior", "LowRankTaskPosterior", "standard_normal"]
