"""Built-in weight priors by name, as configs and checkpoints write them."""

from __future__ import annotations

from typing import Any, Literal

from bayesmeta.model.priors import Laplace, Normal, StudentT, WeightPrior

__all__ = ["PriorName", "named_prior", "prior_spec"]

PriorName = Literal["normal", "laplace", "student_t"]
_PRIORS: dict[str, type[WeightPrior]] = {
    "normal": Normal,
    "laplace": Laplace,
    "student_t": StudentT,
}
_PRIOR_NAMES = {cls: name for name, cls in _PRIORS.items()}


def named_prior(spec: str | dict[str, Any], scale_per: Literal["weight", "tensor"]) -> WeightPrior:
    """A prior from its name, or from ``{"family": name, **arguments}`` (as ``config`` writes)."""
    kwargs = dict(spec) if isinstance(spec, dict) else {"family": spec}
    name = kwargs.pop("family", None)
    if name not in _PRIORS:
        raise ValueError(f"prior must be one of {sorted(_PRIORS)} or a prior object, got {spec!r}")
    return _PRIORS[name](scale_per=scale_per, **kwargs)


def prior_spec(prior: WeightPrior) -> str | dict[str, Any]:
    """The JSON form of a built-in prior's family for ``config`` (``"custom"`` otherwise)."""
    name = _PRIOR_NAMES.get(type(prior))
    if name is None:
        return "custom"
    extra = prior._family_kwargs()
    return {"family": name, **extra} if extra else name
