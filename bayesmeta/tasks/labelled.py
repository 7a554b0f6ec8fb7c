"""Labelled arrays: their labels and inputs checked, their classes split into groups.

:func:`split_classes` divides the classes of a data set into disjoint groups
(meta-train, validation, meta-test), so that the classes a learner is scored on were
never seen while meta-training; :class:`~bayesmeta.tasks.episodes.Episodes` draws
episodes from each group.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError

__all__ = ["as_inputs", "as_labels", "split_classes"]

_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def as_labels(name: str, value: Any) -> Tensor:
    """Return ``value`` as a 1-D long tensor of whole-number labels."""
    try:
        t = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"{name} must hold integer class labels; map names to integers first, "
            "e.g. with numpy.unique(names, return_inverse=True)"
        ) from err
    if t.dim() != 1:
        raise ShapeError(f"{name} must be 1-D [M], got shape {fmt_shape(t.shape)}")
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or bool((t != t.round()).any()):
            raise ValueError(f"{name} must hold whole-number class labels, got non-integer values")
    elif t.dtype not in _INT_DTYPES:
        raise ValueError(f"{name} must hold integer class labels, got dtype {t.dtype}")
    return t.to(torch.long)


def as_inputs(x: Any, dtype: torch.dtype) -> Tensor:
    """Return ``x`` as a floating ``[M, *features]`` tensor of finite values."""
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if not (t.is_floating_point() or t.dtype in _INT_DTYPES):
        raise ShapeError(f"x must hold numbers, got dtype {t.dtype}")
    if t.dim() == 0:
        raise ShapeError("x must have shape [M, *features], got a scalar")
    t = t.to(device="cpu", dtype=dtype)
    if t.dim() == 1:
        t = t.unsqueeze(-1)  # one feature per example
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"x holds {bad} NaN or infinite value(s); remove or impute them")
    return t


def split_classes(
    labels: Any,
    fractions: Sequence[float] | Sequence[int] = (0.64, 0.16, 0.2),
    *,
    seed: int | None = 0,
) -> tuple[Tensor, ...]:
    """Divide the classes in ``labels`` into disjoint random groups.

    Parameters
    ----------
    labels
        Class labels ``[M]`` of every example (or just the distinct classes).
    fractions
        Either fractions of the classes per group, positive and summing to 1
        (default ``(0.64, 0.16, 0.2)``: train, validation, test as in
        mini-ImageNet's 64/16/20), or whole-number counts of classes per group
        that sum to at most the number of classes.
    seed
        Seed of the shuffle; the same seed gives the same groups.

    Returns
    -------
    tuple of Tensor
        One sorted long tensor of class labels per group, disjoint.

    Raises
    ------
    ValueError
        If the fractions or counts are invalid, or a group would be empty.

    Examples
    --------
    >>> train, val, test = split_classes(torch.arange(100) % 10, (6, 2, 2), seed=0)
    >>> len(train), len(val), len(test)
    (6, 2, 2)

    """
    classes = torch.unique(as_labels("labels", labels))
    c = int(classes.numel())
    if c == 0:
        raise ValueError("labels is empty; there are no classes to split")
    parts = list(fractions)
    if len(parts) == 0:
        raise ValueError("fractions must name at least one group")
    if all(isinstance(p, int | np.integer) and not isinstance(p, bool) for p in parts):
        counts = [int(p) for p in parts]
        if any(n < 1 for n in counts):
            raise ValueError(f"class counts must be >= 1, got {counts}")
        if sum(counts) > c:
            raise ValueError(
                f"class counts {counts} sum to {sum(counts)} but labels holds only {c} classes"
            )
    else:
        fr = [float(p) for p in parts]
        if any(not (math.isfinite(f) and f > 0) for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
            raise ValueError(
                f"fractions must be positive and sum to 1 (or be whole-number counts), got {parts}"
            )
        # Largest-remainder rounding: the counts sum to exactly c.
        raw = [f * c for f in fr]
        counts = [math.floor(r) for r in raw]
        order = sorted(range(len(fr)), key=lambda i: raw[i] - counts[i], reverse=True)
        for i in order[: c - sum(counts)]:
            counts[i] += 1
        if any(n < 1 for n in counts):
            raise ValueError(
                f"fractions {parts} of {c} classes leave group(s) "
                f"{[i for i, n in enumerate(counts) if n < 1]} empty (counts {counts}); "
                "use more classes, other fractions, or explicit counts"
            )
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    shuffled = classes[torch.randperm(c, generator=g)]
    bounds = itertools.accumulate(counts, initial=0)
    return tuple(torch.sort(shuffled[a:b]).values for a, b in itertools.pairwise(bounds))
