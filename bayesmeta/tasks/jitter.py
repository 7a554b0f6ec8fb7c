"""Small random deformations of images, within their class: :func:`jitter_images`.

Handwriting varies within a class by small shifts, rotations, slants and changes of size.
:func:`augment_classes` makes *new* classes from large transforms; jitter keeps the class and
teaches an embedding the invariances it should have. :class:`JitteredEpisodes` applies it to
every image of the episodes another source draws, a fresh deformation per image and draw, so a
learner meta-trained on it never sees the same image twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.tasks.source import SeededSource, TaskSource
from bayesmeta.tasks.task import TaskBatch

__all__ = ["Jitter", "JitteredEpisodes", "jitter_images"]


@dataclass(frozen=True)
class Jitter:
    """Strength of a random affine deformation, each drawn uniformly in ``[-max, max]``.

    Parameters
    ----------
    shift
        Largest translation along each axis, as a fraction of the image side.
    rotation
        Largest rotation, in degrees.
    shear
        Largest horizontal shear (a slant), in degrees.
    scale
        Largest relative change of size (``0.1``: from 0.9 to 1.1 times).

    Raises
    ------
    ValueError
        If a strength is negative or not finite, ``scale >= 1``, or ``rotation`` or
        ``shear`` reaches 90 degrees.

    """

    shift: float = 0.1
    rotation: float = 10.0
    shear: float = 10.0
    scale: float = 0.1

    def __post_init__(self) -> None:
        for name in ("shift", "rotation", "shear", "scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if self.scale >= 1:
            raise ValueError(
                f"scale must be below 1 (a size factor 1 - scale > 0), got {self.scale}"
            )
        for name in ("rotation", "shear"):
            if getattr(self, name) >= 90:
                raise ValueError(f"{name} must be below 90 degrees, got {getattr(self, name)}")


def jitter_images(x: Tensor, jitter: Jitter, *, generator: torch.Generator | None = None) -> Tensor:
    """Deform every image by its own random affine map (bilinear, zero outside the frame).

    Parameters
    ----------
    x
        Floating images ``[..., C, H, W]``, background 0 (dark), as the built-in sources
        give them.
    jitter
        The strength of the deformation.
    generator
        CPU generator of the random maps (torch's global one if ``None``).

    Returns
    -------
    Tensor
        ``[..., C, H, W]``, same dtype and device.

    Examples
    --------
    >>> x = torch.zeros(2, 3, 1, 8, 8)
    >>> tuple(jitter_images(x, Jitter()).shape)
    (2, 3, 1, 8, 8)

    """
    if not isinstance(jitter, Jitter):
        raise TypeError(f"jitter must be a Jitter, got {type(jitter).__name__}")
    if not isinstance(x, Tensor) or x.dim() < 3 or not x.is_floating_point():
        shape = fmt_shape(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"x must be floating images [..., C, H, W], got {shape}")
    flat = x.reshape(-1, *x.shape[-3:])
    m = flat.shape[0]
    if m == 0:
        return x
    u = torch.rand((m, 5), generator=generator, dtype=torch.float64) * 2 - 1
    angle = u[:, 0] * math.radians(jitter.rotation)
    shear = torch.tan(u[:, 1] * math.radians(jitter.shear))
    size = 1 + u[:, 2] * jitter.scale
    # affine_grid maps output coordinates in [-1, 1] to input ones: the inverse transform.
    cos, sin = torch.cos(angle) / size, torch.sin(angle) / size
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear * cos, 2 * jitter.shift * u[:, 3]], 1),
            torch.stack([sin, cos + shear * sin, 2 * jitter.shift * u[:, 4]], 1),
        ],
        1,
    ).to(device=x.device, dtype=x.dtype)
    grid = functional.affine_grid(theta, list(flat.shape), align_corners=False)
    out = functional.grid_sample(flat, grid, mode="bilinear", align_corners=False)
    return out.reshape(x.shape)


class JitteredEpisodes(SeededSource):
    """Episodes of another source with every image jittered (:func:`jitter_images`).

    Parameters
    ----------
    source
        Any task source of image episodes (``support_x [T, M, C, H, W]``), e.g.
        :class:`~bayesmeta.tasks.Episodes`.
    jitter
        Strength of the deformation.
    query
        Also jitter the query images (default); ``False`` jitters the support images only.
    seed
        Seed of the deformations (the episodes themselves come from ``source``'s generator,
        or from the ``generator`` passed to :meth:`sample`).

    Examples
    --------
    >>> from bayesmeta.tasks import Episodes
    >>> base = Episodes(torch.rand(40, 1, 8, 8), torch.arange(40) % 5, 5, 1, 2, seed=0)
    >>> tuple(JitteredEpisodes(base, Jitter(), seed=0).sample(3).query_x.shape)
    (3, 10, 1, 8, 8)

    """

    def __init__(
        self, source: TaskSource, jitter: Jitter, *, query: bool = True, seed: int | None = None
    ) -> None:
        super().__init__(seed=seed)
        if not isinstance(source, TaskSource):
            raise TypeError(f"source must have sample(num_tasks), got {type(source).__name__}")
        if not isinstance(jitter, Jitter):
            raise TypeError(f"jitter must be a Jitter, got {type(jitter).__name__}")
        self.source, self.jitter, self.query = source, jitter, bool(query)

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` episodes from ``source`` and jitter their images."""
        batch = self.source.sample(num_tasks, generator=generator)
        if batch.support_x.dim() != 5:
            raise ShapeError(
                "JitteredEpisodes needs image episodes [T, M, C, H, W], got support_x "
                f"{fmt_shape(batch.support_x.shape)}"
            )
        g = self._generator(generator)
        support = jitter_images(batch.support_x, self.jitter, generator=g)
        query = (
            jitter_images(batch.query_x, self.jitter, generator=g) if self.query else batch.query_x
        )
        return TaskBatch(
            support, batch.support_y, query, batch.query_y, batch.n_way, info=dict(batch.info)
        )
