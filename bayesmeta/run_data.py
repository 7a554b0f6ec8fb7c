"""Deprecated: moved to :mod:`bayesmeta.runs.data`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.runs.data import (
    DATA_SEED,
    GLYPH_EXAMPLES,
    run_source,
)

__all__ = [
    "DATA_SEED",
    "GLYPH_EXAMPLES",
    "run_source",
]

moved(__name__, "bayesmeta.runs.data")
