"""Deprecated: moved to :mod:`bayesmeta.training.distributed`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved

moved(__name__, "bayesmeta.training.distributed")
