"""Named exceptions raised by bayesmeta.

Every error says what was wrong and how to fix it. Shape and value problems in
user input are :class:`ValueError` subclasses so that ``except ValueError``
keeps working for callers who do not import bayesmeta's names.
"""

from __future__ import annotations

__all__ = [
    "BayesmetaError",
    "CheckpointError",
    "NonFiniteLossError",
    "ShapeError",
]


class BayesmetaError(Exception):
    """Base class of the errors that bayesmeta raises on purpose."""


class ShapeError(BayesmetaError, ValueError):
    """An argument has the wrong shape, number of dimensions or dtype."""


class CheckpointError(BayesmetaError, ValueError):
    """A checkpoint is missing, corrupted, or does not fit the learner."""


class NonFiniteLossError(BayesmetaError, FloatingPointError):
    """A training objective became NaN or infinite.

    Fitting stops at the first non-finite loss, before any parameter is updated
    with it, so the learner still holds the last finite parameters. When raised
    by ``meta_fit``, ``history`` holds what was recorded up to the stop.
    """

    history: object | None = None
