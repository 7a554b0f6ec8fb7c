"""More classes from few: each rotation or reflection of a class is a new class.

Omniglot's few-shot protocol (Santoro et al. 2016) multiplies its classes by four with
rotations by 90, 180 and 270 degrees. :func:`augment_classes` does this (and, with
``flips=True``, the four reflections too: the eight symmetries of the square) for any image
array, so a small real source such as the digits 0-4 gives 20 or 40 meta-training classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError

__all__ = ["augment_classes"]


def augment_classes(
    x: Tensor,
    labels: Tensor,
    *,
    rotations: Sequence[int] = (0, 90, 180, 270),
    flips: bool = False,
) -> tuple[Tensor, Tensor]:
    """Treat each rotation (and reflection) of every class as a class of its own.

    Parameters
    ----------
    x
        Square images ``[M, C, S, S]`` (or ``[M, S, S]``).
    labels
        Integer class labels ``[M]`` in ``0 .. L-1`` (use the ones returned by
        ``torch.unique(..., return_inverse=True)`` for other values).
    rotations
        Distinct multiples of 90 degrees, counter-clockwise (``torch.rot90``); ``(0,)`` for
        none.
    flips
        Also each rotation of the left-right mirror image (``torch.flip`` on the last axis).

    Returns
    -------
    x : Tensor
        ``[M * R, ...]``, ``R = len(rotations) * (2 if flips else 1)`` transforms: transform
        ``j`` of every image, for ``j = 0 .. R-1`` in turn (rotations first, then the mirrored
        rotations).
    labels : Tensor
        Long labels ``[M * R]``: class ``i`` under transform ``j`` is ``i * R + j``, so
        ``labels // R`` is the original class (keep a class's transforms in one split).

    Raises
    ------
    ShapeError
        If the images are not square or ``labels`` does not match.
    ValueError
        If ``rotations`` is empty, repeats an angle or holds one that is not a multiple of 90,
        or a label is negative.

    Examples
    --------
    >>> x, y = torch.arange(8.0).reshape(2, 1, 2, 2), torch.tensor([0, 1])
    >>> ax, ay = augment_classes(x, y, flips=True)
    >>> tuple(ax.shape), ay.tolist()[:8]
    ((16, 1, 2, 2), [0, 8, 1, 9, 2, 10, 3, 11])

    """
    if not isinstance(x, Tensor) or not isinstance(labels, Tensor):
        raise TypeError("x and labels must be torch tensors")
    if x.dim() < 3 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"x must hold square images [M, (C,) S, S], got {fmt_shape(x.shape)}")
    if labels.dim() != 1 or labels.is_floating_point() or labels.shape[0] != x.shape[0]:
        raise ShapeError(
            f"labels must be integer [M] with M = {x.shape[0]}, got {fmt_shape(labels.shape)}"
        )
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"labels must be >= 0, got {int(labels.min())}")
    rots = [int(r) for r in rotations]
    if not rots or any(r % 90 for r in rots) or len({r % 360 for r in rots}) != len(rots):
        raise ValueError(
            "rotations must be distinct multiples of 90 degrees, e.g. (0, 90, 180, 270), "
            f"got {tuple(rotations)}"
        )
    bases = [x, torch.flip(x, dims=(-1,))] if flips else [x]
    images = [torch.rot90(b, k=(r // 90) % 4, dims=(-2, -1)) for b in bases for r in rots]
    count = len(images)
    y = labels.long()
    return torch.cat(images), torch.cat([y * count + j for j in range(count)])
