"""Deprecated: moved to :mod:`bayesmeta.runs.config`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.runs.config import (
    CLASSIFICATION_DATA,
    DATA,
    LEARNERS,
    METRIC_LEARNERS,
    DataName,
    LearnerName,
    RunConfig,
    applies,
)

__all__ = [
    "CLASSIFICATION_DATA",
    "DATA",
    "LEARNERS",
    "METRIC_LEARNERS",
    "DataName",
    "LearnerName",
    "RunConfig",
    "applies",
]

moved(__name__, "bayesmeta.runs.config")
