"""Tasks from grouped tables: each group of rows (a subject, a site, a product) is a task."""

from __future__ import annotations

import csv
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.errors import ShapeError
from bayesmeta.tasks.source import SeededSource
from bayesmeta.tasks.task import Task, TaskBatch

__all__ = ["GroupedTasks", "SplitRule", "from_dataframe", "read_csv", "unique_in_order"]

SplitRule = Literal["first", "random"]


def _columns(data: Any) -> list[str]:
    cols = getattr(data, "columns", None)
    if cols is not None:
        return [str(c) for c in cols]
    if isinstance(data, Mapping):
        return [str(c) for c in data]
    raise TypeError(
        f"data must be a pandas DataFrame or a mapping of column name to values, got "
        f"{type(data).__name__}"
    )


def _column(data: Any, name: str, available: list[str]) -> np.ndarray:
    if name not in available:
        raise KeyError(f"the table has no column {name!r}; its columns are {available}")
    return np.asarray(data[name])


def _numeric(name: str, values: np.ndarray) -> np.ndarray:
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        raise ShapeError(f"column {name!r} must hold numbers, got dtype {values.dtype}")
    out = values.astype(np.float64)
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise ValueError(f"column {name!r} holds a missing or non-finite value (row {bad})")
    return out


def unique_in_order(keys: np.ndarray) -> np.ndarray:
    """The distinct values of ``keys`` ``[M]``, in the order of their first appearance."""
    _, first = np.unique(keys, return_index=True)
    return keys[np.sort(first)]


