"""Old import paths kept for one release: a module that moved warns where it was imported."""

from __future__ import annotations

import warnings

__all__ = ["moved"]


def moved(old: str, new: str) -> None:
    """Warn that module ``old`` moved to ``new`` (called by the shim left at ``old``).

    The warning points at the line that imported the old path.
    """
    warnings.warn(
        f"{old} moved to {new}; import from {new} instead (the old path goes in the next release)",
        DeprecationWarning,
        stacklevel=3,
    )
