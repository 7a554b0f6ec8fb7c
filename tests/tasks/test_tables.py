import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bayesmeta as bm
from bayesmeta.tasks import GroupedTasks, TaskSource, from_dataframe, read_csv


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


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 4),
    q=st.integers(0, 3) | st.none(),
    t=st.integers(1, 8),
    split=st.sampled_from(["random", "first"]),
    seed=st.integers(0, 2**31),
    data=st.data(),
)
def test_grouped_tasks_property(k, q, t, split, seed, data):
    """Each task holds rows of one group only, and its support and query rows are disjoint."""
    least = k + (q or 0)
    sizes = data.draw(st.lists(st.integers(least, least + 4), min_size=1, max_size=6))
    group = [10 * g for g, n in enumerate(sizes) for _ in range(n)]
    rows = list(range(len(group)))
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    # rows shuffled; "row" identifies a row, "home" its group, y a function of the row
    table = {
        "grp": [group[i] for i in order],
        "row": [float(i) for i in order],
        "home": [float(group[i]) for i in order],
        "y": [2.0 * i + 1.0 for i in order],
    }

    def make():
        return GroupedTasks(
            table,
            group="grp",
            x=["row", "home"],
            y="y",
            k_support=k,
            k_query=q,
            split=split,
            order_by="row",
            seed=seed,
        )

    src = make()
    assert sorted(src.group_names) == [10 * g for g in range(len(sizes))]
    batch = src.sample(t)
    kq = min(sizes) - k if q is None else q
    assert batch.support_x.shape == (t, k, 2) and batch.query_x.shape == (t, kq, 2)
    idx = batch.info["group_index"]
    assert idx.shape == (t,)
    if t <= len(sizes):  # without replacement while there are enough groups
        assert len(set(idx.tolist())) == t
    for i in range(t):
        name = src.group_names[int(idx[i])]
        members = {r for r in rows if group[r] == name}
        s_rows = batch.support_x[i, :, 0].long().tolist()
        q_rows = batch.query_x[i, :, 0].long().tolist()
        assert set(s_rows) <= members and set(q_rows) <= members
        assert bool((batch.support_x[i, :, 1] == name).all())
        assert len(set(s_rows + q_rows)) == k + kq  # distinct: support and query disjoint
        assert batch.support_y[i, :, 0].tolist() == [2.0 * r + 1.0 for r in s_rows]
        if split == "first":  # the earliest rows by order_by are the support set
            assert s_rows == sorted(members)[:k]
    # one group's task: its support rows, and every other row of the group as query
    name = src.group_names[0]
    task = src.task(name)
    members = {r for r in rows if group[r] == name}
    s_rows = task.support_x[:, 0].long().tolist()
    q_rows = task.query_x[:, 0].long().tolist()
    assert len(s_rows) == k and not set(s_rows) & set(q_rows)
    assert set(s_rows) | set(q_rows) == members
    # the same seed draws the same tasks
    assert torch.equal(make().sample(t).support_x, batch.support_x)


def test_read_csv_gives_numbers_where_a_column_is_all_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("site, x ,y\na,1,0.5\nb,2e1,-3\n\nc,3,nan\n")
    table = read_csv(path)
    assert list(table) == ["site", "x", "y"]  # names stripped
    assert table["site"].tolist() == ["a", "b", "c"]
    assert table["x"].dtype.kind == "f" and table["x"].tolist() == [1.0, 20.0, 3.0]
    # 'nan' parses as a number: from_dataframe then names the row that is not finite
    with pytest.raises(ValueError, match="column 'y' holds a missing or non-finite value"):
        from_dataframe(table, group="site", x="x", y="y", k_support=1)
    tasks = from_dataframe(
        {k: v[:2] for k, v in table.items()}, group="site", x="x", y="y", k_support=1
    )
    assert tasks.group_names == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no header row"),
        ("a,b\n", "has a header but no rows"),
        ("a,a\n1,2\n", "column names \\['a'\\] appear more than once"),
        ("a,b\n1,2\n3\n", "line 3: 1 fields, but the header has 2"),
    ],
)
def test_read_csv_refuses_malformed_files(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_csv(path)
    with pytest.raises(FileNotFoundError):
        read_csv(tmp_path / "missing.csv")
