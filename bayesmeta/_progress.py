"""One progress-bar policy for every long loop (meta-training, fitting, evaluation)."""

from __future__ import annotations

import sys

__all__ = ["show_progress"]


def show_progress(progress: bool | None) -> bool:
    """Whether to draw a progress bar: as asked, or (``None``) when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else bool(progress)
