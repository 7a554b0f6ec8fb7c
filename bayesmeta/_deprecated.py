"""Old names kept for one release: moved modules and renamed keywords warn where they are used."""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

__all__ = ["MISSING", "moved", "renamed"]


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


def renamed(kwargs: dict[str, Any], old: str, new: str, *, stacklevel: int = 3) -> Any:
    """Pop the keyword ``old`` from ``kwargs``, warning that it is now called ``new``.

    For a function that takes ``**kwargs`` to accept a renamed keyword for one release:
    returns the old keyword's value, or :data:`MISSING` when it was not passed. The
    warning points at the caller's line (``stacklevel`` as for ``warnings.warn``, counted
    from the function that calls this one).

    Raises
    ------
    TypeError
        If any other keyword is left in ``kwargs`` (an unknown keyword).

    """
    value = kwargs.pop(old, MISSING)
    if kwargs:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(map(repr, kwargs))}")
    if value is not MISSING:
        warnings.warn(
            f"{old} is renamed {new}: pass {new}= instead (the old name goes in the next release)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
    return value


#: Stands for a keyword that was not passed.
MISSING: Any = object()
