"""The user's units and the network's: inputs and targets standardised inside the learner.

Users bring data in natural units (heights in feet, ages in years, weights in
grams). A network initialised for unit-scale data, an inner step size, a
prior scale per weight and an initial noise scale all assume standardised
inputs and targets; in natural units they are off by orders of magnitude
(intervals that cover nothing, or steps that diverge). :class:`Units` holds
the affine maps a learner learns from its first meta-training batch::

    x_net = (x - x_loc) / x_scale            # what the network sees
    f     = y_loc + y_scale * net(x_net)     # what the model, predictions and intervals use

:class:`~bayesmeta.nets.FunctionalNet` applies them around the network, so
the model (``learner.model``), predictions, intervals and diagnostics are in
the user's units while the weights, the prior over them and the inner steps
work in standardised ones. The likelihoods measure their noise scale and
their inner-step preconditioning relative to ``y_scale``. Until fitted the
maps are the identity.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Units", "load_data_shaped", "on_unit_scale"]

#: A feature or target whose standard deviation is below this fraction of its mean
#: magnitude (or exactly zero) is centred but not scaled.
_CONSTANT = 1e-8


#: Columns whose standard deviations lie in this range and whose means are within
#: ``MAX_UNIT_MEAN`` of zero count as already standardised (``standardize="auto"``).
UNIT_SCALE = (0.1, 10.0)
MAX_UNIT_MEAN = 5.0


def on_unit_scale(loc: Tensor, scale: Tensor) -> bool:
    """Whether every column with mean ``loc`` and standard deviation ``scale`` is near unit scale.

    ``0.1 <= sd <= 10`` and ``|mean| <= 5``: a network initialised for
    standardised data, step sizes and noise scales of order 0.01-1 then fit
    the data as they are (e.g. sinusoids: inputs in [-5, 5], amplitudes up
    to 5). Heights in feet, weights in grams or years since 1900 do not.
    """
    low, high = UNIT_SCALE
    return bool(((scale >= low) & (scale <= high)).all() and (loc.abs() <= MAX_UNIT_MEAN).all())


class Units(nn.Module):
    """Per-feature input and per-output target standardisation (buffers, saved with the learner).

    Attributes
    ----------
    x_loc, x_scale : Tensor
        Input mean and standard deviation per feature ``[D]`` (empty: inputs
        are used as given).
    y_loc, y_scale : Tensor
        Target mean and standard deviation per output ``[O]`` (empty: the
        network's outputs are the targets' units).

    """

    x_loc: Tensor
    x_scale: Tensor
    y_loc: Tensor
    y_scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        for name in ("x_loc", "x_scale", "y_loc", "y_scale"):
            self.register_buffer(name, torch.zeros(0))

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has set any map."""
        return bool(self.x_loc.numel() or self.y_loc.numel())

    def fit(self, x: Tensor | None, y: Tensor | None, *, only_off_scale: bool = False) -> None:
        """Set the maps from data: ``x`` ``[..., D]`` and targets ``y`` ``[..., O]`` (or ``None``).

        Means and standard deviations are over every leading dimension
        (tasks and points). A constant column is centred and keeps scale 1.
        With ``only_off_scale``, inputs (or targets) already on a unit scale
        (see :func:`on_unit_scale`) are left as they are.

        Raises
        ------
        ValueError
            If the data hold NaN or infinite values.

        """
        for name, data in (("x", x), ("y", y)):
            if data is None:
                continue
            flat = data.detach().reshape(-1, data.shape[-1])
            if not bool(torch.isfinite(flat).all()):
                raise ValueError(
                    f"cannot standardise: the meta-training {name} holds NaN or infinite values"
                )
            loc = flat.mean(0)
            scale = flat.std(0, unbiased=False) if flat.shape[0] > 1 else torch.ones_like(loc)
            if only_off_scale and on_unit_scale(loc, scale):
                continue
            tiny = scale <= _CONSTANT * loc.abs().clamp_min(1.0)
            scale = torch.where(tiny, torch.ones_like(scale), scale)
            setattr(self, f"{name}_loc", loc.to(self.x_loc.device))
            setattr(self, f"{name}_scale", scale.to(self.x_loc.device))

    def inputs(self, x: Tensor) -> Tensor:
        """Network inputs from the user's ``x`` ``[..., D]``."""
        if not self.x_loc.numel():
            return x
        return (x - self.x_loc.to(x.dtype)) / self.x_scale.to(x.dtype)

    def outputs(self, out: Tensor) -> Tensor:
        """Outputs in the targets' units from the network's ``out`` ``[..., O]``."""
        if not self.y_loc.numel():
            return out
        return self.y_loc.to(out.dtype) + self.y_scale.to(out.dtype) * out

    def target_scale(self) -> Tensor | None:
        """``y_scale`` ``[O]``, or ``None`` while the targets are not standardised."""
        return self.y_scale if self.y_scale.numel() else None

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        load_data_shaped(self, state_dict, prefix, ("x_loc", "x_scale", "y_loc", "y_scale"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        """Which maps are set."""
        parts = [n for n, t in (("x", self.x_loc), ("y", self.y_loc)) if t.numel()]
        return "standardises " + (" and ".join(parts) if parts else "nothing (not fitted)")


def load_data_shaped(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, names: tuple[str, ...]
) -> None:
    """Prepare ``module``'s buffers ``names``, whose shapes follow the data, for loading.

    Their shapes are unknown when a learner is built: each takes the saved
    tensor's shape. A state saved before the buffer existed keeps the
    module's current (empty, unfitted) value. Call from ``_load_from_state_dict``.
    """
    for name in names:
        key = prefix + name
        current: Tensor = getattr(module, name)
        if key in state_dict:
            setattr(module, name, torch.empty_like(state_dict[key], device=current.device))
        else:
            state_dict[key] = current
