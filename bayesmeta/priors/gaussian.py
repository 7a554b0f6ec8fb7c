"""Old home of the Gaussian weight prior; it lives in :mod:`bayesmeta.model.priors` now."""

from bayesmeta.model.priors import GaussianPrior, Normal, check_fits, gaussian_kl

__all__ = ["GaussianPrior", "Normal", "check_fits", "gaussian_kl"]
