"""A Gaussian weight prior whose mean and scale have hyper-priors of their own.

The hyper-prior level of the one hierarchical model, with ``psi = (prior_loc, prior_log_scale)``::

    prior_loc        ~ N(loc, diag(loc_std^2))                     [P]
    prior_log_scale  ~ N(log scale, diag(log_scale_std^2))         [P] or [n_tensors]
    theta_t | psi    ~ N(prior_loc, diag(exp(prior_log_scale)^2))  [P], plate "tasks"

``psi`` is global: its sites are sampled outside the ``"tasks"`` plate, once for
all tasks. With ``log_scale_std=None`` the prior scale is not latent but fixed
at ``scale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import pyro
import pyro.distributions as pdist
import torch
from torch import Tensor, nn

from bayesmeta._checks import fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.model.weight_layout import check_fits, positive_vector, weights_centre
from bayesmeta.nets.functional import FunctionalNet

__all__ = ["HierarchicalGaussianPrior", "HyperPosterior"]


class HierarchicalGaussianPrior(nn.Module):
    """Hyper-priors over the mean and log-scale of a diagonal Gaussian weight prior.

    The hyper-prior's parameters are fixed (buffers, not trained); what is
    learned about ``psi`` lives in a guide (see
    :class:`~bayesmeta.learners.VariationalMetaLearner`).

    Parameters
    ----------
    loc
        Hyper-prior mean of the prior mean ``[P]``.
    loc_std
        Hyper-prior standard deviation of the prior mean: a positive float or ``[P]``.
    scale
        Hyper-prior median of the prior standard deviation (``log scale`` is
        the mean of ``prior_log_scale``): a positive float, or one value per
        weight ``[P]`` (per tensor with ``scale_per="tensor"``).
    log_scale_std
        Hyper-prior standard deviation of ``prior_log_scale`` (a positive float
        or one value per scale); ``None`` fixes the prior scale at ``scale``.
    numels
        Sizes of the network's parameter tensors, in order (needed for
        ``scale_per="tensor"``); :meth:`for_net` fills it in.
    scale_per
        One prior scale per ``"weight"`` or per parameter ``"tensor"``.

    Examples
    --------
    >>> from bayesmeta.nets import MLP, FunctionalNet
    >>> hyper = HierarchicalGaussianPrior.for_net(FunctionalNet(MLP((1, 8, 1))))
    >>> def model():
    ...     prior = hyper.sample_prior()  # psi ~ p(psi), outside the plate
    ...     with pyro.plate("tasks", 5):
    ...         return pyro.sample("theta", prior)
    >>> model().shape
    torch.Size([5, 25])

    """

    #: Name of the Pyro sample site of the prior mean.
    LOC_SITE = "prior_loc"
    #: Name of the Pyro sample site of the log prior scale.
    LOG_SCALE_SITE = "prior_log_scale"

    loc_mean: Tensor
    loc_std: Tensor
    log_scale_mean: Tensor
    log_scale_std: Tensor | None

    def __init__(
        self,
        loc: Tensor,
        loc_std: float | Tensor = 1.0,
        scale: float | Tensor = 0.1,
        log_scale_std: float | Tensor | None = 1.0,
        *,
        numels: Sequence[int] | None = None,
        scale_per: Literal["weight", "tensor"] = "weight",
    ) -> None:
        super().__init__()
        if not isinstance(loc, Tensor) or loc.dim() != 1 or loc.numel() == 0:
            got = fmt_shape(loc.shape) if isinstance(loc, Tensor) else type(loc).__name__
            raise ShapeError(f"loc must be a non-empty vector [P], got {got}")
        if not loc.is_floating_point() or not bool(torch.isfinite(loc).all()):
            raise ValueError("loc must be floating point and hold no NaN or infinite values")
        if scale_per not in ("weight", "tensor"):
            raise ValueError(f"scale_per must be 'weight' or 'tensor', got {scale_per!r}")
        p = loc.numel()
        self.numels = tuple(int(n) for n in numels) if numels is not None else (p,)
        if sum(self.numels) != p:
            raise ShapeError(f"numels {self.numels} sum to {sum(self.numels)}, but loc has P = {p}")
        self.scale_per = scale_per
        size = p if scale_per == "weight" else len(self.numels)
        per = f"one per {scale_per}"
        self.register_buffer("loc_mean", loc.detach().clone())
        self.register_buffer(
            "loc_std", positive_vector("loc_std", loc_std, p, "one per weight", loc)
        )
        self.register_buffer(
            "log_scale_mean", positive_vector("scale", scale, size, per, loc).log()
        )
        std = (
            None
            if log_scale_std is None
            else positive_vector("log_scale_std", log_scale_std, size, per, loc)
        )
        self.register_buffer("log_scale_std", std)

    @classmethod
    def for_net(
        cls,
        fnet: FunctionalNet,
        *,
        loc: Literal["zeros", "module"] | Tensor = "zeros",
        loc_std: float = 1.0,
        scale: float = 0.1,
        log_scale_std: float | None = 1.0,
        scale_per: Literal["weight", "tensor"] = "weight",
    ) -> HierarchicalGaussianPrior:
        """A hyper-prior for ``fnet``'s weights.

        Parameters
        ----------
        fnet
            The functional network.
        loc
            Hyper-prior mean of the prior mean: ``"zeros"``, ``"module"`` (a
            copy of the module's current weights) or a tensor ``[P]``.
        loc_std, scale, log_scale_std, scale_per
            As for the constructor.

        Raises
        ------
        ShapeError
            If a given ``loc`` does not have the network's ``P`` weights.

        """
        if isinstance(loc, str) and loc not in ("zeros", "module"):
            raise ValueError(f"loc must be 'zeros', 'module' or a tensor, got {loc!r}")
        centre = weights_centre(fnet, loc)
        return cls(centre, loc_std, scale, log_scale_std, numels=fnet.numels, scale_per=scale_per)

    @property
    def num_params(self) -> int:
        """Number of weights ``P``."""
        return sum(self.numels)

    @property
    def learns_scale(self) -> bool:
        """Whether the prior scale is latent (``False``: fixed at ``scale``)."""
        return self.log_scale_std is not None

    def check(self, fnet: FunctionalNet) -> HierarchicalGaussianPrior:
        """Raise :class:`ShapeError` unless the prior fits ``fnet``; return ``self``."""
        check_fits(self, fnet)
        return self

    def hyper_distributions(self) -> dict[str, pdist.TorchDistribution]:
        """``p(psi)``: the hyper-prior of each global site, keyed by site name."""
        return _psi_sites(self.loc_mean, self.loc_std, self.log_scale_mean, self.log_scale_std)

    def per_weight(self, log_scale: Tensor) -> Tensor:
        """Expand log scales ``[*B, n_tensors]`` to ``[*B, P]`` (identity per weight)."""
        if self.scale_per == "weight":
            return log_scale
        sizes = torch.tensor(self.numels, device=log_scale.device)
        return torch.repeat_interleave(log_scale, sizes, dim=-1, output_size=self.num_params)

    def conditional(self, loc: Tensor, log_scale: Tensor | None = None) -> pdist.TorchDistribution:
        """``p(theta | psi) = N(loc, diag(exp(log_scale)^2))``, event shape ``[P]``.

        Parameters
        ----------
        loc
            Prior mean ``[*B, P]``.
        log_scale
            Log prior scale ``[*B, P]`` or ``[*B, n_tensors]``; ``None`` uses
            the hyper-prior's ``log scale`` (the fixed scale when the scale is
            not latent).

        """
        if log_scale is None:
            log_scale = self.log_scale_mean
        return pdist.Normal(loc, self.per_weight(log_scale).exp()).to_event(1)

    def sample_prior(self) -> pdist.TorchDistribution:
        """Sample ``psi``'s sites and return ``p(theta | psi)``.

        Call it in a Pyro model outside the ``"tasks"`` plate (``psi`` is
        shared by all tasks), then sample each task's weights from the returned
        distribution inside the plate.

        Returns
        -------
        pyro.distributions.TorchDistribution
            Diagonal Normal with event shape ``[P]``.

        """
        sites = self.hyper_distributions()
        loc = pyro.sample(self.LOC_SITE, sites[self.LOC_SITE])
        log_scale = None
        if self.LOG_SCALE_SITE in sites:
            log_scale = pyro.sample(self.LOG_SCALE_SITE, sites[self.LOG_SCALE_SITE])
        return self.conditional(loc, log_scale)

    def extra_repr(self) -> str:
        """Size and scale layout, shown in ``repr``."""
        return (
            f"P={self.num_params}, scale_per={self.scale_per!r}, learns_scale={self.learns_scale}"
        )


class HyperPosterior(NamedTuple):
    """A mean-field Gaussian ``q(psi)`` over the prior's mean and log-scale.

    Parametrised as the hyper-prior is (see :class:`HierarchicalGaussianPrior`),
    so that ``p(psi)`` and ``q(psi)`` read side by side.

    Attributes
    ----------
    loc_mean, loc_std : Tensor
        ``q(prior_loc) = N(loc_mean, diag(loc_std^2))``, each ``[P]``.
    log_scale_mean, log_scale_std : Tensor or None
        ``q(prior_log_scale)``, each ``[P]`` or ``[n_tensors]``; ``None`` when
        the prior scale is fixed rather than latent.

    """

    loc_mean: Tensor
    loc_std: Tensor
    log_scale_mean: Tensor | None
    log_scale_std: Tensor | None

    def distributions(self) -> dict[str, pdist.TorchDistribution]:
        """``q(psi)`` per global site, keyed by site name (as the model names them)."""
        return _psi_sites(self.loc_mean, self.loc_std, self.log_scale_mean, self.log_scale_std)


def _psi_sites(
    loc_mean: Tensor,
    loc_std: Tensor,
    log_scale_mean: Tensor | None,
    log_scale_std: Tensor | None,
) -> dict[str, pdist.TorchDistribution]:
    sites = {HierarchicalGaussianPrior.LOC_SITE: pdist.Normal(loc_mean, loc_std).to_event(1)}
    if log_scale_mean is not None and log_scale_std is not None:
        sites[HierarchicalGaussianPrior.LOG_SCALE_SITE] = pdist.Normal(
            log_scale_mean, log_scale_std
        ).to_event(1)
    return sites
