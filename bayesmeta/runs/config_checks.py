"""The checks and data-chosen defaults of a run config, and which settings apply to a run.

:func:`check_run_config` is what :class:`~bayesmeta.runs.config.RunConfig` runs when it is
made; :func:`applies` says whether a setting has an effect on a run of a learner on a data
family (the report lists only those).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bayesmeta._checks import check_count, positive
from bayesmeta.learners.registry import run_learner, run_learners
from bayesmeta.runs.data import GLYPH_EXAMPLES, data_families, data_family

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "DEFAULT_ITERATIONS",
    "NOISES",
    "PRIORS",
    "applies",
    "check_device",
    "check_run_config",
    "data_settings",
    "learner_settings",
    "resolve_data_defaults",
]

PRIORS = ("normal", "laplace", "student_t")
#: Networks of image data: a :class:`~bayesmeta.nets.Conv4` on the images, or an MLP of
#: ``hidden`` widths on the flattened pixels.
BACKBONES = ("conv4", "mlp")
#: The backbone an image family gets when the config does not name one: 8x8 digits have
#: too few pixels for four conv blocks (the last two would see 1x1 maps), so an MLP.
DEFAULT_BACKBONE = {"digits": "mlp"}
#: Meta-iterations a run gets when the config does not set them, by data family (others:
#: 10,000). Digits on the MLP backbone: 2,000 (chosen so that a default run of a metric
#: learner finishes in about a minute on 2 CPU cores; see docs/cli.md).
DEFAULT_ITERATIONS = {"digits": 2000}
NOISES = ("gaussian", "student_t")


def learner_settings() -> frozenset[str]:
    """The settings that only some learners read (the union of their ``reads``)."""
    return frozenset().union(*(run_learner(n).reads for n in run_learners()))


def data_settings() -> frozenset[str]:
    """The settings that only some data families read (the union of their ``reads``)."""
    return frozenset().union(*(data_family(n).reads for n in data_families()))


def applies(key: str, learner: str, data: str) -> bool:
    """Whether the setting ``key`` has an effect on a run of ``learner`` on ``data``.

    A setting that only some learners (data families) read applies when the run's
    learner (data family) declares it in its registration's ``reads``; any other applies.
    """
    if key in learner_settings():
        return key in run_learner(learner).reads
    if key in data_settings():
        return key in data_family(data).reads
    return True


def check_run_config(config: Any) -> None:
    """Check a :class:`~bayesmeta.runs.config.RunConfig` when it is made; fill its defaults.

    Learner-dependent defaults come from the learner's registration, data-dependent
    ones from :func:`resolve_data_defaults`; settings are normalised in place (the
    frozen dataclass is written through ``object.__setattr__``).

    Raises
    ------
    ValueError
        Naming the first setting that is unknown, out of range or does not fit the
        learner or the data.

    """
    targets = run_learner(config.learner).targets  # an unknown learner raises
    data_family(config.data)  # an unknown data family raises
    kinds: dict[bool, list[str]] = {True: [], False: []}
    for name in data_families():
        kinds[data_family(name).classification].append(repr(name))
    if targets == "classes" and not config.classification:
        raise ValueError(
            f"learner {config.learner!r} classifies; use it with data "
            f"{' or '.join(kinds[True])}, not {config.data!r}"
        )
    if targets == "regression" and config.classification:
        regression = kinds[False]
        raise ValueError(
            f"learner {config.learner!r} is for regression; use it with data "
            f"{' or '.join(regression)}, not {config.data!r}"
        )
    for key, value in run_learner(config.learner).defaults.items():
        if getattr(config, key) is None:
            object.__setattr__(config, key, value)
    missing = [key for key in run_learner(config.learner).requires if getattr(config, key) is None]
    if missing:
        flags = ", ".join(f"--{key.replace('_', '-')}" for key in missing)
        raise ValueError(
            f"learner {config.learner!r} needs {', '.join(missing)} ({flags} on the command line)"
        )
    object.__setattr__(config, "hidden", tuple(int(h) for h in config.hidden))
    resolve_data_defaults(config)
    object.__setattr__(config, "device", check_device(config.device))
    object.__setattr__(config, "x", tuple(str(c) for c in config.x))
    if config.data == "image_folder" and config.path is None:
        raise ValueError("data 'image_folder' needs path (the folder of class folders)")
    check_count("image_size", config.image_size, minimum=1)
    if config.layout not in ("alphabet/character", "class"):
        raise ValueError(f"layout must be 'alphabet/character' or 'class', got {config.layout!r}")
    if config.data in ("table", "image_folder") and not 0 < config.test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {config.test_fraction}")
    if config.data == "table":
        missing = [k for k in ("path", "group", "y") if getattr(config, k) is None]
        missing += [] if config.x else ["x"]
        if missing:
            raise ValueError(
                f"data 'table' needs {', '.join(missing)} (the CSV file and "
                "its group, input and target columns)"
            )
    for name in (
        "n_way",
        "k_support",
        "eval_tasks",
        "meta_batch_size",
        "channels",
        "inner_steps",
        "train_tasks",
        "checkpoint_every",
    ):
        check_count(name, getattr(config, name), minimum=1)
    check_count("iterations", config.meta_iterations, minimum=0)
    check_count("glyph_classes", config.glyph_classes, minimum=2)
    for name in ("k_query", "eval_k_query", "adapt_steps", "particle_chunk", "task_chunk"):
        if getattr(config, name) is not None:
            check_count(name, getattr(config, name), minimum=1)
    if any(h < 1 for h in config.hidden):
        raise ValueError(f"hidden widths must be >= 1, got {config.hidden}")
    for name in ("inner_lr", "outer_lr", "max_grad_norm", "prior_scale"):
        if getattr(config, name) is not None:
            positive(name, getattr(config, name))
    if not (math.isfinite(config.kl_weight) and config.kl_weight >= 0):
        raise ValueError(f"kl_weight must be >= 0 and finite, got {config.kl_weight}")
    if config.prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}; got {config.prior!r}")
    if not isinstance(config.standardize, bool) and config.standardize != "auto":
        raise ValueError(f'standardize must be true, false or "auto"; got {config.standardize!r}')
    if config.noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}; got {config.noise!r}")
    if config.noise != "gaussian" and config.classification:
        raise ValueError(
            f"noise={config.noise!r} is for regression targets; {config.data!r} has class "
            "labels (a categorical likelihood): remove noise"
        )
    if config.data == "glyphs":
        most = max(config.train_query or 0, config.held_out_query or 0)
        if config.k_support + most > GLYPH_EXAMPLES:
            raise ValueError(
                f"glyph classes have {GLYPH_EXAMPLES} drawings, so k_support + k_query and "
                f"k_support + eval_k_query may not exceed {GLYPH_EXAMPLES}; got "
                f"k_support={config.k_support} with {most} query points"
            )


def check_device(device: object) -> str:
    """``device`` as a string torch accepts, if this machine has it.

    Raises
    ------
    ValueError
        If ``device`` is not ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, or names a CUDA
        device while torch sees no GPU (or fewer than ``N + 1``).

    """
    try:
        dev = torch.device(device)  # type: ignore[call-overload]
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"device {device!r} needs a CUDA GPU, and torch sees none on this machine "
                "(torch.cuda.is_available() is False); use device 'cpu'"
            )
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s)")
    return str(device)


def resolve_data_defaults(config: Any) -> None:
    """Fill the settings left at ``None`` that are chosen from the data.

    Raises
    ------
    ValueError
        If ``backbone`` is unknown, or given for regression data.

    """
    if config.iterations is None:
        object.__setattr__(config, "iterations", DEFAULT_ITERATIONS.get(config.data, 10000))
    if config.backbone is None:
        if config.classification:
            object.__setattr__(config, "backbone", DEFAULT_BACKBONE.get(config.data, "conv4"))
    elif not config.classification:
        raise ValueError(
            f"backbone is for image data; {config.data!r} is regression, whose network is "
            "an MLP of hidden widths: remove backbone"
        )
    elif config.backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {config.backbone!r}")
    unused = {"conv4": ("hidden", (40, 40)), "mlp": ("channels", 32)}.get(config.backbone or "")
    if unused is not None and getattr(config, unused[0]) != unused[1]:
        raise ValueError(
            f"{unused[0]} has no effect with backbone {config.backbone!r} on {config.data!r}; "
            f"remove it, or set the backbone that reads it"
        )
