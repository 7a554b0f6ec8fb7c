"""What every learner's Pyro model shares: the meta-parameters read as constants.

A learner's model (``learner.model``) reads the learner's meta-parameters (a
prior's location and scale, a noise scale, an encoder). Pyro inference on the
model (NUTS, SVI with an autoguide, ``Predictive``) must not write gradients
into them, so the model switches their ``requires_grad`` off while it runs,
unless it was made for meta-training (``learn=True``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import Tensor, nn

__all__ = ["LearnerModel"]


class LearnerModel:
    """Base of the learners' Pyro models: ``model(x, y=None, ...)``.

    Parameters
    ----------
    owner
        The module holding the meta-parameters (the learner); with
        ``learn=False`` its parameters are read without gradients while the
        model runs.
    learn
        Let gradients reach the owner's parameters (meta-training).

    """

    def __init__(self, *, owner: nn.Module | None = None, learn: bool = False) -> None:
        self.owner = owner
        self.learn = bool(learn)

    def __call__(self, x: Tensor, y: Tensor | None = None, *args: Any, **kwargs: Any) -> Tensor:
        """Run the model on inputs ``x`` (targets ``y`` observed, or sampled when ``None``)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _frozen(self) -> Iterator[None]:
        """Inside: the owner's trainable parameters do not require grad (unless ``learn``)."""
        if self.learn or self.owner is None:
            yield
            return
        live = [p for p in self.owner.parameters() if p.requires_grad]
        for p in live:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in live:
                p.requires_grad_(True)
