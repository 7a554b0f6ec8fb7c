"""Deprecated: moved to :mod:`bayesmeta.scoring.reliability`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.scoring.reliability import (
    ECE_BINS,
    Reliability,
    expected_calibration_error,
    reliability,
)

__all__ = [
    "ECE_BINS",
    "Reliability",
    "expected_calibration_error",
    "reliability",
]

moved(__name__, "bayesmeta.scoring.reliability")
