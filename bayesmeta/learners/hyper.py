"""A learner's hyper-parameters: one frozen dataclass per learner, read by its code and config.

Every learner keeps its constructor's JSON-ready settings in a frozen dataclass,
``learner.hparams`` (:class:`MAMLHyper` for :class:`~bayesmeta.MAML`, ...),
validated when it is made. The learner's code reads them from there,
:meth:`~bayesmeta.learners.MetaLearner.config` is derived from it, and a
constructor builds it from its own keyword arguments with :func:`pick_hyper`, so a
new hyper-parameter is declared twice only: as a field here (with its check) and
in the constructor's signature (with its documentation). The families share
base classes: :class:`LearnerHyper` (the optimiser's settings, for every
learner), :class:`GradientHyper` (MAML, first-order MAML, Reptile) and
:class:`MetricHyper` (ProtoNet, BayesianProtoNet, Matching Networks).

Settings that are objects rather than JSON values (an optimiser factory, a
network) are constructor arguments but not fields.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

from bayesmeta._checks import check_count, positive

__all__ = [
    "GradientHyper",
    "LearnerHyper",
    "MetricHyper",
    "hyper_properties",
    "pick_hyper",
    "renamed_properties",
]

H = TypeVar("H")


@dataclass(frozen=True)
class LearnerHyper:
    """The hyper-parameters every learner has: its outer optimiser's.

    Attributes
    ----------
    outer_lr : float
        Learning rate of the default optimiser (Adam).
    max_grad_norm : float or None
        Clip the meta-gradient to this norm (``None``: no clipping).

    Raises
    ------
    TypeError, ValueError
        If a value is of the wrong type or out of range (naming it).

    """

    outer_lr: float = 1e-3
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        self._set("outer_lr", positive("outer_lr", self.outer_lr))
        if self.max_grad_norm is not None:
            self._set("max_grad_norm", positive("max_grad_norm", self.max_grad_norm))

    def _set(self, name: str, value: object) -> None:
        """Store a normalised value (``float(1)``, a resolved default) in the frozen instance."""
        object.__setattr__(self, name, value)


def check_standardize(value: object) -> None:
    """Raise unless ``value`` is ``True``, ``False`` or ``"auto"``."""
    if not isinstance(value, bool) and value != "auto":
        raise ValueError(f"standardize must be True, False or 'auto', got {value!r}")


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class GradientHyper(LearnerHyper):
    """Hyper-parameters of the gradient-based learners (see :class:`~bayesmeta.MAML`).

    Attributes
    ----------
    inner_lr : float
        Inner-loop step size.
    inner_steps : int
        Inner gradient steps per task during meta-training.
    adapt_steps : int
        Steps at test time; ``None`` given means ``inner_steps``.
    loss : str or callable
        ``"mse"``, ``"cross_entropy"`` or a per-task loss.
    inner_grad_clip : float or None
        Norm each task's inner gradient is clipped to.
    standardize : bool or "auto"
        Standardise inputs and targets inside the learner.

    """

    inner_lr: float = 0.01
    inner_steps: int = 5
    # None (the default) becomes inner_steps in __post_init__, so a made instance holds an int.
    adapt_steps: int = None  # type: ignore[assignment]
    loss: str | Callable[..., Any] = "mse"
    inner_grad_clip: float | None = None
    standardize: bool | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("inner_lr", positive("inner_lr", self.inner_lr))
        check_count("inner_steps", self.inner_steps, minimum=0)
        steps = self.inner_steps if self.adapt_steps is None else self.adapt_steps
        self._set("adapt_steps", check_count("adapt_steps", steps, minimum=0))
        if self.inner_grad_clip is not None:
            self._set("inner_grad_clip", positive("inner_grad_clip", self.inner_grad_clip))
        check_standardize(self.standardize)


@dataclass(frozen=True)
class MetricHyper(LearnerHyper):
    """Hyper-parameters of the metric learners (see :class:`~bayesmeta.ProtoNet`).

    Attributes
    ----------
    feature_dims : int or None
        Dimensions of one input point (read from the encoder when ``None``).

    """

    feature_dims: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.feature_dims is not None:
            check_count("feature_dims", self.feature_dims, minimum=1)


def pick_hyper(hyper: type[H], arguments: Mapping[str, Any]) -> H:
    """Build ``hyper`` from a constructor's arguments (its ``locals()``): one value per field.

    Raises
    ------
    TypeError
        If ``arguments`` lacks one of the fields (a constructor that does not
        take a hyper-parameter its dataclass declares).

    """
    names = [f.name for f in fields(hyper)]  # type: ignore[arg-type]
    missing = [n for n in names if n not in arguments]
    if missing:
        raise TypeError(f"{hyper.__name__} needs the argument(s) {missing}")
    return hyper(**{n: arguments[n] for n in names})


def hyper_properties(cls: type[Any], hyper: type[Any], skip: frozenset[str]) -> None:
    """Give ``cls`` a read-only property per field of ``hyper`` (``learner.inner_lr``).

    Fields named in ``skip``, or already an attribute of ``cls`` (a method, a
    property of a learned value), are left alone.
    """
    for f in fields(hyper):
        if f.name in skip or hasattr(cls, f.name):
            continue
        doc = f"``hparams.{f.name}`` (read-only)"
        setattr(cls, f.name, property(_reader(f.name), _refuse(f.name), doc=doc))


def renamed_properties(cls: type[Any], renames: Mapping[str, str]) -> None:
    """Give ``cls`` a property per old name in ``renames``: it warns and reads the new one."""
    for old, new in renames.items():
        if not hasattr(cls, old):
            setattr(cls, old, property(_old_reader(old, new), doc=f"Deprecated: ``{new}``."))


def _old_reader(old: str, new: str) -> Callable[[Any], Any]:
    def read(self: Any) -> Any:
        warnings.warn(
            f"{old} is renamed {new}: read {new} instead (the old name goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self.hparams, new)

    read.__doc__ = f"Deprecated name of ``{new}`` (warns; goes in the next release)."
    return read


def _refuse(name: str) -> Callable[[Any, Any], None]:
    def write(self: Any, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__}'s hyper-parameters are frozen; to change {name}, build a "
            f"new learner, or set learner.hparams = dataclasses.replace(learner.hparams, "
            f"{name}=...) before meta-training"
        )

    return write


def _reader(name: str) -> Callable[[Any], Any]:
    def read(self: Any) -> Any:
        return getattr(self.hparams, name)

    read.__doc__ = f"The hyper-parameter ``{name}`` (``hparams.{name}``; read-only)."
    return read
