"""An embedding that keeps the raw pixels beside the learned features: :class:`PixelSkip`.

On small images a nearest neighbour on raw pixels is a strong few-shot baseline, and an
embedding meta-learned on another domain can fall below it. :class:`PixelSkip` returns
``[f(x), s * x]`` (the encoder's features and the flattened pixels scaled by a learned
``s``), so a metric learner's squared distance is the feature distance plus ``s^2`` times
the pixel distance: it starts from the baseline's geometry and learns how much to move away.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["PixelSkip"]


class PixelSkip(nn.Module):
    """Concatenate an encoder's features with the scaled, flattened input.

    Parameters
    ----------
    encoder
        Maps inputs ``[N, *features]`` to embeddings ``[N, E]``.
    pixel_scale
        Initial scale ``s > 0`` of the pixels.
    learn_scale
        Learn ``log s`` with the encoder (default); ``False`` keeps it fixed.
    out_features
        With an int, a linear head maps ``[f(x), s * x]`` to that many scores (the network
        of a gradient learner such as MAML); ``None`` (default): no head, an embedding.
    input_shape
        The shape of one input, e.g. ``(1, 16, 16)``; needed (only) with ``out_features``, to
        size the head.

    Attributes
    ----------
    log_pixel_scale : nn.Parameter
        ``log s``, a scalar.
    feature_dims : int
        The encoder's ``feature_dims`` (input dimensions per point), where it has one.

    Examples
    --------
    >>> from bayesmeta.nets import Conv4
    >>> net = PixelSkip(Conv4(1, None, hidden=4, image_size=8))
    >>> tuple(net(torch.rand(3, 1, 8, 8)).shape)
    (3, 68)

    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        pixel_scale: float = 1.0,
        learn_scale: bool = True,
        out_features: int | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
        if isinstance(pixel_scale, bool) or not (
            isinstance(pixel_scale, int | float) and math.isfinite(pixel_scale) and pixel_scale > 0
        ):
            raise ValueError(f"pixel_scale must be finite and > 0, got {pixel_scale!r}")
        if out_features is not None and (
            isinstance(out_features, bool) or not isinstance(out_features, int) or out_features < 1
        ):
            raise ValueError(f"out_features must be an int >= 1 or None, got {out_features!r}")
        self.encoder = encoder
        self.log_pixel_scale = nn.Parameter(
            torch.tensor(math.log(pixel_scale), dtype=torch.get_default_dtype()),
            requires_grad=bool(learn_scale),
        )
        self.out_features = out_features
        self.head: nn.Linear | None = None
        if out_features is not None:
            if input_shape is None:
                raise ValueError("out_features needs input_shape, the shape of one input")
            with torch.no_grad():
                width = self._features(torch.zeros(2, *input_shape)).shape[1]
            self.head = nn.Linear(width, out_features)
        if hasattr(encoder, "feature_dims"):  # input dimensions per point, as learners read it
            self.feature_dims = encoder.feature_dims

    @property
    def pixel_scale(self) -> Tensor:
        """The scale ``s`` of the pixels (a scalar)."""
        return self.log_pixel_scale.exp()

    def forward(self, x: Tensor) -> Tensor:
        """Map inputs ``[N, *features]`` to ``[N, E + P]`` (``P`` pixels per input) or scores."""
        out = self._features(x)
        return out if self.head is None else self.head(out)

    def _features(self, x: Tensor) -> Tensor:
        z = self.encoder(x)
        if z.dim() != 2 or z.shape[0] != x.shape[0]:
            raise ValueError(
                f"the encoder must map {x.shape[0]} inputs to embeddings [N, E], got "
                f"{tuple(z.shape)}"
            )
        pixels = torch.flatten(x, 1) * self.pixel_scale.to(x.dtype)
        return torch.cat([z, pixels], 1)
