"""Built-in weight priors by name, as configs and checkpoints write them."""

from __future__ import annotations

from typing import Any, Literal

from bayesmeta.model.priors import Laplace, Normal, StudentT, WeightPrior
from bayesmeta.nets.functional import FunctionalNet

__all__ = ["PriorName", "named_prior", "prior_spec", "tied_prior"]

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


def tied_prior(
    prior: WeightPrior | str | dict[str, Any] | None,
    scale_per: Literal["weight", "tensor"],
    fnet: FunctionalNet,
    scale: float,
) -> WeightPrior:
    """A weight prior bound to ``fnet`` with its location tied to the network's weights.

    ``prior`` is a built-in name or spec (``None``: ``"normal"``) or an unbound prior
    object; ``scale`` is its initial scale. This is Bayesian MAML's prior: its mean is the
    network's weights, as MAML's initialisation is.

    Raises
    ------
    TypeError
        If ``prior`` is not a :class:`~bayesmeta.priors.WeightPrior` (or a name of one).
    ValueError
        If ``prior`` is already bound to a location.

    """
    if prior is None or isinstance(prior, str | dict):
        prior = named_prior("normal" if prior is None else prior, scale_per)
    if not isinstance(prior, WeightPrior):
        raise TypeError(
            "prior must be a bayesmeta.priors prior such as bm.priors.Laplace(), got "
            f"{type(prior).__name__}"
        )
    if prior.is_bound:
        raise ValueError(
            "BayesianMAML ties the prior's location to the network's weights; give the "
            "prior unbound (e.g. bm.priors.Laplace(scale=0.05)). For a prior centred on a "
            "source network, copy its weights into the net, or use bm.TransferLearner"
        )
    return prior.bind(fnet, scale=scale, loc="tied")
