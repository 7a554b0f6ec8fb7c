"""The task data of a run: built-in families, your CSV table or your image folder.

:func:`run_source` turns a :class:`~bayesmeta.runs.config.RunConfig` into a task source
of its meta-training or held-out tasks. The held-out ones are new functions (sinusoids),
classes never meta-trained on (images), or groups held out once with :data:`DATA_SEED`
(tables). Each family is registered (:func:`register_data`) with the function that
builds its tasks, whether its targets are class labels, and the settings it reads; the
config checks and the command's ``--data`` choices read that registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

import torch

from bayesmeta.tasks.episodes import Episodes
from bayesmeta.tasks.glyphs import make_glyphs
from bayesmeta.tasks.images import load_digits, load_image_folder
from bayesmeta.tasks.labelled import split_classes
from bayesmeta.tasks.regression import Sinusoid, SinusoidOrLine
from bayesmeta.tasks.source import SeededSource
from bayesmeta.tasks.tables import GroupedTasks, from_dataframe, read_csv, unique_in_order

__all__ = [
    "DATA_SEED",
    "GLYPH_EXAMPLES",
    "DataFamily",
    "DataSettings",
    "data_families",
    "data_family",
    "glyph_alphabet",
    "register_data",
    "run_source",
]

# Seed of the generated glyph alphabet and of the class and group splits: part of the data's
# definition, the same in every run, so that runs with different seeds share their held-out
# tasks.
DATA_SEED = 0
GLYPH_EXAMPLES = 20  # drawings per glyph class, as in Omniglot


class DataSettings(Protocol):
    """The settings of a run that define its data (a :class:`~bayesmeta.runs.config.RunConfig`).

    Read-only here: this module builds the data, and the config that validates the
    settings sits above it and uses it.
    """

    @property
    def data(self) -> str:
        """The data family: ``"sinusoid"``, ``"glyphs"``, ``"table"``, ..."""
        ...

    @property
    def path(self) -> str | None:
        """The CSV file or image folder, for ``"table"`` and ``"image_folder"``."""
        ...

    @property
    def group(self) -> str | None:
        """The CSV column whose values are the tasks."""
        ...

    @property
    def x(self) -> tuple[str, ...]:
        """The CSV input columns."""
        ...

    @property
    def y(self) -> str | None:
        """The CSV target column."""
        ...

    @property
    def order_by(self) -> str | None:
        """The CSV column that orders each group's rows (support first), if any."""
        ...

    @property
    def test_fraction(self) -> float:
        """The share of groups or classes held out."""
        ...

    @property
    def backbone(self) -> str | None:
        """The network of image data: ``"conv4"`` (images) or ``"mlp"`` (flattened pixels)."""
        ...

    @property
    def image_size(self) -> int:
        """The side of the square images."""
        ...

    @property
    def layout(self) -> Literal["alphabet/character", "class"]:
        """How the image folder is laid out."""
        ...

    @property
    def invert(self) -> bool:
        """Whether to invert the images' grey levels."""
        ...

    @property
    def n_way(self) -> int:
        """Classes per episode."""
        ...

    @property
    def k_support(self) -> int:
        """Support points per task (per class for images)."""
        ...

    @property
    def glyph_classes(self) -> int:
        """Classes of the generated glyph alphabet."""
        ...

    @property
    def held_out_query(self) -> int | None:
        """Query points per held-out task (``None`` for tables: every row left)."""
        ...


#: ``build(config, split, seed, k_query)``: the ``"train"`` or ``"test"`` tasks.
SourceBuilder = Callable[[DataSettings, str, int, "int | None"], SeededSource]


@dataclass(frozen=True)
class DataFamily:
    """A data family of ``bayesmeta run``.

    Attributes
    ----------
    name : str
        Its name: a run config's ``data`` and ``--data`` on the command line.
    build : callable
        ``build(config, split, seed, k_query)``: the ``"train"`` or ``"test"``
        tasks drawn from ``seed``, ``k_query`` query points each (``None``: the
        held-out default), as :func:`run_source` documents.
    classification : bool
        Whether its targets are class labels (image episodes).
    reads : frozenset of str
        The run settings that only some data families read and this one does.

    """

    name: str
    build: SourceBuilder
    classification: bool = False
    reads: frozenset[str] = frozenset()


_FAMILIES: dict[str, DataFamily] = {}


def register_data(
    name: str, build: SourceBuilder, *, classification: bool = False, reads: Iterable[str] = ()
) -> DataFamily:
    """Register the data family ``name`` (see :class:`DataFamily`) and return it.

    Raises
    ------
    ValueError
        If a different family is already registered as ``name``.

    """
    family = DataFamily(name, build, bool(classification), frozenset(reads))
    known = _FAMILIES.get(name)
    if known is not None and known != family:
        raise ValueError(f"a different data family is already registered as {name!r}")
    _FAMILIES[name] = family
    return family


def data_family(name: str) -> DataFamily:
    """The data family registered as ``name``; ``ValueError`` naming the known ones."""
    if name not in _FAMILIES:
        known = ", ".join(repr(n) for n in data_families())
        raise ValueError(f"data must be one of {known}; got {name!r}")
    return _FAMILIES[name]


def data_families() -> list[str]:
    """The registered data families, in the order they were registered."""
    return list(_FAMILIES)


def run_source(config: DataSettings, split: str, seed: int, k_query: int | None) -> SeededSource:
    """The ``"train"`` or ``"test"`` tasks of ``config``'s data, drawn from ``seed``.

    ``k_query`` is the query points per task (per class for images); ``None``
    takes the held-out default (for tables: every row after the support set).
    """
    return data_family(config.data).build(config, split, seed, k_query)


