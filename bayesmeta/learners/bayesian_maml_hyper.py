"""The hyper-parameters of :class:`~bayesmeta.BayesianMAML`: a frozen dataclass, checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bayesmeta._checks import check_count, positive
from bayesmeta.inference.gaussian_vi import ScaleUpdate
from bayesmeta.learners.hyper import LearnerHyper, check_choice, check_standardize
from bayesmeta.learners.task_chunks import check_task_chunk

__all__ = ["BayesianMAMLHyper"]


@dataclass(frozen=True)
class BayesianMAMLHyper(LearnerHyper):
    """:class:`BayesianMAML`'s hyper-parameters (see its parameters for each field).

    ``inner_num_particles`` are the weight draws of each task's inner ELBO,
    ``num_particles`` those of the outer (meta-training) objective: both are
    Monte Carlo draws inside a training objective, Pyro's particles.
    ``likelihood`` and ``prior`` hold what was given (a name, a spec or an
    object); ``adapt_steps`` given as ``None`` becomes ``inner_steps``.
    """

    likelihood: Any = "gaussian"
    prior: Any = None
    noise_scale: float = 0.1
    learn_noise: bool = True
    prior_scale: float = 0.01
    scale_per: Literal["weight", "tensor"] = "weight"
    posterior: Literal["gaussian", "delta"] = "gaussian"
    inner_lr: float = 0.01
    inner_steps: int = 5
    # None (the default) becomes inner_steps in __post_init__, so a made instance holds an int.
    adapt_steps: int = None  # type: ignore[assignment]
    inner_num_particles: int = 1
    objective: Literal["predictive", "elbo"] = "predictive"
    num_particles: int = 8
    particle_chunk: int | None = None
    task_chunk: int | None = None
    kl_weight: float = 1.0
    scale_update: ScaleUpdate = "natural"
    scale_rate: float = 0.5
    first_order: bool = False
    standardize: bool | Literal["auto"] = "auto"
    calibrate_noise: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("posterior", self.posterior, ("gaussian", "delta"))
        self._set("noise_scale", float(self.noise_scale))
        self._set("learn_noise", bool(self.learn_noise))
        self._set("prior_scale", positive("prior_scale", self.prior_scale))
        self._set("inner_lr", positive("inner_lr", self.inner_lr))
        check_count("inner_steps", self.inner_steps, minimum=0)
        steps = self.inner_steps if self.adapt_steps is None else self.adapt_steps
        self._set("adapt_steps", check_count("adapt_steps", steps, minimum=0))
        check_count("inner_num_particles", self.inner_num_particles, minimum=1)
        check_choice("objective", self.objective, ("predictive", "elbo"))
        check_count("num_particles", self.num_particles, minimum=1)
        if self.particle_chunk is not None:
            check_count("particle_chunk", self.particle_chunk, minimum=1)
        check_task_chunk(self.task_chunk)
        if not (self.kl_weight >= 0 and self.kl_weight < float("inf")):
            raise ValueError(f"kl_weight must be finite and >= 0, got {self.kl_weight}")
        self._set("kl_weight", float(self.kl_weight))
        check_choice("scale_update", self.scale_update, ("natural", "gradient"))
        if not 0 < self.scale_rate <= 1:
            raise ValueError(f"scale_rate must lie in (0, 1], got {self.scale_rate}")
        self._set("scale_rate", float(self.scale_rate))
        if self.scale_update == "natural" and self.posterior == "gaussian" and not self.kl_weight:
            raise ValueError(
                "scale_update='natural' needs kl_weight > 0 (without the KL term the best q "
                "is a point mass); use scale_update='gradient' or posterior='delta'"
            )
        self._set("first_order", bool(self.first_order))
        check_standardize(self.standardize)
        self._set("calibrate_noise", bool(self.calibrate_noise))
