"""Learners by name: one registry for checkpoints and for ``bayesmeta run``.

Two names per learner, kept in one place:

- the class name, for rebuilding a learner from its ``config()``: a learner's
  ``config()`` names its class (``{"learner": "BayesianMAML", ...}``) and
  :func:`learner_class` turns that name back into the class. The learners package
  registers its learners when it is imported, and a package above it registers its
  own (:mod:`bayesmeta.io` registers :class:`~bayesmeta.TransferLearner`), so that
  checkpoints find every learner without importing each one;
- the run name, the ``learner`` of a run config and ``bayesmeta run --learner``
  (``"bayesian_maml"``): :func:`register_run` declares it with the class, how a run
  config builds the learner, and which of the run's settings it reads.
  :mod:`bayesmeta.runs.learners` registers the built-in ones; the command's choices
  are :func:`run_learners`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bayesmeta.errors import CheckpointError

__all__ = [
    "RunLearner",
    "learner_class",
    "meta_fit_run",
    "register",
    "register_run",
    "registered",
    "run_learner",
    "run_learners",
]

_REGISTRY: dict[str, type[Any]] = {}
_RUN_REGISTRY: dict[str, RunLearner] = {}

Targets = Literal["any", "classes", "regression"]


def meta_fit_run(
    learner: Any,
    config: Any,
    train: Any,
    *,
    progress: bool | None,
    checkpoint: Any,
    checkpoint_every: int,
    seed: int,
) -> Any:
    """How a run trains most learners: ``learner.meta_fit`` on the run's tasks.

    The shared loop of :mod:`bayesmeta.training` (checkpoints, ``bayesmeta
    resume``, data-parallel training): ``config.meta_iterations`` meta-iterations of
    ``config.meta_batch_size`` tasks drawn from ``train``, with a training
    checkpoint at ``checkpoint`` (``None``: none). ``seed`` (for fits after
    meta-training) is not used here.

    Returns
    -------
    History
        The learner's training history.

    """
    return learner.meta_fit(
        train,
        config.meta_iterations,
        config.meta_batch_size,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
    )


def register(cls: type[Any]) -> type[Any]:
    """Register ``cls`` under its class name and return it (usable as a decorator).

    Raises
    ------
    ValueError
        If a different class is already registered under the same name.

    """
    name = cls.__name__
    known = _REGISTRY.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"a different learner is already registered as {name!r}: {known!r}")
    _REGISTRY[name] = cls
    return cls


def learner_class(name: object) -> type[Any]:
    """The learner class registered as ``name``.

    Raises
    ------
    CheckpointError
        If no learner is registered under ``name``.

    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise CheckpointError(f"unknown learner {name!r}; known: {registered()}")
    return _REGISTRY[name]


def registered() -> list[str]:
    """The registered learner class names, sorted."""
    return sorted(_REGISTRY)


@dataclass(frozen=True)
class RunLearner:
    """A learner as ``bayesmeta run`` knows it.

    Attributes
    ----------
    name : str
        Its run name: a run config's ``learner`` and ``--learner`` on the command line.
    cls : type
        Its class (also registered by class name, for checkpoints).
    build : callable
        ``build(config) -> learner``: a fresh learner from a
        :class:`~bayesmeta.runs.RunConfig`.
    reads : frozenset of str
        The run settings that only some learners read (``inner_lr``, ``kl_weight``,
        ...) and this one does; a config that sets one of them for a learner that
        does not read it is refused.
    targets : str
        ``"any"``, ``"classes"`` (classifies only) or ``"regression"``
        (regression only).
    requires : frozenset of str
        The run settings it cannot do without (left unset, the config is refused).
    summary : str
        One line for the documentation and the command's help.
    defaults : mapping
        This learner's values of run settings whose default depends on the
        learner (a config leaves them ``None``): ``{"adapt_steps": 10}``.
    fit : callable
        ``fit(learner, config, train, *, progress, checkpoint, checkpoint_every,
        seed) -> History``: how a run trains it (:func:`meta_fit_run` unless
        a learner trains otherwise), so that the run code calls every learner
        the same way.

    """

    name: str
    cls: type[Any]
    build: Callable[[Any], Any]
    reads: frozenset[str]
    targets: Targets = "any"
    requires: frozenset[str] = frozenset()
    summary: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fit: Callable[..., Any] = meta_fit_run


def register_run(
    name: str,
    cls: type[Any],
    build: Callable[[Any], Any],
    *,
    reads: Iterable[str] = (),
    targets: Targets = "any",
    requires: Iterable[str] = (),
    summary: str = "",
    defaults: Mapping[str, Any] | None = None,
    fit: Callable[..., Any] = meta_fit_run,
) -> RunLearner:
    """Register a learner under the run name ``name`` (and ``cls`` under its class name).

    Parameters
    ----------
    name
        The run name, e.g. ``"bayesian_maml"``.
    cls
        The learner class that ``build`` returns.
    build
        ``build(config) -> learner`` from a :class:`~bayesmeta.runs.RunConfig`.
    reads
        The learner-specific run settings it reads (see :attr:`RunLearner.reads`).
    targets
        ``"any"``, ``"classes"`` or ``"regression"``: the data it can learn.
    requires
        The run settings it needs set (they must also be in ``reads``).
    summary
        One line for the documentation.
    defaults
        Its values of the settings whose default depends on the learner (they
        must be in ``reads``).
    fit
        How a run trains it (see :attr:`RunLearner.fit`).

    Returns
    -------
    RunLearner
        The registered entry.

    Raises
    ------
    ValueError
        If ``name`` is taken by a different learner, or ``targets`` is unknown.

    """
    if targets not in ("any", "classes", "regression"):
        raise ValueError(f"targets must be 'any', 'classes' or 'regression', got {targets!r}")
    reads, requires = frozenset(reads), frozenset(requires)
    if not requires <= reads:
        raise ValueError(f"requires {sorted(requires - reads)} must be among reads")
    defaults = dict(defaults or {})
    if not set(defaults) <= reads:
        raise ValueError(f"defaults {sorted(set(defaults) - reads)} must be among reads")
    entry = RunLearner(name, register(cls), build, reads, targets, requires, summary, defaults, fit)
    known = _RUN_REGISTRY.get(name)
    if known is not None and (known.cls, known.build, known.fit) != (cls, build, fit):
        raise ValueError(f"a different learner is already registered to run as {name!r}")
    _RUN_REGISTRY[name] = entry
    return entry


def run_learner(name: str) -> RunLearner:
    """The learner registered to run as ``name``.

    Raises
    ------
    ValueError
        If none is, naming the ones that are.

    """
    if name not in _RUN_REGISTRY:
        known = ", ".join(repr(n) for n in run_learners())
        raise ValueError(f"learner must be one of {known}; got {name!r}")
    return _RUN_REGISTRY[name]


def run_learners() -> list[str]:
    """The run names of the registered learners, in the order they were registered."""
    return list(_RUN_REGISTRY)