class GroupedTasks(SeededSource):
    """A task source over the groups of a table: one task per group.

    Each draw picks groups at random and splits each group's rows into
    ``k_support`` support rows and ``k_query`` query rows: the first rows in
    the table's order (or ``order_by``'s) with ``split="first"`` (e.g. the
    first measurements of a growth curve, the rest to predict), or rows drawn
    at random, afresh at each draw, with ``split="random"``.

    Parameters
    ----------
    data
        A pandas DataFrame, or a mapping of column name to equally long arrays.
    group
        The column whose values name the groups (tasks).
    x
        Input column(s), numeric: ``D`` columns give inputs ``[N, D]``.
    y
        Target column(s): regression targets ``[N, O]``, or one column of
        class labels with ``classification=True``.
    k_support
        Support rows per task.
    k_query
        Query rows per task in :meth:`sample`; ``None`` uses, in every draw,
        as many as the smallest group leaves. :meth:`task` always puts all
        remaining rows in the query set.
    split
        ``"first"`` or ``"random"``.
    order_by
        Column giving the order of rows within a group for ``split="first"``
        (e.g. time); the table's order when omitted.
    groups
        Only these groups (e.g. the training subjects); all by default.
    classification
        Treat ``y`` as integer class labels.
    seed, dtype
        Seed of the draws and floating dtype, as for every source.

    Attributes
    ----------
    group_names : list
        The groups, in order of first appearance in the table.

    Raises
    ------
    KeyError
        If a named column is missing (the message lists the table's columns).
    ValueError
        If a group has fewer rows than the split needs (named, with its row
        count), a value is missing or not finite, or an argument is invalid.

    Examples
    --------
    >>> table = {"subject": [1, 1, 1, 2, 2, 2], "t": [0, 1, 2, 0, 1, 2],
    ...          "weight": [40.0, 50.0, 62.0, 41.0, 49.0, 57.0]}
    >>> tasks = GroupedTasks(table, group="subject", x="t", y="weight", k_support=2,
    ...                      split="first")
    >>> batch = tasks.sample(2)
    >>> tuple(batch.support_x.shape), tuple(batch.query_y.shape)
    ((2, 2, 1), (2, 1, 1))

    """

    def __init__(
        self,
        data: Any,
        *,
        group: str,
        x: str | Sequence[str],
        y: str | Sequence[str],
        k_support: int,
        k_query: int | None = None,
        split: SplitRule = "random",
        order_by: str | None = None,
        groups: Sequence[Hashable] | None = None,
        classification: bool = False,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(seed=seed, dtype=dtype)
        if split not in ("first", "random"):
            raise ValueError(f"split must be 'first' or 'random', got {split!r}")
        self.k_support = check_count("k_support", k_support, minimum=1)
        self.split: SplitRule = split
        self.classification = bool(classification)
        available = _columns(data)
        x_cols = [x] if isinstance(x, str) else list(x)
        y_cols = [y] if isinstance(y, str) else list(y)
        if not x_cols or not y_cols:
            raise ValueError("name at least one input column (x) and one target column (y)")
        if self.classification and len(y_cols) != 1:
            raise ValueError("classification takes one label column as y")
        keys = _column(data, group, available)
        xs = np.stack([_numeric(c, _column(data, c, available)) for c in x_cols], axis=-1)
        if self.classification:
            labels = _numeric(y_cols[0], _column(data, y_cols[0], available))
            if (labels != np.round(labels)).any() or (labels < 0).any():
                raise ValueError(f"column {y_cols[0]!r} must hold class labels 0, 1, 2, ...")
            ys = labels.astype(np.int64)
        else:
            ys = np.stack([_numeric(c, _column(data, c, available)) for c in y_cols], axis=-1)
        order = np.arange(len(keys))
        if order_by is not None:
            order = np.argsort(
                _numeric(order_by, _column(data, order_by, available)), kind="stable"
            )
        if len(keys) == 0:
            raise ValueError("the table has no rows")
        names = unique_in_order(keys)
        if groups is not None:
            wanted = list(groups)
            missing = [g for g in wanted if g not in set(names.tolist())]
            if missing:
                raise ValueError(f"groups {missing[:10]} do not occur in column {group!r}")
            names = np.asarray(wanted, dtype=names.dtype)
        if len(names) == 0:
            raise ValueError("no groups to draw tasks from")
        sorted_keys = keys[order]
        self.group_names: list[Any] = names.tolist()
        self._rows: list[Tensor] = [torch.as_tensor(order[sorted_keys == name]) for name in names]
        sizes = [len(r) for r in self._rows]
        smallest = int(np.argmin(sizes))
        if k_query is None:
            # at least 0, so that a group too small for k_support is named below
            k_query = max(sizes[smallest] - self.k_support, 0)
        self.k_query = check_count("k_query", k_query, minimum=0)
        need = self.k_support + self.k_query
        for name, size in zip(self.group_names, sizes, strict=True):
            if size < need:
                raise ValueError(
                    f"group {name!r} has {size} row(s) but a task needs k_support + k_query = "
                    f"{self.k_support} + {self.k_query} = {need}; lower k_support or k_query, "
                    "or leave the group out (groups=...)"
                )
        self._x = torch.as_tensor(xs, dtype=self.dtype)
        self._y = (
            torch.as_tensor(ys) if self.classification else torch.as_tensor(ys, dtype=self.dtype)
        )
        #: Number of classes over the whole table (classification), so that tasks stack.
        self.n_way: int | None = int(ys.max()) + 1 if self.classification else None

    def __len__(self) -> int:
        return len(self._rows)

    def _split(self, rows: Tensor, g: torch.Generator, query: int | None) -> tuple[Tensor, Tensor]:
        if self.split == "random":
            rows = rows[torch.randperm(len(rows), generator=g)]
        k = self.k_support
        end = len(rows) if query is None else k + query
        return rows[:k], rows[k:end]

    def _task(self, support: Tensor, query: Tensor) -> Task:
        return Task(self._x[support], self._y[support], self._x[query], self._y[query], self.n_way)

    def task(self, name: Hashable, *, generator: torch.Generator | None = None) -> Task:
        """The task of one group: ``k_support`` support rows, every other row as query."""
        if name not in self.group_names:
            raise KeyError(f"no group {name!r}; the groups are {self.group_names[:20]}")
        rows = self._rows[self.group_names.index(name)]
        return self._task(*self._split(rows, self._generator(generator), None))

    def tasks(self, *, generator: torch.Generator | None = None) -> list[Task]:
        """Every group's task (see :meth:`task`), in the order of :attr:`group_names`."""
        return [self.task(name, generator=generator) for name in self.group_names]

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` groups (without replacement while there are enough) as a batch."""
        t = check_count("num_tasks", num_tasks, minimum=1)
        g = self._generator(generator)
        n = len(self._rows)
        idx = torch.randperm(n, generator=g)[:t] if t <= n else torch.randint(n, (t,), generator=g)
        tasks = [self._task(*self._split(self._rows[int(i)], g, self.k_query)) for i in idx]
        batch = TaskBatch.stack(tasks)
        return TaskBatch(
            batch.support_x,
            batch.support_y,
            batch.query_x,
            batch.query_y,
            batch.n_way,
            info={"group_index": idx},
        )


def from_dataframe(
    data: Any,
    *,
    group: str,
    x: str | Sequence[str],
    y: str | Sequence[str],
    k_support: int,
    k_query: int | None = None,
    split: SplitRule = "random",
    order_by: str | None = None,
    groups: Sequence[Hashable] | None = None,
    classification: bool = False,
    seed: int | None = None,
    dtype: torch.dtype | None = None,
) -> GroupedTasks:
    """Turn each group of a table into a task (see :class:`GroupedTasks` for the arguments).

    Examples
    --------
    >>> table = {"site": ["a", "a", "a", "b", "b", "b"], "x": [0.0, 1.0, 2.0, 0.0, 1.0, 2.0],
    ...          "y": [0.1, 1.1, 1.9, 0.0, 2.1, 3.9]}
    >>> tasks = from_dataframe(table, group="site", x="x", y="y", k_support=2, seed=0)
    >>> tasks.group_names, len(tasks.task("b").query_x)
    (['a', 'b'], 1)

    """
    return GroupedTasks(
        data,
        group=group,
        x=x,
        y=y,
        k_support=k_support,
        k_query=k_query,
        split=split,
        order_by=order_by,
        groups=groups,
        classification=classification,
        seed=seed,
        dtype=dtype,
    )


def read_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    r"""Read a CSV file with a header row into columns, numbers where every value is one.

    No pandas needed: the result is a mapping of column name to a 1-D array,
    ``float64`` for a column whose every value parses as a number and strings
    otherwise, ready for :func:`from_dataframe`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file has no header, no rows, a repeated column name, or a row
        with more or fewer fields than the header (the message names the line).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "growth.csv"
    >>> _ = path.write_text("chick,day,weight\na,0,42\na,2,51\nb,0,40\n")
    >>> table = read_csv(path)
    >>> table["chick"].tolist(), table["weight"].tolist()
    (['a', 'a', 'b'], [42.0, 51.0, 40.0])

    """
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path} has no header row")
        names = [h.strip() for h in header]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{path}: column names {repeated} appear more than once")
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue  # a blank line
            if len(row) != len(names):
                raise ValueError(
                    f"{path}, line {line}: {len(row)} fields, but the header has {len(names)}"
                )
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} has a header but no rows")
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        values = [row[i].strip() for row in rows]
        try:
            columns[name] = np.asarray([float(v) for v in values], dtype=np.float64)
        except ValueError:
            columns[name] = np.asarray(values)
    return columns
