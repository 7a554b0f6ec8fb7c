"""The base of the weight priors: location, scale, binding to a network, KL, quadrature.

:class:`WeightPrior` holds what every prior over a network's ``P`` weights
shares (see :mod:`bayesmeta.model.priors` for the families): a location that
may be tied to the network's own weights, a meta-learned scale, binding to a
network after construction, its Pyro distribution, and the KL from a
diagonal Gaussian (exact entropy, the cross term by Gauss-Hermite quadrature
where a family has no closed form).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor, nn
from torch.distributions import kl_divergence

from bayesmeta._checks import fmt_shape, is_bool
from bayesmeta.errors import ShapeError
from bayesmeta.model.weight_layout import check_fits, positive_vector, weights_centre
from bayesmeta.nets.functional import FunctionalNet

__all__ = [
    "KL_POINTS",
    "LocSpec",
    "WeightPrior",
    "check_fits",
    "gaussian_kl",
    "positive_vector",
    "weights_centre",
]


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
    return kl_divergence(pdist.Normal(q_loc, q_scale), pdist.Normal(p_loc, p_scale)).sum(-1)


LocSpec = Literal["tied", "module", "zeros"]

#: Gauss-Hermite nodes per weight of the KL's cross term where it has no closed form.
KL_POINTS = 5


def _hermite(num_points: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Nodes and weights of ``E[f(z)] ~ sum_i w_i f(z_i)`` for ``z ~ N(0, 1)``."""
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_points)
    as_tensor = functools.partial(torch.as_tensor, dtype=like.dtype, device=like.device)
    return as_tensor(nodes), as_tensor(weights / math.sqrt(2.0 * math.pi))


