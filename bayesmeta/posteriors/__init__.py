"""Task posteriors: what adapting to a task's support set produces."""

from bayesmeta.posteriors.gaussian import GaussianTaskPosterior, standard_normal

__all__ = ["GaussianTaskPosterior", "standard_normal"]
