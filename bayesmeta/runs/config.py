"""What defines a run of ``bayesmeta run``: the learner, its network and the task data.

:class:`RunConfig` names a learner and a built-in data source and builds both. Regression
sources (sinusoids) get an MLP; image sources get the config's ``backbone``, chosen from the
data when left out (:data:`DEFAULT_BACKBONE`: an MLP on the pixels of the 8x8 digits, a
:class:`~bayesmeta.nets.Conv4` otherwise), with a classification head for the gradient
learners and as an encoder for the metric learners. Held-out tasks are drawn from their own
fixed seeds (and, for images, from classes never seen in meta-training), so runs with
different seeds are scored on the same tasks.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import torch

from bayesmeta._checks import check_count, positive
from bayesmeta.learners.registry import run_learner, run_learners
from bayesmeta.runs.data import GLYPH_EXAMPLES, data_families, data_family, run_source
from bayesmeta.tasks.source import SeededSource
from bayesmeta.tasks.tables import GroupedTasks
from bayesmeta.tasks.task import TaskBatch

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "DEFAULT_ITERATIONS",
    "DataName",
    "LearnerName",
    "RunConfig",
    "applies",
    "data_settings",
    "learner_settings",
]

#: A learner's run name: any name registered with
#: :func:`~bayesmeta.learners.registry.register_run` (see :mod:`bayesmeta.runs.learners`).
LearnerName = str
#: A data family's name: any name registered with :func:`~bayesmeta.runs.data.register_data`.
DataName = str
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


_NAMES: dict[str, tuple[str, ...]] = {}


def __getattr__(name: str) -> tuple[str, ...]:
    """``LEARNERS``, ``METRIC_LEARNERS``, ``DATA`` and ``CLASSIFICATION_DATA``, as registered.

    They are read from the registries when asked for; the same tuple comes back while the
    registries stay as they are.
    """
    if name == "LEARNERS":  # every learner registered to run
        value = tuple(run_learners())
    elif name == "METRIC_LEARNERS":  # those that classify only
        value = tuple(n for n in run_learners() if run_learner(n).targets == "classes")
    elif name == "DATA":  # every data family
        value = tuple(data_families())
    elif name == "CLASSIFICATION_DATA":  # those of class labels
        value = tuple(n for n in data_families() if data_family(n).classification)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _NAMES.get(name) != value:
        _NAMES[name] = value
    return _NAMES[name]


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


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; the defaults are the built-in sinusoid job.

    Attributes
    ----------
    learner : str
        A learner's run name (see :mod:`bayesmeta.runs.learners`): ``"maml"``,
        ``"fomaml"``, ``"reptile"``, ``"bayesian_maml"``, ``"variational"``
        (:class:`~bayesmeta.VariationalMetaLearner`), ``"protonet"``,
        ``"bayesian_protonet"``, ``"matching"`` (these three classify only) or
        ``"transfer"`` (:class:`~bayesmeta.TransferLearner` on a ``source``
        network; regression only).
    data : str
        The task family: ``"sinusoid"`` or ``"sinusoid_or_line"``
        (regression), ``"table"`` (your own CSV file, one regression task
        per group of rows), ``"glyphs"`` (a generated Omniglot-like
        alphabet, 28x28 images), ``"digits"`` (scikit-learn's bundled 8x8
        digits, meta-trained on 0-4 and tested on 5-9) or ``"image_folder"``
        (your own images, one folder per class).
    path, group, x, y, order_by : str, str, tuple of str, str, str or None
        For ``"table"``: the CSV file (with a header row), the column whose
        values name the tasks, the input columns, the target column, and an
        optional column to order each group's rows by (then the first
        ``k_support`` rows are the support set, as for a time series; otherwise
        a random ``k_support``).
    test_fraction : float
        For ``"table"`` and ``"image_folder"``: the share of groups (classes)
        held out for evaluation, drawn once with a fixed seed; meta-training
        never sees their rows (images).
    backbone : str or None
        The network of image data: ``"conv4"`` (a :class:`~bayesmeta.nets.Conv4`
        of ``channels`` on the images) or ``"mlp"`` (an MLP of ``hidden``
        widths on the flattened pixels). ``None`` (the default) picks from the
        data (:data:`DEFAULT_BACKBONE`): an MLP for the 8x8 digits, a Conv4
        otherwise. Regression data always get an MLP and take no backbone.
    image_size, layout, invert : int, str, bool
        For ``"image_folder"`` (your own images, ``path`` the folder; see
        :func:`~bayesmeta.tasks.load_image_folder`): the side the greyscale
        images are resized to, ``"class"`` (``path/class/*.png``) or
        ``"alphabet/character"`` (Omniglot's layout), and whether to map dark
        strokes on white to 1 on 0.
    n_way : int
        Classes per episode (image data).
    k_support : int
        Support points per task ``K`` (per class for image data); was ``shots``.
    k_query, eval_k_query : int or None
        Query points per meta-training and per held-out task (per class for
        image data); ``None``: 10 and 100 for the sinusoids, 15 and 15 for
        images, and for tables every row of the smallest group after the
        support set. Glyph classes have 20 drawings, so ``k_support`` plus
        either may not exceed 20. Were ``query`` and ``eval_query``.
    eval_tasks : int
        Number of held-out tasks scored.
    iterations : int or None
        Meta-training length; ``None`` (the default) takes the data's
        (:data:`DEFAULT_ITERATIONS`: 2,000 for digits, else 10,000).
    meta_batch_size : int
        Tasks per meta-iteration.
    hidden : tuple of int
        Hidden widths of the MLP (regression, and image data on the ``"mlp"``
        backbone).
    channels : int
        Channels of each :class:`~bayesmeta.nets.Conv4` block (image data).
    glyph_classes : int
        Classes of the generated alphabet, split 64/16/20% into meta-train,
        validation and meta-test classes.
    inner_lr, inner_steps, learn_inner_lr
        Inner loop of the gradient learners (see :class:`~bayesmeta.MAML`);
        by default 5 inner steps in meta-training.
    outer_lr : float
        Adam learning rate of meta-training.
    max_grad_norm : float or None
        Meta-gradient clipping.
    prior_scale : float or None
        Initial prior scale of the Bayesian learners (``None``: the
        learner's own default).
    kl_weight : float
        Weight of the KL term of Bayesian MAML's task objective.
    prior : str
        Bayesian MAML's weight prior: ``"normal"``, ``"laplace"`` or
        ``"student_t"`` (see :mod:`bayesmeta.priors`).
    noise : str
        Bayesian MAML's observation noise on regression data: ``"gaussian"``
        or ``"student_t"`` (heavy tails); class labels are categorical.
    standardize : str or bool
        ``"auto"`` (default), ``true`` or ``false``: standardise inputs and
        targets inside the weight-space learners (see
        :class:`~bayesmeta.learners.MetaLearner`), so a table in natural
        units needs no rescaling by hand.
    train_tasks : int
        Meta-training tasks drawn once for ``"variational"``, which fits a
        posterior to each of a fixed set of tasks.
    adapt_steps : int or None
        Steps of test-time adaptation to a new task: gradient steps of the
        gradient learners (``None``: 10; was ``eval_inner_steps``), SVI steps
        of ``"variational"`` and ``"transfer"`` (``None``: 300). A run's
        ``config.json`` holds the value used.
    checkpoint_every : int
        Meta-iterations between training checkpoints in the run folder
        (``bayesmeta resume`` continues an interrupted run from the last one).
    source : str or None
        For ``"transfer"``: the source network, as a run folder (its learner's
        network) or a ``.safetensors`` file (a learner checkpoint, or a network
        ``state_dict`` for an MLP of ``hidden`` widths); see
        :mod:`bayesmeta.runs.transfer`.
    seed : int
        Seeds the weights and the meta-training tasks.

    """

    learner: str = "maml"
    data: str = "sinusoid"
    path: str | None = None
    group: str | None = None
    x: tuple[str, ...] = ()
    y: str | None = None
    order_by: str | None = None
    test_fraction: float = 0.2
    backbone: str | None = None
    image_size: int = 28
    layout: Literal["alphabet/character", "class"] = "class"
    invert: bool = False
    n_way: int = 5
    k_support: int = 5
    k_query: int | None = None
    eval_k_query: int | None = None
    eval_tasks: int = 600
    iterations: int | None = None
    meta_batch_size: int = 25
    hidden: tuple[int, ...] = (40, 40)
    channels: int = 32
    glyph_classes: int = 1200
    inner_lr: float = 0.01
    inner_steps: int = 5
    outer_lr: float = 1e-3
    learn_inner_lr: bool = False
    max_grad_norm: float | None = None
    prior_scale: float | None = None
    kl_weight: float = 1.0
    prior: str = "normal"
    noise: str = "gaussian"
    standardize: bool | str = "auto"
    train_tasks: int = 200
    adapt_steps: int | None = None
    checkpoint_every: int = 500
    source: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        targets = run_learner(self.learner).targets  # an unknown learner raises
        data_family(self.data)  # an unknown data family raises
        kinds: dict[bool, list[str]] = {True: [], False: []}
        for name in data_families():
            kinds[data_family(name).classification].append(repr(name))
        if targets == "classes" and not self.classification:
            raise ValueError(
                f"learner {self.learner!r} classifies; use it with data "
                f"{' or '.join(kinds[True])}, not {self.data!r}"
            )
        if targets == "regression" and self.classification:
            regression = kinds[False]
            raise ValueError(
                f"learner {self.learner!r} is for regression; use it with data "
                f"{' or '.join(regression)}, not {self.data!r}"
            )
        for key, value in run_learner(self.learner).defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        missing = [key for key in run_learner(self.learner).requires if getattr(self, key) is None]
        if missing:
            flags = ", ".join(f"--{key.replace('_', '-')}" for key in missing)
            raise ValueError(
                f"learner {self.learner!r} needs {', '.join(missing)} ({flags} on the command line)"
            )
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        self._resolve_defaults()
        object.__setattr__(self, "x", tuple(str(c) for c in self.x))
        if self.data == "image_folder" and self.path is None:
            raise ValueError("data 'image_folder' needs path (the folder of class folders)")
        check_count("image_size", self.image_size, minimum=1)
        if self.layout not in ("alphabet/character", "class"):
            raise ValueError(f"layout must be 'alphabet/character' or 'class', got {self.layout!r}")
        if self.data in ("table", "image_folder") and not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.data == "table":
            missing = [k for k in ("path", "group", "y") if getattr(self, k) is None]
            missing += [] if self.x else ["x"]
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
            check_count(name, getattr(self, name), minimum=1)
        check_count("iterations", self.meta_iterations, minimum=0)
        check_count("glyph_classes", self.glyph_classes, minimum=2)
        for name in ("k_query", "eval_k_query", "adapt_steps"):
            if getattr(self, name) is not None:
                check_count(name, getattr(self, name), minimum=1)
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")
        for name in ("inner_lr", "outer_lr", "max_grad_norm", "prior_scale"):
            if getattr(self, name) is not None:
                positive(name, getattr(self, name))
        if not (math.isfinite(self.kl_weight) and self.kl_weight >= 0):
            raise ValueError(f"kl_weight must be >= 0 and finite, got {self.kl_weight}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}; got {self.prior!r}")
        if not isinstance(self.standardize, bool) and self.standardize != "auto":
            raise ValueError(f'standardize must be true, false or "auto"; got {self.standardize!r}')
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}; got {self.noise!r}")
        if self.noise != "gaussian" and self.classification:
            raise ValueError(
                f"noise={self.noise!r} is for regression targets; {self.data!r} has class "
                "labels (a categorical likelihood): remove noise"
            )
        if self.data == "glyphs":
            most = max(self.train_query or 0, self.held_out_query or 0)
            if self.k_support + most > GLYPH_EXAMPLES:
                raise ValueError(
                    f"glyph classes have {GLYPH_EXAMPLES} drawings, so k_support + k_query and "
                    f"k_support + eval_k_query may not exceed {GLYPH_EXAMPLES}; got "
                    f"k_support={self.k_support} with {most} query points"
                )

    def _resolve_defaults(self) -> None:
        """Fill the settings left at ``None`` that are chosen from the data.

        Raises
        ------
        ValueError
            If ``backbone`` is unknown, or given for regression data.

        """
        if self.iterations is None:
            object.__setattr__(self, "iterations", DEFAULT_ITERATIONS.get(self.data, 10000))
        if self.backbone is None:
            if self.classification:
                object.__setattr__(self, "backbone", DEFAULT_BACKBONE.get(self.data, "conv4"))
        elif not self.classification:
            raise ValueError(
                f"backbone is for image data; {self.data!r} is regression, whose network is "
                "an MLP of hidden widths: remove backbone"
            )
        elif self.backbone not in BACKBONES:
            raise ValueError(
                f"backbone must be one of {', '.join(BACKBONES)}; got {self.backbone!r}"
            )
        unused = {"conv4": ("hidden", (40, 40)), "mlp": ("channels", 32)}.get(self.backbone or "")
        if unused is not None and getattr(self, unused[0]) != unused[1]:
            raise ValueError(
                f"{unused[0]} has no effect with backbone {self.backbone!r} on {self.data!r}; "
                f"remove it, or set the backbone that reads it"
            )

    @property
    def meta_iterations(self) -> int:
        """Meta-iterations of the run (``iterations``, resolved from the data if unset)."""
        assert self.iterations is not None  # resolved in __post_init__
        return self.iterations

    @property
    def classification(self) -> bool:
        """Whether the data are image classes (else regression)."""
        return data_family(self.data).classification

    @property
    def shots(self) -> int:
        """Deprecated name of :attr:`k_support` (warns)."""
        return int(_old_name(self, "shots", "k_support"))

    @property
    def query(self) -> int | None:
        """Deprecated name of :attr:`k_query` (warns)."""
        return _old_name(self, "query", "k_query")

    @property
    def eval_query(self) -> int | None:
        """Deprecated name of :attr:`eval_k_query` (warns)."""
        return _old_name(self, "eval_query", "eval_k_query")

    @property
    def eval_inner_steps(self) -> int | None:
        """Deprecated name of :attr:`adapt_steps` (warns)."""
        return _old_name(self, "eval_inner_steps", "adapt_steps")

    @property
    def train_query(self) -> int | None:
        """Query points per meta-training task (per class for images; tables: ``None``)."""
        if self.k_query is not None or self.data == "table":
            return self.k_query
        return 15 if self.classification else 10

    @property
    def held_out_query(self) -> int | None:
        """Query points per held-out task (per class for images; tables: ``None``)."""
        if self.eval_k_query is not None or self.data == "table":
            return self.eval_k_query
        return 15 if self.classification else 100

    def train_source(self) -> SeededSource:
        """The meta-training tasks, drawn from ``seed``."""
        return run_source(self, "train", self.seed, self.train_query)

    def held_out_source(self, seed: int) -> SeededSource:
        """Held-out tasks drawn from ``seed``: new functions, or unseen classes or groups."""
        return run_source(self, "test", seed, self.held_out_query)

    def held_out_tasks(self, seed: int) -> TaskBatch:
        """The ``eval_tasks`` held-out tasks (for tables, each held-out group at most once)."""
        source = self.held_out_source(seed)
        count = self.eval_tasks
        if isinstance(source, GroupedTasks):
            count = min(count, len(source))
        return source.sample(count)

    def noise_fit_tasks(self, seed: int) -> TaskBatch:
        """200 tasks to fit a point-estimate learner's noise scale on, apart from the test.

        For the built-in families they are new tasks of their own seed; for tables, the
        meta-training groups (the held-out groups are kept for evaluation).
        """
        split = "train" if self.data == "table" else "test"
        return run_source(self, split, seed, None).sample(200)

    @property
    def eval_chunk_size(self) -> int:
        """Held-out tasks adapted at once in evaluation and reports.

        100 for the MLPs of regression; 10 for a Conv4 on images, whose sampled
        weights and activations take about 33 MB per task (Bayesian MAML, 100
        draws, 75 query images), so that 100 at once peaked at 6.8 GB. Fewer
        at once costs no time on a CPU.
        """
        return 10 if self.classification else 100

    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the image data."""
        if self.data == "image_folder":
            return (1, self.image_size, self.image_size)
        return (1, 28, 28) if self.data == "glyphs" else (1, 8, 8)

    def build_learner(self) -> Any:
        """A fresh learner for this config (weights seeded by ``seed``).

        Built by the learner's registered builder (see :mod:`bayesmeta.runs.learners`).
        """
        torch.manual_seed(self.seed)
        return run_learner(self.learner).build(self)


def _old_name(config: RunConfig, old: str, new: str) -> Any:
    warnings.warn(
        f"RunConfig.{old} is renamed {new}: read {new} instead (the old name goes in the "
        "next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(config, new)
