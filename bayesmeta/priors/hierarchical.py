"""Deprecated: moved to :mod:`bayesmeta.model.hyper`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.model.hyper import (
    HierarchicalGaussianPrior,
    HyperPosterior,
)

__all__ = [
    "HierarchicalGaussianPrior",
    "HyperPosterior",
]

moved(__name__, "bayesmeta.model.hyper")
