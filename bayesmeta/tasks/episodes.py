"""Few-shot classification episodes from labelled arrays: :class:`Episodes`.

An *episode* is an N-way K-shot classification task: ``N`` classes drawn at
random, relabelled ``0 .. N-1`` in a random order, with ``K`` support and
``q`` query examples per class. :func:`split_classes` (from
:mod:`bayesmeta.tasks.labelled`) divides the classes of a data set into disjoint
groups (meta-train, validation, meta-test), so that the classes a learner is scored
on were never seen while meta-training.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from bayesmeta._checks import check_count, fmt_shape
from bayesmeta._deprecated import MISSING, renamed
from bayesmeta.errors import ShapeError
from bayesmeta.tasks.labelled import as_inputs, as_labels, split_classes
from bayesmeta.tasks.source import SeededSource
from bayesmeta.tasks.task import TaskBatch

__all__ = ["Episodes", "renamed_counts", "split_classes"]


def renamed_counts(
    k_support: int | None, k_query: int, deprecated: dict[str, Any]
) -> tuple[int, int]:
    """``(k_support, k_query)``, taking them from their old names ``k_shot`` / ``q_query``.

    For a function that takes ``**deprecated``: an old name warns (naming the new
    one, at the user's line) and its value is used.

    Raises
    ------
    TypeError
        If ``deprecated`` holds another keyword, or no support count is given.

    """
    old_k = renamed(_take(deprecated, "k_shot"), "k_shot", "k_support", stacklevel=4)
    old_q = renamed(_take(deprecated, "q_query"), "q_query", "k_query", stacklevel=4)
    if deprecated:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(map(repr, deprecated))}")
    k_support = k_support if old_k is MISSING else old_k
    k_query = k_query if old_q is MISSING else old_q
    if k_support is None:
        raise TypeError("missing k_support, the support examples per class (K)")
    return k_support, k_query


def _take(kwargs: dict[str, Any], name: str) -> dict[str, Any]:
    return {name: kwargs.pop(name)} if name in kwargs else {}


_SPLIT_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}


class _MapDataset(Protocol):
    """A map-style data set: ``len(dataset)`` and ``dataset[i] -> (x, label)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


def _derived_seeds(seed: int | None, count: int) -> list[int | None]:
    """Return ``count`` seeds derived from ``seed`` (all ``None`` when it is ``None``)."""
    if seed is None:
        return [None] * count
    g = torch.Generator().manual_seed(int(seed))
    return [int(s) for s in torch.randint(2**62, (count,), generator=g)]


class Episodes(SeededSource):
    """N-way K-shot classification episodes drawn from labelled arrays.

    Each episode picks ``n_way`` distinct classes at random, relabels them
    ``0 .. n_way - 1`` in a random order, and draws ``k_support + k_query``
    distinct examples per class without replacement: ``k_support`` go to the
    support set and ``k_query`` to the query set, each set shuffled. All
    ``T`` episodes of a call are drawn at once with tensor operations.

    Parameters
    ----------
    x
        Inputs ``[M, *features]`` (NumPy or torch; images ``[M, C, H, W]``),
        converted to ``dtype``; 1-D inputs ``[M]`` become ``[M, 1]``.
    labels
        Integer class labels ``[M]``; any values, not necessarily contiguous.
    n_way
        Classes per episode ``N``, ``>= 1``.
    k_support
        Support examples per class ``K``, ``>= 1``.
    k_query
        Query examples per class ``q``, ``>= 0`` (0: an empty query set).
    **deprecated
        ``k_shot`` and ``q_query``, the old names of ``k_support`` and
        ``k_query``: accepted with a DeprecationWarning for one release.
    classes
        The original labels this source may draw from (e.g. one group of
        :func:`split_classes`); all classes in ``labels`` by default.
    seed
        Seed of the source's generator: the same seed draws the same episodes.
    dtype
        Floating dtype of the inputs (default: torch's default dtype).

    Raises
    ------
    ValueError
        If the arrays are empty, of different lengths, hold non-integer
        labels or non-finite inputs; if fewer than ``n_way`` classes are
        available; or if a class has fewer than ``k_support + k_query`` examples.

    Examples
    --------
    >>> x, y = torch.randn(100, 3), torch.arange(100) % 10
    >>> batch = Episodes(x, y, n_way=5, k_support=2, k_query=3, seed=0).sample(4)
    >>> tuple(batch.support_x.shape), tuple(batch.query_y.shape), batch.n_way
    ((4, 10, 3), (4, 15), 5)

    """

    def __init__(
        self,
        x: Any,
        labels: Any,
        n_way: int,
        k_support: int | None = None,
        k_query: int = 15,
        *,
        classes: Sequence[int] | Tensor | None = None,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
        **deprecated: Any,
    ) -> None:
        k_support, k_query = renamed_counts(k_support, k_query, deprecated)
        super().__init__(seed=seed, dtype=dtype)
        self.n_way = check_count("n_way", n_way, minimum=1)
        self.k_support = check_count("k_support", k_support, minimum=1)
        self.k_query = check_count("k_query", k_query, minimum=0)
        y = as_labels("labels", labels)
        xt = as_inputs(x, self.dtype)
        if xt.shape[0] != y.shape[0]:
            raise ShapeError(
                f"x has {xt.shape[0]} examples but labels has {y.shape[0]}; they must match"
            )
        if y.numel() == 0:
            raise ValueError("x and labels hold no examples (M = 0)")
        present, counts = torch.unique(y, return_counts=True)
        if classes is None:
            chosen, chosen_counts = present, counts
        else:
            chosen = as_labels("classes", classes)
            if chosen.numel() == 0:
                raise ValueError("classes is empty; name at least n_way classes")
            if torch.unique(chosen).numel() != chosen.numel():
                raise ValueError("classes holds duplicate labels")
            pos = torch.searchsorted(present, chosen).clamp(max=present.numel() - 1)
            missing = chosen[present[pos] != chosen]
            if missing.numel():
                raise ValueError(
                    f"classes {missing.tolist()[:10]} have no examples in labels "
                    f"(labels holds {present.numel()} classes)"
                )
            chosen = torch.sort(chosen).values
            chosen_counts = counts[torch.searchsorted(present, chosen)]
        c = int(chosen.numel())
        if c < self.n_way:
            raise ValueError(
                f"n_way={self.n_way} but only {c} classes are available; "
                "lower n_way or give more classes"
            )
        per_class = self.k_support + self.k_query
        small = chosen_counts < per_class
        if bool(small.any()):
            few = [
                f"class {int(k)} has {int(n)}"
                for k, n in zip(chosen[small][:5], chosen_counts[small][:5], strict=True)
            ]
            more = f" (and {int(small.sum()) - 5} more)" if int(small.sum()) > 5 else ""
            raise ValueError(
                f"each episode draws k_support + k_query = {self.k_support} + {self.k_query} = "
                f"{per_class} distinct examples per class, but {', '.join(few)}{more} examples; "
                "lower k_support or k_query, or leave such classes out with classes="
            )
        # Padded index table [C, max_count]: row c lists the examples of class c.
        keep = torch.isin(y, chosen)
        index = torch.nonzero(keep).squeeze(1)
        order = torch.argsort(y[index], stable=True)
        index = index[order]
        width = int(chosen_counts.max())
        col = torch.arange(width)
        starts = torch.cumsum(chosen_counts, 0) - chosen_counts
        valid = col[None, :] < chosen_counts[:, None]
        table = torch.zeros((c, width), dtype=torch.long)
        table[valid] = index[(starts[:, None] + col[None, :])[valid]]
        self.x = xt
        self.labels = y
        self.classes = chosen
        self.class_counts = chosen_counts
        self._table = table

    @classmethod
    def from_dataset(
        cls,
        dataset: _MapDataset,
        n_way: int,
        k_support: int | None = None,
        k_query: int = 15,
        *,
        classes: Sequence[int] | Tensor | None = None,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
        **deprecated: Any,
    ) -> Episodes:
        """Read a map-style dataset of ``(x, label)`` pairs once and draw episodes from it.

        Parameters
        ----------
        dataset
            Anything with ``len(dataset)`` and ``dataset[i] -> (x, label)``,
            e.g. a ``torch.utils.data.Dataset``; every ``x`` must have the
            same shape.
        n_way, k_support, k_query, classes, seed, dtype, **deprecated
            As for :class:`Episodes` (``k_shot`` and ``q_query``, their old
            names, still work with a warning).

        """
        k_support, k_query = renamed_counts(k_support, k_query, deprecated)
        try:
            m = len(dataset)
        except TypeError as err:
            raise TypeError(
                "dataset must be a map-style dataset with __len__ and __getitem__; "
                "read an iterable dataset into arrays and use Episodes(x, labels, ...)"
            ) from err
        xs: list[Tensor] = []
        ys: list[int] = []
        for i in range(m):
            item = dataset[i]
            if not (isinstance(item, tuple | list) and len(item) == 2):
                raise ValueError(f"dataset[{i}] must be an (x, label) pair, got {type(item)}")
            xi = item[0] if isinstance(item[0], Tensor) else torch.as_tensor(np.asarray(item[0]))
            if xs and xi.shape != xs[0].shape:
                raise ShapeError(
                    f"dataset[{i}] has x of shape {fmt_shape(xi.shape)} but dataset[0] has "
                    f"{fmt_shape(xs[0].shape)}; all inputs must have the same shape"
                )
            label = item[1].item() if isinstance(item[1], Tensor | np.ndarray) else item[1]
            if isinstance(label, bool) or not isinstance(label, int | np.integer):
                raise ValueError(f"dataset[{i}] has label {label!r}; labels must be integers")
            xs.append(xi)
            ys.append(int(label))
        if m == 0:
            raise ValueError("dataset holds no examples")
        x = torch.stack(xs)
        return cls(
            x, torch.tensor(ys), n_way, k_support, k_query, classes=classes, seed=seed, dtype=dtype
        )

    @classmethod
    def splits(
        cls,
        x: Any,
        labels: Any,
        n_way: int,
        k_support: int | None = None,
        k_query: int = 15,
        *,
        fractions: Sequence[float] | Sequence[int] = (0.64, 0.16, 0.2),
        classes: Mapping[str, Sequence[int] | Tensor] | None = None,
        seed: int | None = 0,
        dtype: torch.dtype | None = None,
        **deprecated: Any,
    ) -> dict[str, Episodes]:
        """Episode sources over disjoint groups of classes, one per split.

        Parameters
        ----------
        x, labels, n_way, k_support, k_query, dtype, **deprecated
            As for :class:`Episodes`; the inputs are converted once and shared
            (``k_shot`` and ``q_query``, their old names, still work with a warning).
        fractions
            Passed to :func:`split_classes`: three groups give the keys
            ``"train"``, ``"val"``, ``"test"``; two give ``"train"``, ``"test"``.
        classes
            Explicit groups instead of ``fractions``, e.g.
            ``{"train": [0, 1, 2, 3, 4], "test": [5, 6, 7, 8, 9]}``; they must
            be disjoint.
        seed
            Seed of the class split; each source gets its own seed derived
            from it.

        Returns
        -------
        dict of str to Episodes
            One source per split.

        """
        k_support, k_query = renamed_counts(k_support, k_query, deprecated)
        y = as_labels("labels", labels)
        xt = as_inputs(x, dtype or torch.get_default_dtype())
        if classes is None:
            names = _SPLIT_NAMES.get(len(fractions))
            if names is None:
                raise ValueError(
                    f"fractions must give 2 (train, test) or 3 (train, val, test) groups, "
                    f"got {len(fractions)}; pass classes={{name: labels}} for other splits"
                )
            groups: dict[str, Tensor] = dict(
                zip(names, split_classes(y, fractions, seed=seed), strict=True)
            )
        else:
            groups = {name: as_labels(f"classes[{name!r}]", v) for name, v in classes.items()}
            seen: dict[int, str] = {}
            for name, group in groups.items():
                for k in group.tolist():
                    if k in seen and seen[k] != name:
                        raise ValueError(
                            f"class {k} is in both classes[{seen[k]!r}] and classes[{name!r}]; "
                            "the splits must be disjoint"
                        )
                    seen[k] = name
        seeds = _derived_seeds(seed, len(groups))
        sources: dict[str, Episodes] = {}
        for (name, group), s in zip(groups.items(), seeds, strict=True):
            try:
                sources[name] = cls(
                    xt, y, n_way, k_support, k_query, classes=group, seed=s, dtype=xt.dtype
                )
            except ValueError as err:  # say which split cannot hold the episodes
                raise type(err)(f"{name!r} split ({group.numel()} classes): {err}") from err
        return sources

    @property
    def num_classes(self) -> int:
        """Number of classes this source draws from."""
        return int(self.classes.numel())

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` episodes.

        Returns
        -------
        TaskBatch
            ``support_x [T, N*K, *features]``, ``support_y [T, N*K]`` and
            ``query_x [T, N*q, *features]``, ``query_y [T, N*q]``, labels long
            in ``0 .. N-1``, ``n_way = N``. ``info`` holds ``classes [T, N]``
            (the original label behind each new label) and ``support_index``
            ``[T, N*K]``, ``query_index [T, N*q]`` (rows of ``x``).

        """
        t = check_count("num_tasks", num_tasks, minimum=1)
        g = self._generator(generator)
        n, k, q = self.n_way, self.k_support, self.k_query
        c, width = self._table.shape
        # N distinct classes per episode, in random order: position j becomes label j.
        picked = torch.rand((t, c), generator=g).topk(n, dim=1).indices  # [T, N]
        # K + q distinct examples per class: the smallest random keys, padding keyed 2.
        keys = torch.rand((t, n, width), generator=g)
        keys.masked_fill_(torch.arange(width) >= self.class_counts[picked][..., None], 2.0)
        slots = keys.topk(k + q, dim=2, largest=False).indices  # [T, N, K+q]
        rows = self._table[picked[..., None], slots]
        label = torch.arange(n).view(1, n, 1)
        s_idx, s_y = self._shuffle(rows[..., :k].reshape(t, n * k), label.expand(t, n, k), g)
        q_idx, q_y = self._shuffle(rows[..., k:].reshape(t, n * q), label.expand(t, n, q), g)
        return TaskBatch(
            self.x[s_idx],
            s_y,
            self.x[q_idx],
            q_y,
            n,
            info={
                "classes": self.classes[picked],
                "support_index": s_idx,
                "query_index": q_idx,
            },
        )

    @staticmethod
    def _shuffle(idx: Tensor, label: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """Shuffle each episode's examples and labels together."""
        t, m = idx.shape
        if m == 0:
            return idx, label.reshape(t, 0)
        perm = torch.rand((t, m), generator=g).argsort(dim=1)
        return idx.gather(1, perm), label.reshape(t, m).gather(1, perm)

    @property
    def k_shot(self) -> int:
        """Deprecated name of ``k_support`` (warns; goes in the next release)."""
        _warn_old("k_shot", "k_support")
        return self.k_support

    @property
    def q_query(self) -> int:
        """Deprecated name of ``k_query`` (warns; goes in the next release)."""
        _warn_old("q_query", "k_query")
        return self.k_query

    def __repr__(self) -> str:
        return (
            f"Episodes(n_way={self.n_way}, k_support={self.k_support}, k_query={self.k_query}, "
            f"num_classes={self.num_classes}, num_examples={int(self.class_counts.sum())}, "
            f"seed={self.seed})"
        )


def _warn_old(old: str, new: str) -> None:
    warnings.warn(
        f"Episodes.{old} is renamed {new}: read {new} instead (the old name goes in the next "
        "release)",
        DeprecationWarning,
        stacklevel=3,
    )
