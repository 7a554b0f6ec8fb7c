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

import functools
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from bayesmeta.learners.registry import run_learner, run_learners
from bayesmeta.runs.config_checks import (
    BACKBONES,
    DEFAULT_BACKBONE,
    DEFAULT_ITERATIONS,
    applies,
    check_run_config,
    data_settings,
    learner_settings,
)
from bayesmeta.runs.data import data_families, data_family, run_source
from bayesmeta.runs.renames import RENAMED_SETTINGS, upgrade_settings
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
    particle_chunk : int or None
        Bayesian MAML: backpropagate its outer draws this many at a time (the
        same meta-gradient in less memory; ``None``: all at once).
    task_chunk : int or None
        MAML, first-order MAML and Bayesian MAML: backpropagate the meta-batch's
        tasks this many at a time (the same meta-gradient in less memory;
        ``None``: all at once).
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
    device : str
        Where the learner trains and predicts: ``"cpu"`` (the default) or
        ``"cuda"`` / ``"cuda:N"``. Tasks are drawn on the CPU and moved to the
        learner's device; a CUDA device on a machine where torch sees no GPU is
        an error, never a silent fall-back to the CPU.
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
    particle_chunk: int | None = None
    task_chunk: int | None = None
    prior: str = "normal"
    noise: str = "gaussian"
    standardize: bool | str = "auto"
    train_tasks: int = 200
    adapt_steps: int | None = None
    checkpoint_every: int = 500
    source: str | None = None
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_run_config(self)

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

        100 for the MLPs of regression; 10 for image classes with an MLP; 2 for a
        Conv4, whose sampled weights and activations take about 35 MB per task
        (Bayesian MAML, 100 draws, 75 query images): 100 at once peaked at
        6.8 GB, and 10 at once made evaluation the peak of a run (about 1 GB
        against 0.56 GB for meta-training in chunks of tasks). Fewer at once
        costs no time on a CPU. Posterior draws depend on the chunks, so a run
        folder is scored again with the same chunk size.
        """
        if not self.classification:
            return 100
        return 2 if self.backbone == "conv4" else 10

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
        learner = run_learner(self.learner).build(self)
        if torch.device(self.device).type != "cpu":
            if not isinstance(learner, nn.Module):
                raise ValueError(f"learner {self.learner!r} runs on the CPU only; use device 'cpu'")
            learner.to(self.device)
        return learner


def _old_name(config: RunConfig, old: str, new: str) -> Any:
    warnings.warn(
        f"RunConfig.{old} is renamed {new}: read {new} instead (the old name goes in the "
        "next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(config, new)


def _accepting_old_names(init: Any) -> Any:
    """``RunConfig.__init__`` that also takes the settings' old names, with a warning.

    ``RunConfig(shots=5)`` is read as ``RunConfig(k_support=5)`` (see
    :data:`~bayesmeta.runs.renames.RENAMED_SETTINGS`), as TOML files and the
    command line are; giving both names is an error.
    """

    @functools.wraps(init)
    def init_with_old_names(self: RunConfig, *args: Any, **kwargs: Any) -> None:
        if any(old in kwargs for old in RENAMED_SETTINGS):
            kwargs = upgrade_settings(kwargs, source="RunConfig")
        init(self, *args, **kwargs)

    return init_with_old_names


# A frozen dataclass's generated __init__ knows only the new names.
setattr(RunConfig, "__init__", _accepting_old_names(RunConfig.__init__))  # noqa: B010
