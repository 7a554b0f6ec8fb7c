"""Networks whose weights can be held outside the module and batched over tasks."""

from bayesmeta.nets.conv import Conv4
from bayesmeta.nets.functional import BatchedForward, FunctionalNet
from bayesmeta.nets.mlp import ACTIVATIONS, MLP
from bayesmeta.nets.pixel_skip import PixelSkip

__all__ = ["ACTIVATIONS", "MLP", "BatchedForward", "Conv4", "FunctionalNet", "PixelSkip"]
