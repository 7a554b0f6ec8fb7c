"""A learned diagonal Gaussian prior over a network's weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor, nn

from bayesmeta.errors import ShapeError
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.tasks._checks import fmt_shape

if TYPE_CHECKING:
    from bayesmeta.priors.hierarchical import HierarchicalGaussianPrior

__all__ = ["GaussianPrior", "gaussian_kl"]


def gaussian_kl(q_loc: Tensor, q_scale: Tensor, p_loc: Tensor, p_scale: Tensor) -> Tensor:
    """``KL(N(q_loc, q_scale^2) || N(p_loc, p_scale^2))`` summed over the last dimension.

    Parameters
    ----------
    q_loc, q_scale
        ``[*B, P]``.
    p_loc, p_scale
        Broadcastable to ``[*B, P]``.

    Returns
    -------
    Tensor
        ``[*B]``.

    """
    ratio = (q_scale / p_scale).pow(2)
    mahal = ((q_loc - p_loc) / p_scale).pow(2)
    return 0.5 * (ratio + mahal - 1.0 - ratio.log()).sum(-1)


class GaussianPrior(nn.Module):
    """``theta ~ N(loc, diag(scale^2))`` over the ``P`` weights of a network.

    The location and scale are meta-learned unless frozen. The scale is
    stored as its logarithm, one value per weight or one per parameter tensor
    (``scale_per="tensor"``, e.g. one for a layer's weight and one for its
    bias).

    Parameters
    ----------
    loc
        Prior mean ``[P]`` (copied into an ``nn.Parameter``), or a
        :class:`~bayesmeta.nets.FunctionalNet` whose module's own weights *are*
        the prior mean (tied: training the module trains the mean, and the
        prior holds no copy). Learners use the tied form, so that
        ``learner.net`` holds the meta-learned mean weights as in MAML.
    scale
        Prior standard deviation: a positive float, or ``[P]`` (or one value
        per tensor with ``scale_per="tensor"``).
    numels
        Sizes of the network's parameter tensors, in order (needed for
        ``scale_per="tensor"``); :meth:`for_net` fills it in.
    scale_per
        ``"weight"`` or ``"tensor"``.
    learn_loc, learn_scale
        Whether the location / scale are trainable.

    Examples
    --------
    >>> from bayesmeta.nets import MLP, FunctionalNet
    >>> prior = GaussianPrior.for_net(FunctionalNet(MLP((1, 8, 1))), scale=0.1)
    >>> prior.log_prob(prior.loc.expand(3, -1)).shape
    torch.Size([3])

    """

    def __init__(
        self,
        loc: Tensor | FunctionalNet,
        scale: float | Tensor = 1.0,
        *,
        numels: Sequence[int] | None = None,
        scale_per: Literal["weight", "tensor"] = "weight",
        learn_loc: bool = True,
        learn_scale: bool = True,
    ) -> None:
        super().__init__()
        self._tied: FunctionalNet | None = None
        if isinstance(loc, FunctionalNet):
            self._tied = loc
            loc = loc.flatten([p.detach() for p in loc.params()])
        if not isinstance(loc, Tensor) or loc.dim() != 1 or loc.numel() == 0:
            raise ShapeError(f"loc must be a non-empty vector [P], got {_shape(loc)}")
        if not bool(torch.isfinite(loc).all()):
            raise ValueError("loc holds NaN or infinite values")
        if scale_per not in ("weight", "tensor"):
            raise ValueError(f"scale_per must be 'weight' or 'tensor', got {scale_per!r}")
        p = loc.numel()
        self.numels = tuple(int(n) for n in numels) if numels is not None else (p,)
        if sum(self.numels) != p:
            raise ShapeError(f"numels {self.numels} sum to {sum(self.numels)}, but loc has P = {p}")
        self.scale_per = scale_per
        size = p if scale_per == "weight" else len(self.numels)
        s = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        if s.dim() == 0:
            s = s.expand(size)
        if s.shape != (size,):
            raise ShapeError(
                f"scale must be a float or have shape [{size}] (one per {scale_per}), "
                f"got {fmt_shape(s.shape)}"
            )
        if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise ValueError("prior scale must be positive and finite")
        self._loc: nn.Parameter | None = None
        if self._tied is None:
            self._loc = nn.Parameter(loc.detach().clone(), requires_grad=learn_loc)
        self.log_scale = nn.Parameter(s.detach().log().clone(), requires_grad=learn_scale)

    @classmethod
    def for_net(
        cls,
        fnet: FunctionalNet,
        *,
        scale: float = 0.1,
        loc: Literal["tied", "module", "zeros"] | Tensor = "module",
        scale_per: Literal["weight", "tensor"] = "weight",
        learn_loc: bool = True,
        learn_scale: bool = True,
    ) -> GaussianPrior:
        """A prior for ``fnet``'s weights.

        Parameters
        ----------
        fnet
            The functional network.
        scale
            Initial prior standard deviation.
        loc
            ``"tied"`` makes the module's weights the prior mean (see the
            class docstring); ``"module"`` centres the prior on a copy of the
            module's current weights; ``"zeros"`` at zero; or a tensor ``[P]``.
        scale_per, learn_loc, learn_scale
            As for the constructor.

        Raises
        ------
        ShapeError
            If a given ``loc`` does not have the network's ``P`` weights.

        """
        centre: Tensor | FunctionalNet
        if isinstance(loc, Tensor):
            if loc.shape != (fnet.num_params,):
                raise ShapeError(
                    f"the prior's loc has shape {fmt_shape(loc.shape)} but the network has "
                    f"P = {fnet.num_params} weights"
                )
            centre = loc
        elif loc == "tied":
            centre = fnet
        elif loc == "module":
            centre = fnet.flatten([p.detach() for p in fnet.params()])
        elif loc == "zeros":
            centre = torch.zeros(fnet.num_params, dtype=fnet.params()[0].dtype)
        else:
            raise ValueError(f"loc must be 'tied', 'module', 'zeros' or a tensor, got {loc!r}")
        return cls(
            centre,
            scale,
            numels=fnet.numels,
            scale_per=scale_per,
            learn_loc=learn_loc,
            learn_scale=learn_scale,
        )

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        *,
        scale: float = 0.1,
        scale_per: Literal["weight", "tensor"] = "weight",
        learn_loc: bool = False,
        learn_scale: bool = True,
    ) -> GaussianPrior:
        """A prior centred on an existing network's weights (the transfer prior).

        The location is frozen by default (it is the source-domain knowledge);
        the scale, which says how far the target may move from it, is learned
        unless ``learn_scale=False``. MAP estimation under this prior is L2-SP.
        """
        return cls.for_net(
            FunctionalNet(module),
            scale=scale,
            loc="module",
            scale_per=scale_per,
            learn_loc=learn_loc,
            learn_scale=learn_scale,
        )

    @property
    def loc(self) -> Tensor:
        """Prior mean ``[P]``."""
        if self._tied is not None:
            return self._tied.flatten(self._tied.params())
        assert self._loc is not None
        return self._loc

    @property
    def num_params(self) -> int:
        """Number of weights ``P``."""
        return sum(self.numels)

    @property
    def scale(self) -> Tensor:
        """Prior standard deviation per weight ``[P]``."""
        s = self.log_scale.exp()
        if self.scale_per == "tensor":
            sizes = torch.tensor(self.numels, device=s.device)
            s = torch.repeat_interleave(s, sizes, output_size=self.num_params)
        return s

    def check(self, fnet: FunctionalNet) -> GaussianPrior:
        """Raise :class:`ShapeError` unless the prior fits ``fnet``; return ``self``."""
        check_fits(self, fnet)
        return self

    def log_prob(self, theta: Tensor) -> Tensor:
        """Log density of weights ``[*B, P]``; returns ``[*B]``."""
        z = (theta - self.loc) / self.scale
        return (-0.5 * z * z - self.log_scale_per_weight() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def log_scale_per_weight(self) -> Tensor:
        """``log(scale)`` per weight ``[P]``."""
        return self.scale.log() if self.scale_per == "tensor" else self.log_scale

    def kl_from(self, q_loc: Tensor, q_log_scale: Tensor) -> Tensor:
        """``KL(q || prior)`` for diagonal Gaussians ``q``.

        Computed as ``0.5 (sum((s_q^2 + (m_q - mu)^2) / sigma^2) - P)
        + sum(log sigma) - sum(log s_q)``, with the weighted sum as one
        matrix-vector product (this sits on the meta-training hot path).

        Parameters
        ----------
        q_loc, q_log_scale
            Mean and log standard deviation of ``q``, ``[*B, P]``.

        Returns
        -------
        Tensor
            ``[*B]``.

        """
        p_log_scale = self.log_scale_per_weight()
        diff = q_loc - self.loc
        spread = (2.0 * q_log_scale).exp() + diff * diff
        quad = spread @ (-2.0 * p_log_scale).exp()
        return 0.5 * (quad - self.num_params) + p_log_scale.sum() - q_log_scale.sum(-1)

    def distribution(self) -> pdist.TorchDistribution:
        """The prior as a Pyro distribution with event shape ``[P]``."""
        return pdist.Normal(self.loc, self.scale).to_event(1)

    def sample_site(self, name: str = "theta") -> Tensor:
        """``pyro.sample(name, prior)`` inside the caller's plates; returns ``[*plates, P]``."""
        return pyro.sample(name, self.distribution())

    def extra_repr(self) -> str:
        """Size and scale layout, shown in ``repr``."""
        return f"P={self.num_params}, scale_per={self.scale_per!r}"


def check_fits(prior: GaussianPrior | HierarchicalGaussianPrior, fnet: FunctionalNet) -> None:
    """Raise :class:`ShapeError` unless a weight prior's layout fits ``fnet``'s weights."""
    name = type(prior).__name__
    if prior.num_params != fnet.num_params:
        raise ShapeError(
            f"the prior is over P = {prior.num_params} weights but the network has "
            f"P = {fnet.num_params}; build it with {name}.for_net(fnet)"
        )
    if prior.scale_per == "tensor" and prior.numels != fnet.numels:
        raise ShapeError(
            f"the prior's per-tensor sizes {prior.numels} differ from the network's {fnet.numels}"
        )


def _shape(value: object) -> str:
    return fmt_shape(value.shape) if isinstance(value, Tensor) else type(value).__name__