class WeightPrior(nn.Module):
    """Base of the priors ``theta ~ p(theta | loc, scale)`` over a network's ``P`` weights.

    The location and scale are meta-learned unless frozen. The scale is
    stored as its logarithm, one value per weight or one per parameter tensor
    (``scale_per="tensor"``, e.g. one for a layer's weight and one for its
    bias). Subclasses name the Pyro distribution family (:meth:`family`).

    Parameters
    ----------
    loc
        Prior location ``[P]`` (copied into an ``nn.Parameter``), or a
        :class:`~bayesmeta.nets.FunctionalNet` whose module's own weights *are*
        the location (tied: training the module trains the location, and the
        prior holds no copy), or ``None``: unbound until a learner calls
        :meth:`bind` with its network (then tied to it).
    scale
        Prior scale: a positive float, or ``[P]`` (one value per tensor with
        ``scale_per="tensor"``); ``None`` takes the learner's default when it
        binds the prior.
    numels
        Sizes of the network's parameter tensors, in order (needed for
        ``scale_per="tensor"``); :meth:`bind` fills it in.
    scale_per
        ``"weight"`` or ``"tensor"``.
    learn_loc, learn_scale
        Whether the location / scale are trainable.

    Examples
    --------
    >>> from bayesmeta.nets import MLP, FunctionalNet
    >>> prior = Laplace(scale=0.1).bind(FunctionalNet(MLP((1, 8, 1))))
    >>> prior.log_prob(prior.loc.expand(3, -1)).shape
    torch.Size([3])

    """

    def __init__(
        self,
        loc: Tensor | FunctionalNet | None = None,
        scale: float | Tensor | None = None,
        *,
        numels: Sequence[int] | None = None,
        scale_per: Literal["weight", "tensor"] = "weight",
        learn_loc: bool = True,
        learn_scale: bool = True,
    ) -> None:
        super().__init__()
        if scale_per not in ("weight", "tensor"):
            raise ValueError(f"scale_per must be 'weight' or 'tensor', got {scale_per!r}")
        if is_bool(scale):
            raise TypeError("scale must be a number or a floating tensor, got a bool")
        if scale is not None and not isinstance(scale, Tensor):
            if not isinstance(scale, int | float):
                raise TypeError(f"scale must be a number or a tensor, got {type(scale).__name__}")
            if not (math.isfinite(scale) and scale > 0):
                raise ValueError(f"prior scale must be positive and finite, got {scale}")
        self.scale_per = scale_per
        self.learn_loc, self.learn_scale = bool(learn_loc), bool(learn_scale)
        self._init_scale = scale
        self._tied: FunctionalNet | None = None
        self._loc: nn.Parameter | None = None
        self.log_scale: nn.Parameter | None = None
        self.numels: tuple[int, ...] = ()
        if loc is not None:
            self._bind(loc, 1.0 if scale is None else scale, numels)

    def family(self, loc: Tensor, scale: Tensor) -> pdist.TorchDistribution:
        """The per-weight distribution (batch shape ``[*B, P]``) at ``loc`` and ``scale``."""
        raise NotImplementedError

    def stddev(self) -> Tensor:
        """The prior's standard deviation per weight ``[P]`` (where task posteriors start)."""
        return self.scale

    # -- binding to a network ---------------------------------------------------

    @property
    def is_bound(self) -> bool:
        """Whether the prior knows its network's weights (its location and size)."""
        return self.log_scale is not None

    def bind(
        self,
        fnet: FunctionalNet,
        *,
        scale: float = 0.1,
        loc: LocSpec | Tensor = "tied",
    ) -> WeightPrior:
        """Lay the prior over ``fnet``'s weights; return ``self``.

        A prior made with its location already (e.g. :meth:`from_module`) is
        only checked against ``fnet``.

        Parameters
        ----------
        fnet
            The functional network.
        scale
            Scale used when the prior was made without one.
        loc
            ``"tied"`` makes the module's weights the location (see the class
            docstring); ``"module"`` centres the prior on a copy of the
            module's current weights; ``"zeros"`` at zero; or a tensor ``[P]``.

        Raises
        ------
        ShapeError
            If a given ``loc`` does not have the network's ``P`` weights, or a
            bound prior does not fit ``fnet``.

        """
        if self.is_bound:
            check_fits(self, fnet)
            return self
        centre = fnet if loc == "tied" else weights_centre(fnet, loc)
        chosen = self._init_scale if self._init_scale is not None else scale
        self._bind(centre, chosen, fnet.numels)
        return self

    def _bind(
        self,
        loc: Tensor | FunctionalNet,
        scale: float | Tensor,
        numels: Sequence[int] | None,
    ) -> None:
        if isinstance(loc, FunctionalNet):
            self._tied = loc
            loc = loc.flatten([p.detach() for p in loc.params()])
        if is_bool(loc):
            raise TypeError("loc must be a floating tensor [P] or a FunctionalNet, got a bool")
        if not isinstance(loc, Tensor) or loc.dim() != 1 or loc.numel() == 0:
            raise ShapeError(f"loc must be a non-empty vector [P], got {_shape(loc)}")
        if not bool(torch.isfinite(loc).all()):
            raise ValueError("loc holds NaN or infinite values")
        p = loc.numel()
        self.numels = tuple(int(n) for n in numels) if numels is not None else (p,)
        if sum(self.numels) != p:
            raise ShapeError(f"numels {self.numels} sum to {sum(self.numels)}, but loc has P = {p}")
        size = p if self.scale_per == "weight" else len(self.numels)
        s = positive_vector("scale", scale, size, f"one per {self.scale_per}", loc)
        if self._tied is None:
            self._loc = nn.Parameter(loc.detach().clone(), requires_grad=self.learn_loc)
        self.log_scale = nn.Parameter(s.detach().log().clone(), requires_grad=self.learn_scale)

    def _bound(self) -> nn.Parameter:
        if self.log_scale is None:
            raise RuntimeError(
                f"this {type(self).__name__} prior is not bound to a network yet; give it to a "
                "learner (prior=...) or call prior.bind(FunctionalNet(net))"
            )
        return self.log_scale

    @classmethod
    def for_net(
        cls,
        fnet: FunctionalNet,
        *,
        scale: float = 0.1,
        loc: LocSpec | Tensor = "module",
        scale_per: Literal["weight", "tensor"] = "weight",
        learn_loc: bool = True,
        learn_scale: bool = True,
    ) -> WeightPrior:
        """A prior for ``fnet``'s weights (see :meth:`bind` for ``loc``)."""
        prior = cls(scale=scale, scale_per=scale_per, learn_loc=learn_loc, learn_scale=learn_scale)
        return prior.bind(fnet, scale=scale, loc=loc)

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        *,
        scale: float = 0.1,
        scale_per: Literal["weight", "tensor"] = "weight",
        learn_loc: bool = False,
        learn_scale: bool = True,
    ) -> WeightPrior:
        """A prior centred on an existing network's weights (the transfer prior).

        The location is frozen by default (it is the source-domain knowledge);
        the scale, which says how far the target may move from it, is learned
        unless ``learn_scale=False``. MAP estimation under a Normal one is L2-SP.
        """
        return cls.for_net(
            FunctionalNet(module),
            scale=scale,
            loc="module",
            scale_per=scale_per,
            learn_loc=learn_loc,
            learn_scale=learn_scale,
        )

    # -- the distribution --------------------------------------------------------

    @property
    def loc(self) -> Tensor:
        """Prior location ``[P]``."""
        self._bound()
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
        """Prior scale per weight ``[P]``."""
        s = self._bound().exp()
        if self.scale_per == "tensor":
            sizes = torch.tensor(self.numels, device=s.device)
            s = torch.repeat_interleave(s, sizes, output_size=self.num_params)
        return s

    def log_scale_per_weight(self) -> Tensor:
        """``log(scale)`` per weight ``[P]``."""
        return self.scale.log() if self.scale_per == "tensor" else self._bound()

    def check(self, fnet: FunctionalNet) -> WeightPrior:
        """Raise :class:`ShapeError` unless the prior fits ``fnet``; return ``self``."""
        check_fits(self, fnet)
        return self

    def distribution(self) -> pdist.TorchDistribution:
        """The prior as a Pyro distribution with event shape ``[P]``."""
        return self.family(self.loc, self.scale).to_event(1)

    def log_prob(self, theta: Tensor) -> Tensor:
        """Log density of weights ``[*B, P]``; returns ``[*B]``."""
        return self.log_density(theta).sum(-1)

    def neg_log_prob_grad(self, theta: Tensor, *, create_graph: bool = False) -> Tensor:
        """``d(-log p(theta)) / d theta`` for weights ``[*B, P]``, same shape.

        By autograd on :meth:`log_prob` here; subclasses write closed forms
        (tested equal to this). With ``create_graph`` the result stays
        differentiable in ``theta`` and the prior's parameters.
        """
        with torch.enable_grad():
            keep = create_graph and theta.requires_grad
            th = theta if keep else theta.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(-self.log_prob(th).sum(), th, create_graph=create_graph)
        return grad

    def log_density(self, theta: Tensor) -> Tensor:
        """Log density of each weight ``[*B, P]`` (summed by :meth:`log_prob`)."""
        return self.family(self.loc, self.scale).log_prob(theta)

    def kl_from(self, q_loc: Tensor, q_log_scale: Tensor, *, num_points: int = KL_POINTS) -> Tensor:
        """``KL(q || prior)`` for diagonal Gaussians ``q``.

        Where no closed form exists, ``E_q[-log p(theta)] - H(q)`` with the
        entropy exact and the cross term, a sum of one-dimensional expectations
        (the prior factorises over weights), by Gauss-Hermite quadrature with
        ``num_points`` nodes per weight: deterministic, and differentiable in
        ``q`` and in the prior's parameters.

        Parameters
        ----------
        q_loc, q_log_scale
            Mean and log standard deviation of ``q``, ``[*B, P]``.
        num_points
            Quadrature nodes per weight.

        Returns
        -------
        Tensor
            ``[*B]``.

        """
        nodes, weights = _hermite(num_points, q_loc)
        shape = (num_points,) + (1,) * q_loc.dim()
        theta = q_loc + q_log_scale.exp() * nodes.reshape(shape)
        cross = -(self.log_density(theta) * weights.reshape(shape)).sum(0).sum(-1)
        entropy = q_log_scale.sum(-1) + 0.5 * q_loc.shape[-1] * (1.0 + math.log(2 * math.pi))
        return cross - entropy

    def frozen(self, dtype: torch.dtype | None = None) -> WeightPrior:
        """A copy of the same family with its location and scale fixed (detached) as they are now.

        Parameters
        ----------
        dtype
            The copy's floating dtype (e.g. ``torch.float64`` for NUTS); the
            current one when ``None``.

        """
        loc, scale = self.loc.detach(), self.scale.detach()
        if dtype is not None:
            loc, scale = loc.to(dtype), scale.to(dtype)
        return type(self)(loc, scale, learn_loc=False, learn_scale=False, **self._family_kwargs())

    def _family_kwargs(self) -> dict[str, Any]:
        """Constructor arguments beyond location and scale (e.g. a Student-t's ``df``)."""
        return {}

    def sample_site(self, name: str = "theta") -> Tensor:
        """``pyro.sample(name, prior)`` inside the caller's plates; returns ``[*plates, P]``."""
        return pyro.sample(name, self.distribution())

    def extra_repr(self) -> str:
        """Size and scale layout, shown in ``repr``."""
        if not self.is_bound:
            return "unbound"
        return f"P={self.num_params}, scale_per={self.scale_per!r}"


def _shape(value: object) -> str:
    return fmt_shape(value.shape) if isinstance(value, Tensor) else type(value).__name__
