"""Deprecated: moved to :mod:`bayesmeta.scoring.metrics`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.scoring.metrics import (
    ECE_BINS,
    PACOH_LEVELS,
    Reliability,
    accuracy,
    brier,
    calibration_curve,
    coverage,
    crps,
    expected_calibration_error,
    mean_ci,
    mse,
    nll,
    regression_calibration_error,
    reliability,
)

__all__ = [
    "ECE_BINS",
    "PACOH_LEVELS",
    "Reliability",
    "accuracy",
    "brier",
    "calibration_curve",
    "coverage",
    "crps",
    "expected_calibration_error",
    "mean_ci",
    "mse",
    "nll",
    "regression_calibration_error",
    "reliability",
]

moved(__name__, "bayesmeta.scoring.metrics")
