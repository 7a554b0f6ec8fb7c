"""The hyper-parameters of a :class:`~bayesmeta.transfer.TransferLearner`, a frozen dataclass.

As for the meta-learners (:mod:`bayesmeta.learners.hyper`): the learner keeps them in
``learner.hparams``, reads each as an attribute (``learner.steps``), derives ``config()``
from them, and its constructor builds them from its keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bayesmeta._checks import check_count, positive
from bayesmeta.learners.hyper import check_choice

__all__ = ["TransferHyper", "TransferMethod"]

TransferMethod = Literal["bayes", "laplace", "map", "finetune"]
_METHODS = ("bayes", "laplace", "map", "finetune")


@dataclass(frozen=True)
class TransferHyper:
    """:class:`~bayesmeta.transfer.TransferLearner`'s hyper-parameters (see its parameters).

    ``num_particles`` are the Monte Carlo draws of the ``"bayes"`` objective
    (Pyro's particles); ``steps`` and ``lr`` are each adaptation's Adam steps.

    Raises
    ------
    TypeError, ValueError
        If a value is of the wrong type or out of range, or the settings do not
        go together (``prior_scale="empirical"`` needs ``method="bayes"`` or
        ``"laplace"``; ``"laplace"`` needs a Gaussian likelihood).

    """

    method: TransferMethod = "bayes"
    prior_scale: float | Literal["empirical"] = "empirical"
    scale_per: Literal["tensor", "global"] = "tensor"
    likelihood: Literal["gaussian", "categorical"] = "gaussian"
    noise_scale: float = 0.1
    learn_noise: bool = True
    freeze: tuple[str, ...] = ()
    init_prior_scale: float = 0.1
    laplace_rounds: int = 2
    steps: int = 1000
    lr: float = 1e-2
    num_particles: int = 4
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {self.method!r}")
        method, prior_scale = self.method, self.prior_scale
        if prior_scale == "empirical":
            if method not in ("bayes", "laplace"):
                raise ValueError(
                    f"prior_scale='empirical' needs method='bayes' or 'laplace': the {method} "
                    "objective is minimised by a zero prior scale; give a float"
                )
        elif not isinstance(prior_scale, str):
            positive("prior_scale", prior_scale)
        else:
            raise ValueError(f"prior_scale must be a float or 'empirical', got {prior_scale!r}")
        check_choice("scale_per", self.scale_per, ("tensor", "global"))
        check_choice("likelihood", self.likelihood, ("gaussian", "categorical"))
        if method == "laplace" and self.likelihood != "gaussian":
            raise ValueError(
                "method='laplace' is for regression (a Gaussian likelihood); use method='bayes' "
                "for class labels"
            )
        object.__setattr__(self, "noise_scale", positive("noise_scale", self.noise_scale))
        object.__setattr__(self, "freeze", tuple(self.freeze))
        scale = positive("init_prior_scale", self.init_prior_scale)
        object.__setattr__(self, "init_prior_scale", scale)
        check_count("laplace_rounds", self.laplace_rounds, minimum=1)
        check_count("steps", self.steps, minimum=1)
        object.__setattr__(self, "lr", positive("lr", self.lr))
        check_count("num_particles", self.num_particles, minimum=1)
