"""Deprecated: moved to :mod:`bayesmeta.training.state`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.errors import CheckpointError
from bayesmeta.training.state import (
    TRAINING_FORMAT,
    Trainable,
    load_training_state,
    resume,
    save_training_state,
    tensor_checksum,
)

__all__ = [
    "TRAINING_FORMAT",
    "CheckpointError",
    "Trainable",
    "load_training_state",
    "resume",
    "save_training_state",
    "tensor_checksum",
]

moved(__name__, "bayesmeta.training.state")
