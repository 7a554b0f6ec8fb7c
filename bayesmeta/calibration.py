"""Deprecated: moved to :mod:`bayesmeta.scoring.calibration`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.scoring.calibration import (
    COVERAGE_LEVELS,
    PACOH_LEVELS,
    calibration_curve,
    coverage_curve,
    pit_values,
    regression_calibration_error,
)

__all__ = [
    "COVERAGE_LEVELS",
    "PACOH_LEVELS",
    "calibration_curve",
    "coverage_curve",
    "pit_values",
    "regression_calibration_error",
]

moved(__name__, "bayesmeta.scoring.calibration")
