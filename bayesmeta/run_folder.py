"""Deprecated: moved to :mod:`bayesmeta.runs.folder`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.runs.folder import (
    CHECKPOINT,
    FINISHED_FILES,
    RunFolderError,
    new_run_dir,
    read_json,
    read_run_config,
)

__all__ = [
    "CHECKPOINT",
    "FINISHED_FILES",
    "RunFolderError",
    "new_run_dir",
    "read_json",
    "read_run_config",
]

moved(__name__, "bayesmeta.runs.folder")
