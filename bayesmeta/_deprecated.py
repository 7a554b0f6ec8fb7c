"""Old import paths kept for one release: a module that moved warns where it was imported."""

from __future__ import annotations

import importlib
import sys
import warnings

__all__ = ["moved"]


def moved(old: str, new: str) -> None:
    """Make module ``old`` stand for ``new``, with a warning (called by the shim at ``old``).

    The shim's import then yields the new module itself (``sys.modules[old]`` is
    replaced while the shim runs), so every name, public or private, is the
    moved one. The warning points at the line that imported the old path.
    """
    warnings.warn(
        f"{old} moved to {new}; import from {new} instead (the old path goes in the next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old] = importlib.import_module(new)
