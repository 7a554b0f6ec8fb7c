"""Deprecated: moved to :mod:`bayesmeta.scoring.plotting`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.scoring.plotting import (
    plot_coverage_curve,
    plot_loss_trace,
    plot_pit_histogram,
    plot_predictions,
    plot_reliability,
)

__all__ = [
    "plot_coverage_curve",
    "plot_loss_trace",
    "plot_pit_histogram",
    "plot_predictions",
    "plot_reliability",
]

moved(__name__, "bayesmeta.scoring.plotting")
