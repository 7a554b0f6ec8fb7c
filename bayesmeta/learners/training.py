"""Deprecated: moved to :mod:`bayesmeta.training.loop`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta._progress import show_progress
from bayesmeta.training.loop import (
    History,
    check_finite,
    run_meta_fit,
)

__all__ = [
    "History",
    "check_finite",
    "run_meta_fit",
    "show_progress",
]

moved(__name__, "bayesmeta.training.loop")
