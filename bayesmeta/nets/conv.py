"""The standard four-block convolutional network of few-shot classification."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Conv4"]


class Conv4(nn.Module):
    """Four blocks of 3x3 convolution, batch norm, ReLU and 2x2 max-pooling.

    The backbone of MAML's and ProtoNet's few-shot image experiments (Vinyals
    et al. 2016; Finn et al. 2017; Snell et al. 2017). With ``out_features``
    set, a linear head maps the flattened features to class scores (the
    network of the gradient-based learners); with ``out_features=None`` the
    network is an encoder whose output is the flattened feature map (the
    embedding of ProtoNet and Matching Networks).

    Parameters
    ----------
    in_channels
        Image channels ``C``.
    out_features
        Classes of the linear head, or ``None`` for an encoder.
    hidden
        Channels of every convolution (64 in the papers; 32 is common for
        MAML on mini-ImageNet).
    image_size
        Height and width of the (square) inputs, to size the head; pooling
        rounds up, so small images such as 8x8 digits keep a 1x1 map.
    track_running_stats
        Keep running batch-norm statistics for evaluation. ``False`` (the
        default) normalises with each batch's own statistics in training and
        at test time, as MAML's reference implementation does; it is required
        when the network is evaluated with per-task weights
        (:class:`~bayesmeta.nets.FunctionalNet`), where buffers must not be
        updated.

    Attributes
    ----------
    feature_dims : int
        3: one input point is ``[C, H, W]``.
    embedding_dim : int
        Size of the flattened feature map (the encoder's output).

    Examples
    --------
    >>> net = Conv4(1, out_features=5, hidden=16, image_size=28)
    >>> net(torch.zeros(7, 1, 28, 28)).shape
    torch.Size([7, 5])
    >>> Conv4(1, None, hidden=16, image_size=28).embedding_dim
    16

    """

    feature_dims = 3

    def __init__(
        self,
        in_channels: int = 1,
        out_features: int | None = 5,
        *,
        hidden: int = 64,
        image_size: int = 28,
        track_running_stats: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be an int >= 1, got {image_size!r}")
        if out_features is not None and (
            isinstance(out_features, bool) or not isinstance(out_features, int) or out_features < 1
        ):
            raise ValueError(f"out_features must be an int >= 1 or None, got {out_features!r}")
        self.in_channels = in_channels
        self.out_features = out_features
        self.hidden = hidden
        self.image_size = image_size
        self.track_running_stats = track_running_stats
        blocks: list[nn.Module] = []
        channels = in_channels
        for _ in range(4):
            blocks += [
                nn.Conv2d(channels, hidden, 3, padding=1),
                nn.BatchNorm2d(hidden, track_running_stats=track_running_stats),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            channels = hidden
        self.features = nn.Sequential(*blocks)
        side = image_size
        for _ in range(4):
            side = -(-side // 2)
        self.embedding_dim = hidden * side * side
        self.head = None if out_features is None else nn.Linear(self.embedding_dim, out_features)

    def forward(self, x: Tensor) -> Tensor:
        """Map images ``[N, C, H, W]`` to scores ``[N, out_features]`` or embeddings ``[N, E]``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv4 takes images [N, {self.in_channels}, H, W], got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"Conv4 takes floating images, got {x.dtype}")
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"Conv4 was built for {self.image_size}x{self.image_size} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}"
            )
        z = torch.flatten(self.features(x), 1)
        return z if self.head is None else self.head(z)

    def config(self) -> dict[str, int | bool | None]:
        """The constructor arguments (JSON-ready), for checkpoints."""
        return {
            "in_channels": self.in_channels,
            "out_features": self.out_features,
            "hidden": self.hidden,
            "image_size": self.image_size,
            "track_running_stats": self.track_running_stats,
        }
