"""Deprecated: moved to :mod:`bayesmeta.runs.config`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved

moved(__name__, "bayesmeta.runs.config")