def _query(config: DataSettings, k_query: int | None) -> int:
    """``k_query``, or the held-out default."""
    k_query = config.held_out_query if k_query is None else k_query
    assert k_query is not None
    return k_query


def _sinusoid(config: DataSettings, split: str, seed: int, k_query: int | None) -> SeededSource:
    return Sinusoid(config.k_support, _query(config, k_query), seed=seed)


def _sinusoid_or_line(
    config: DataSettings, split: str, seed: int, k_query: int | None
) -> SeededSource:
    return SinusoidOrLine(config.k_support, _query(config, k_query), seed=seed)


def _seeded(source: Episodes, seed: int) -> Episodes:
    """``source`` drawing its episodes from ``seed`` (the data stay as they are)."""
    source.generator.manual_seed(seed)
    source.seed = seed
    return source


@lru_cache(maxsize=2)
def glyph_alphabet(num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's generated glyph alphabet, rendered once per process and shared.

    A run draws its meta-training and held-out episodes (and a baseline's) from the
    same alphabet; rendering its 24,000 images took ~5 s on 2 busy cores, so every
    split reads this one copy (read-only: nothing writes into episode data).

    Returns
    -------
    x : Tensor
        Images ``[C*20, 1, 28, 28]``.
    labels : Tensor
        Class labels ``[C*20]``.

    """
    return make_glyphs(num_classes, GLYPH_EXAMPLES, seed=DATA_SEED)


def _inputs(config: DataSettings, x: torch.Tensor) -> torch.Tensor:
    """Images ``[M, C, H, W]`` as the backbone takes them: flattened ``[M, C*H*W]`` for an MLP."""
    return x.flatten(1) if config.backbone == "mlp" else x


def _image_split(
    config: DataSettings,
    x: torch.Tensor,
    labels: torch.Tensor,
    split: str,
    seed: int,
    k_query: int | None,
    **groups: Any,
) -> Episodes:
    """Episodes of one split of ``(x, labels)``, the classes grouped by ``groups``.

    ``groups`` is passed to :meth:`~bayesmeta.tasks.Episodes.splits` (its ``fractions`` or
    ``classes``); the split is fixed by :data:`DATA_SEED`, the episodes drawn from ``seed``.
    """
    sources = Episodes.splits(
        _inputs(config, x),
        labels,
        config.n_way,
        config.k_support,
        _query(config, k_query),
        seed=DATA_SEED,
        dtype=x.dtype,
        **groups,
    )
    return _seeded(sources[split], seed)


def _glyphs(config: DataSettings, split: str, seed: int, k_query: int | None) -> Episodes:
    x, labels = glyph_alphabet(config.glyph_classes)
    return _image_split(config, x, labels, split, seed, k_query, fractions=(0.64, 0.16, 0.2))


def _digits(config: DataSettings, split: str, seed: int, k_query: int | None) -> Episodes:
    """Digits 0-4 to meta-train on and 5-9 held out, as :func:`~bayesmeta.tasks.digits_episodes`."""
    x, labels = load_digits()
    digits = {"train": [0, 1, 2, 3, 4], "test": [5, 6, 7, 8, 9]}
    return _image_split(config, x, labels, split, seed, k_query, classes=digits)


def _table(config: DataSettings, split: str, seed: int, k_query: int | None) -> GroupedTasks:
    """The training or held-out groups of the CSV file as a task source."""
    assert config.path is not None and config.group is not None and config.y is not None
    columns = read_csv(config.path)
    if config.group not in columns:
        raise ValueError(f"{config.path} has no column {config.group!r}; it has {list(columns)}")
    names = unique_in_order(columns[config.group]).tolist()
    if len(names) < 2:
        raise ValueError(
            f"{config.path} has {len(names)} group(s) in column {config.group!r}; a run needs "
            "at least 2, some to meta-train on and some to hold out"
        )
    held_out = min(max(1, round(config.test_fraction * len(names))), len(names) - 1)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(DATA_SEED))
    chosen = order[:held_out] if split == "test" else order[held_out:]
    return from_dataframe(
        columns,
        group=config.group,
        x=list(config.x),
        y=config.y,
        k_support=config.k_support,
        k_query=k_query,
        split="random" if config.order_by is None else "first",
        order_by=config.order_by,
        groups=[names[int(i)] for i in sorted(chosen.tolist())],
        seed=seed,
    )


def _image_folder(config: DataSettings, split: str, seed: int, k_query: int | None) -> Episodes:
    """Episodes over the training or held-out classes of the image folder."""
    assert config.path is not None
    k_query = _query(config, k_query)
    x, labels, _ = load_image_folder(
        config.path,
        image_size=config.image_size,
        rotations=(0,),
        invert=config.invert,
        layout=config.layout,
    )
    fractions = (1 - config.test_fraction, config.test_fraction)
    train, test = split_classes(labels, fractions, seed=DATA_SEED)
    classes = test if split == "test" else train
    source = Episodes(
        _inputs(config, x), labels, config.n_way, config.k_support, k_query, classes=classes, seed=0
    )
    return _seeded(source, seed)


_IMAGES = ("n_way", "channels", "backbone", "hidden")
register_data("sinusoid", _sinusoid, reads=("hidden",))
register_data("sinusoid_or_line", _sinusoid_or_line, reads=("hidden",))
register_data(
    "table",
    _table,
    reads=("hidden", "path", "group", "x", "y", "order_by", "test_fraction"),
)
register_data("glyphs", _glyphs, classification=True, reads=(*_IMAGES, "glyph_classes"))
register_data("digits", _digits, classification=True, reads=_IMAGES)
register_data(
    "image_folder",
    _image_folder,
    classification=True,
    reads=(*_IMAGES, "path", "image_size", "layout", "invert", "test_fraction"),
)
