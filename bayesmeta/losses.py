"""Deprecated: moved to :mod:`bayesmeta.nets.losses`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.nets.losses import (
    OUTPUT_GRADS,
    LossName,
    ScaledLoss,
    StandardizedMSE,
    TaskLoss,
    cross_entropy,
    cross_entropy_output_grad,
    get_loss,
    mse,
    mse_output_grad,
)

__all__ = [
    "OUTPUT_GRADS",
    "LossName",
    "ScaledLoss",
    "StandardizedMSE",
    "TaskLoss",
    "cross_entropy",
    "cross_entropy_output_grad",
    "get_loss",
    "mse",
    "mse_output_grad",
]

moved(__name__, "bayesmeta.nets.losses")
