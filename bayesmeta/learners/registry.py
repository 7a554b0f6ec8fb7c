"""Learner classes by name, for rebuilding a learner from its ``config()``.

A learner's ``config()`` names its class (``{"learner": "BayesianMAML", ...}``);
:func:`learner_class` turns that name back into the class. The learners package
registers its learners when it is imported, and a package above it registers its
own (:mod:`bayesmeta.io` registers :class:`~bayesmeta.TransferLearner`), so that
checkpoints find every learner without importing each one.
"""

from __future__ import annotations

from typing import Any

from bayesmeta.errors import CheckpointError

__all__ = ["learner_class", "register", "registered"]

_REGISTRY: dict[str, type[Any]] = {}


def register(cls: type[Any]) -> type[Any]:
    """Register ``cls`` under its class name and return it (usable as a decorator).

    Raises
    ------
    ValueError
        If a different class is already registered under the same name.

    """
    name = cls.__name__
    known = _REGISTRY.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"a different learner is already registered as {name!r}: {known!r}")
    _REGISTRY[name] = cls
    return cls


def learner_class(name: object) -> type[Any]:
    """The learner class registered as ``name``.

    Raises
    ------
    CheckpointError
        If no learner is registered under ``name``.

    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise CheckpointError(f"unknown learner {name!r}; known: {registered()}")
    return _REGISTRY[name]


def registered() -> list[str]:
    """The registered learner names, sorted."""
    return sorted(_REGISTRY)
