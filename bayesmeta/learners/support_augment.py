"""Test-time augmentation of the support set: :class:`AugmentedSupport`.

With one example per class, a learner adapts to a single image that may be shifted or slanted
against the queries. :class:`AugmentedSupport` adapts the learner it wraps to the support set
together with ``copies`` jittered copies of every support image
(:func:`~bayesmeta.tasks.jitter_images`), each with its image's label. For ProtoNet the
prototype is then the mean embedding over the image and its copies; a gradient learner takes
its inner steps on the enlarged set.

The copies are not new data: a Bayesian learner that counts them as independent examples
(Bayesian ProtoNet's posterior over prototypes) grows more confident. Check its calibration on
validation classes before relying on it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bayesmeta._checks import check_count, fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.tasks.jitter import Jitter, jitter_images

__all__ = ["AugmentedSupport"]


class AugmentedSupport:
    """A learner that adapts to its support images and ``copies`` jittered copies of each.

    Parameters
    ----------
    learner
        Any learner with ``adapt(support_x, support_y)`` on images.
    copies
        Jittered copies per support image, ``>= 1`` (the image itself is kept too).
    jitter
        Strength of the deformation (:class:`~bayesmeta.tasks.Jitter`).
    seed
        Seed of the deformations: the same seed jitters the same support set alike.

    Examples
    --------
    >>> from bayesmeta import ProtoNet
    >>> from bayesmeta.nets import Conv4
    >>> from bayesmeta.tasks import Jitter
    >>> tta = AugmentedSupport(ProtoNet(Conv4(1, None, hidden=4, image_size=8)), 4, Jitter())
    >>> pred = tta.adapt(torch.rand(2, 5, 1, 8, 8), torch.arange(5).repeat(2, 1))
    >>> tuple(pred.predict(torch.rand(2, 3, 1, 8, 8)).probs.shape)
    (2, 3, 5)

    """

    def __init__(self, learner: Any, copies: int, jitter: Jitter, *, seed: int = 0) -> None:
        if not callable(getattr(learner, "adapt", None)):
            raise TypeError(f"learner must have adapt(), got {type(learner).__name__}")
        if not isinstance(jitter, Jitter):
            raise TypeError(f"jitter must be a Jitter, got {type(jitter).__name__}")
        self.learner = learner
        self.copies = check_count("copies", copies, minimum=1)
        self.jitter = jitter
        self.generator = torch.Generator().manual_seed(int(seed))

    def augment(self, support_x: Tensor, support_y: Tensor) -> tuple[Tensor, Tensor]:
        """The support set followed by ``copies`` jittered copies of it.

        Parameters
        ----------
        support_x
            Images ``[T, M, C, H, W]`` (or one task, ``[M, C, H, W]``).
        support_y
            Labels ``[T, M]`` (or ``[M]``).

        Returns
        -------
        x : Tensor
            ``[T, M * (copies + 1), C, H, W]``: the originals first, then each round of copies.
        y : Tensor
            ``[T, M * (copies + 1)]``, the labels repeated alike.

        """
        if not isinstance(support_x, Tensor) or support_x.dim() not in (4, 5):
            shape = fmt_shape(support_x.shape) if isinstance(support_x, Tensor) else "?"
            raise ShapeError(
                f"support_x must be images [T, M, C, H, W] or [M, C, H, W], got {shape}"
            )
        if not isinstance(support_y, Tensor) or support_y.shape != support_x.shape[:-3]:
            raise ShapeError(
                f"support_y must be labels {fmt_shape(support_x.shape[:-3])}, got "
                f"{fmt_shape(support_y.shape) if isinstance(support_y, Tensor) else '?'}"
            )
        rounds = [support_x] + [
            jitter_images(support_x, self.jitter, generator=self.generator)
            for _ in range(self.copies)
        ]
        axis = support_x.dim() - 4
        return torch.cat(rounds, axis), torch.cat([support_y] * (self.copies + 1), axis)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Any:
        """Adapt the wrapped learner to the augmented support set (see :meth:`augment`)."""
        return self.learner.adapt(*self.augment(support_x, support_y))
