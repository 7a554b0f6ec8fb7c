"""Old home of the shared argument checks; they live in :mod:`bayesmeta._checks` now.

A private module: this re-export keeps in-flight code importing from here working and
goes once nothing in the repository does.
"""

from bayesmeta._checks import (
    check_count,
    check_like,
    check_pair,
    check_support,
    check_tensor,
    fmt_shape,
    is_bool,
    positive,
    positive_scalar,
)

__all__ = [
    "check_count",
    "check_like",
    "check_pair",
    "check_support",
    "check_tensor",
    "fmt_shape",
    "is_bool",
    "positive",
    "positive_scalar",
]
