"""Deprecated: moved to :mod:`bayesmeta.runs.config_file`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.runs.config_file import (
    ConfigError,
    load_config,
    parse_config,
    read_config,
)

__all__ = [
    "ConfigError",
    "load_config",
    "parse_config",
    "read_config",
]

moved(__name__, "bayesmeta.runs.config_file")
