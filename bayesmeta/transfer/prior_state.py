"""The state of a :class:`~bayesmeta.transfer.TransferLearner` and the fits behind it.

:class:`SourcePriorState` holds what the learner stores (its settings, the source-centred
prior's centre, the learned scales; ``config``/``state_dict`` for checkpoints) and the
internal fits that :meth:`~bayesmeta.transfer.TransferLearner.fit_prior` and
:meth:`~bayesmeta.transfer.TransferLearner.adapt` run: SVI or point estimates by
:func:`~bayesmeta.transfer.fitting.fit_transfer`, and MacKay's Laplace loop. The public
class adds the constructor, the model and the fitting methods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Literal

import torch
from torch import Tensor, nn

from bayesmeta._checks import check_support, check_tensor, fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.nets.mlp import MLP
from bayesmeta.nets.spec import net_spec
from bayesmeta.transfer.fitting import TransferFit, fit_transfer
from bayesmeta.transfer.hyper import TransferHyper, TransferMethod
from bayesmeta.transfer.laplace import group_grams, jacobians, optimise_evidence

__all__ = ["SourcePriorState", "TransferMethod"]


class SourcePriorState:
    """Settings, stored tensors and internal fits of a transfer learner.

    Not a learner of its own: :class:`~bayesmeta.transfer.TransferLearner`
    sets the attributes below in its constructor.
    """

    hparams: TransferHyper
    net: nn.Module
    fnet: FunctionalNet
    method: TransferMethod
    prior_scale: float | Literal["empirical"]
    scale_per: Literal["tensor", "global"]
    likelihood: Literal["gaussian", "categorical"]
    noise_scale: float
    learn_noise: bool
    init_prior_scale: float
    steps: int
    lr: float
    num_particles: int
    seed: int | None
    progress: bool | None
    freeze: tuple[str, ...]
    free: Tensor
    centre: Tensor
    laplace_rounds: int
    init: Tensor | None
    prior_scale_: Tensor | None
    noise_scale_: Tensor | None
    predictive_noise_: Tensor | None
    last_fit_: TransferFit | None

    def config(self) -> dict[str, object]:
        """The constructor arguments needed to rebuild this learner (JSON-ready).

        ``{"learner": class name, "net": spec, **hparams}`` (``freeze`` as a list).
        """
        hp = {f.name: getattr(self.hparams, f.name) for f in fields(self.hparams)}
        hp["freeze"] = list(self.hparams.freeze)
        return {"learner": type(self).__name__, "net": net_spec(self.net), **hp}

    def state_dict(self) -> dict[str, Tensor]:
        """The learner's tensors, by name.

        The network, the prior's centre, the starting weights of a fit
        (:meth:`from_scratch`) and :meth:`fit_prior`'s scales.
        """
        state = {f"net.{k}": v.detach() for k, v in self.net.state_dict().items()}
        state["centre"] = self.centre.detach()
        optional = {
            "init": self.init,
            "prior_scale_": self.prior_scale_,
            "noise_scale_": self.noise_scale_,
            "predictive_noise_": self.predictive_noise_,
        }
        state.update({k: v.detach() for k, v in optional.items() if v is not None})
        return state

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore :meth:`state_dict`'s tensors (the network must have the same shapes).

        Raises
        ------
        RuntimeError
            If a tensor is missing or has the wrong shape.

        """
        net = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        self.net.load_state_dict(net)
        if "centre" not in state or state["centre"].shape != self.centre.shape:
            raise RuntimeError(f"centre must be a tensor of shape {tuple(self.centre.shape)}")
        with torch.no_grad():
            self.centre = state["centre"].to(self.centre).clone()
        self.init = state.get("init")
        self.prior_scale_ = state.get("prior_scale_")
        self.noise_scale_ = state.get("noise_scale_")
        self.predictive_noise_ = state.get("predictive_noise_")

    @property
    def classification(self) -> bool:
        """The targets are class labels."""
        return self.likelihood == "categorical"

    def predictive_noise(self) -> Tensor | None:
        """The noise scale ``[O]`` predictions use, or ``None`` (classification; not fitted).

        The calibrated ``predictive_noise_`` where it is set, else the fitted
        ``noise_scale_``.
        """
        scale = self.predictive_noise_ if self.predictive_noise_ is not None else self.noise_scale_
        return None if scale is None else scale.detach()

    @property
    def num_groups(self) -> int:
        """Number of prior scales ``G``."""
        return len(self.fnet.numels) if self.scale_per == "tensor" else 1

    def groups(self) -> Tensor:
        """Prior-scale group of each weight ``[P]``."""
        if self.scale_per == "global":
            return torch.zeros(self.fnet.num_params, dtype=torch.long)
        sizes = torch.tensor(self.fnet.numels)
        return torch.repeat_interleave(torch.arange(len(sizes)), sizes)

    def _laplace(
        self,
        x: Tensor,
        y: Tensor,
        w: Tensor | None,
        p_log: Tensor,
        learn_prior: bool,
        learn_noise: bool,
        noise_rows: int,
    ) -> tuple[TransferFit, Tensor, Tensor | None]:
        """MAP, then the evidence over the scales, ``rounds`` times (MacKay's loop)."""
        log_noise = self._start_noise(y, noise_rows)
        assert log_noise is not None
        groups = self.groups().to(x.device).masked_fill(~self.free.to(x.device), -1)
        init = self.init
        fit = None
        for _ in range(self.laplace_rounds if (learn_prior or learn_noise) else 1):
            fit = self._fit(x, y, w, p_log, False, False, noise_rows, log_noise, init)
            if not (learn_prior or learn_noise):
                break
            out, jac = jacobians(self.fnet, fit.loc, x)
            shift = (self.centre - fit.loc).double()[:, None, :, None]
            residual = (y.double() - out.double() - (jac @ shift).squeeze(-1)).flatten(1)
            grams = group_grams(jac, groups, self.num_groups)
            new_p, new_noise = optimise_evidence(
                grams,
                residual,
                p_log.to(x.device, torch.float64),
                log_noise.to(torch.float64).expand(noise_rows, -1),
                learn_prior=learn_prior,
                learn_noise=learn_noise,
            )
            p_log, log_noise = new_p.to(x.dtype), new_noise.to(x.dtype)
            init = fit.loc
        assert fit is not None
        return fit, p_log.to(x.device, x.dtype), log_noise

    def _start_scale(self) -> float:
        if self.prior_scale == "empirical":
            return self.init_prior_scale
        return float(self.prior_scale)

    def _start_noise(self, y: Tensor, rows: int) -> Tensor | None:
        if self.classification:
            return None
        outputs = y.shape[-1]
        if self.noise_scale_ is not None:
            return self.noise_scale_.log().expand(rows, outputs).clone()
        return torch.full((rows, outputs), math.log(self.noise_scale), device=y.device)

    def _fit(
        self,
        x: Tensor,
        y: Tensor,
        w: Tensor | None,
        p_log: Tensor,
        learn_prior: bool,
        learn_noise: bool,
        noise_rows: int,
        log_noise: Tensor | None = None,
        init: Tensor | None = None,
    ) -> TransferFit:
        device = self.centre.device
        if log_noise is None:
            log_noise = self._start_noise(y, noise_rows)
        generator = None
        if self.seed is not None:
            generator = torch.Generator(device=device).manual_seed(self.seed)
        return fit_transfer(
            self.fnet,
            self.centre,
            self.groups().to(device),
            p_log.to(device, self.centre.dtype),
            log_noise,
            x,
            y,
            method="map" if self.method == "laplace" else self.method,
            weights=w,
            free=self.free.to(device),
            init=self.init if init is None else init,
            learn_prior=learn_prior,
            learn_noise=learn_noise and not self.classification,
            steps=self.steps,
            lr=self.lr,
            num_samples=self.num_particles,
            generator=generator,
            progress=self.progress,
        )

    def _data(
        self, support_x: Tensor, support_y: Tensor, *, batched_only: bool
    ) -> tuple[Tensor, Tensor, bool]:
        x, y, batched = check_support(
            support_x, support_y, self.fnet.feature_dims, like=self.centre, owner="the weights"
        )
        if batched_only and not batched:
            raise ShapeError(
                f"expected the data of several tasks [T, K, *features], got {fmt_shape(x.shape)}"
            )
        if self.classification and y.is_floating_point():
            raise ShapeError("likelihood='categorical' needs integer class labels as targets")
        if not self.classification and not y.is_floating_point():
            raise ShapeError(
                "likelihood='gaussian' needs float regression targets; pass "
                "likelihood='categorical' for class labels"
            )
        if isinstance(self.net, MLP) and x.shape[-1] != self.net.in_features:
            raise ShapeError(
                f"the network takes {self.net.in_features} input feature(s) but support_x has "
                f"shape {fmt_shape(x.shape)}"
            )
        device = self.centre.device
        x, y = x.to(device), y.to(device)
        return (x, y, True) if batched else (x.unsqueeze(0), y.unsqueeze(0), False)

    def _weights(self, weights: Tensor | None, y: Tensor) -> Tensor | None:
        if weights is None:
            return None
        w = check_tensor("weights", weights)
        if w.shape != y.shape[:2]:
            raise ShapeError(
                f"weights must have one value per support point, shape "
                f"{fmt_shape(y.shape[:2])}, got {fmt_shape(w.shape)}"
            )
        if bool((w < 0).any()):
            raise ValueError("weights must be non-negative")
        return w.to(self.centre.device, self.centre.dtype)
