import pandas as pd
import pytest
import torch

import bayesmeta as bm
from bayesmeta.tasks import GroupedTasks, TaskSource, from_dataframe


def growth_table():
    # Three subjects measured at increasing times, rows deliberately out of time order.
    rows = []
    for subject, (start, rate, n) in {
        "s1": (40, 8, 6),
        "s2": (42, 5, 5),
        "s3": (39, 10, 7),
    }.items():
        for t in reversed(range(n)):
            rows.append({"subject": subject, "time": t, "diet": t % 2, "weight": start + rate * t})
    return pd.DataFrame(rows)


def test_first_split_takes_the_earliest_rows_by_order_by():
    tasks = from_dataframe(
        growth_table(),
        group="subject",
        x="time",
        y="weight",
        k_support=2,
        split="first",
        order_by="time",
    )
    assert tasks.group_names == ["s1", "s2", "s3"] and len(tasks) == 3
    task = tasks.task("s3")
    assert task.support_x[:, 0].tolist() == [0.0, 1.0]
    assert task.query_x[:, 0].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]  # every other row
    assert task.query_y[:, 0].tolist() == [39.0 + 10 * t for t in range(2, 7)]
    batch = tasks.sample(3)
    # k_query defaults to what the smallest group (5 rows) leaves: 3.
    assert batch.support_x.shape == (3, 2, 1) and batch.query_y.shape == (3, 3, 1)
    assert bool((batch.support_x[:, :, 0] == torch.tensor([0.0, 1.0])).all())


def test_random_split_is_reproducible_and_varies_between_draws():
    def draw(seed):
        src = from_dataframe(
            growth_table(),
            group="subject",
            x=["time", "diet"],
            y="weight",
            k_support=3,
            k_query=2,
            seed=seed,
        )
        return src, src.sample(2)

    src, a = draw(0)
    _, b = draw(0)
    assert torch.equal(a.support_x, b.support_x) and a.support_x.shape == (2, 3, 2)
    assert isinstance(src, TaskSource)
    later = [src.sample(3).support_x for _ in range(5)]
    assert any(not torch.equal(later[0], other) for other in later[1:])
    # Support and query rows of a task never overlap (times are distinct within a subject).
    for t in range(2):
        s, q = set(a.support_x[t, :, 0].tolist()), set(a.query_x[t, :, 0].tolist())
        assert not s & q


def test_groups_restrict_the_tasks_and_learners_meta_train_on_them():
    src = GroupedTasks(
        growth_table(),
        group="subject",
        x="time",
        y="weight",
        k_support=2,
        groups=["s1", "s3"],
        seed=0,
    )
    assert src.group_names == ["s1", "s3"]
    learner = bm.MAML((1, 8, 1), inner_lr=0.001, inner_steps=1)
    history = learner.meta_fit(src, iterations=3, meta_batch_size=2, progress=False)
    assert len(history.loss) == 3


def test_mapping_input_and_classification_labels():
    table = {"g": [0, 0, 0, 1, 1, 1], "x": [0.0, 1, 2, 3, 4, 5], "label": [0, 1, 2, 0, 1, 1]}
    src = from_dataframe(table, group="g", x="x", y="label", k_support=2, classification=True)
    batch = src.sample(2)
    assert batch.kind == "classification" and batch.n_way == 3
    assert batch.support_y.dtype == torch.long


def test_errors_name_the_column_or_the_group():
    df = growth_table()
    with pytest.raises(KeyError, match=r"no column 'height'.*'weight'"):
        from_dataframe(df, group="subject", x="time", y="height", k_support=2)
    with pytest.raises(ValueError, match="group 's2' has 5 row"):
        from_dataframe(df, group="subject", x="time", y="weight", k_support=4, k_query=2)
    with pytest.raises(ValueError, match="split must be"):
        from_dataframe(df, group="subject", x="time", y="weight", k_support=2, split="last")
    with pytest.raises(ValueError, match="do not occur"):
        from_dataframe(df, group="subject", x="time", y="weight", k_support=2, groups=["s9"])
    bad = df.copy()
    bad.loc[3, "weight"] = float("nan")
    with pytest.raises(ValueError, match="'weight' holds a missing"):
        from_dataframe(bad, group="subject", x="time", y="weight", k_support=2)
    with pytest.raises(bm.ShapeError, match="'subject' must hold numbers"):
        from_dataframe(df, group="time", x="subject", y="weight", k_support=1)
    with pytest.raises(TypeError, match="DataFrame or a mapping"):
        from_dataframe([1, 2], group="a", x="b", y="c", k_support=1)
    with pytest.raises(KeyError, match="no group"):
        from_dataframe(df, group="subject", x="time", y="weight", k_support=2).task("s9")
