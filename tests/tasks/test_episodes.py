import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesmeta.errors import ShapeError
from bayesmeta.tasks import Episodes, TaskBatch, TaskSource, split_classes


def make_data(counts, features=(3,), labels=None):
    """Examples whose first feature is their row index (so rows are unique)."""
    labels = labels if labels is not None else list(range(len(counts)))
    y = torch.cat([torch.full((n,), lab) for lab, n in zip(labels, counts, strict=True)])
    x = torch.randn(len(y), *features, generator=torch.Generator().manual_seed(0))
    x.view(len(y), -1)[:, 0] = torch.arange(len(y), dtype=x.dtype)
    return x, y


def check_batch(batch, source, t, n, k, q):
    assert isinstance(batch, TaskBatch)
    feat = tuple(source.x.shape[1:])
    assert batch.support_x.shape == (t, n * k, *feat)
    assert batch.query_x.shape == (t, n * q, *feat)
    assert batch.support_y.shape == (t, n * k) and batch.query_y.shape == (t, n * q)
    assert batch.support_y.dtype == torch.long and batch.query_y.dtype == torch.long
    assert batch.n_way == n
    classes = batch.info["classes"]
    assert classes.shape == (t, n)
    s_idx, q_idx = batch.info["support_index"], batch.info["query_index"]
    for i in range(t):
        # labels are exactly 0..N-1, K of each in support and q in query
        assert torch.equal(torch.bincount(batch.support_y[i], minlength=n), torch.full((n,), k))
        if q:
            assert torch.equal(torch.bincount(batch.query_y[i], minlength=n), torch.full((n,), q))
        # N distinct classes, all allowed
        assert len(set(classes[i].tolist())) == n
        assert set(classes[i].tolist()) <= set(source.classes.tolist())
        # every example sits under its class's new label, and is where the index says
        both = torch.cat([s_idx[i], q_idx[i]])
        assert len(set(both.tolist())) == n * (k + q)  # distinct, support and query disjoint
        assert torch.equal(source.labels[s_idx[i]], classes[i][batch.support_y[i]])
        assert torch.equal(source.labels[q_idx[i]], classes[i][batch.query_y[i]])
        assert torch.equal(batch.support_x[i], source.x[s_idx[i]])


def test_shapes_labels_and_disjoint_support_query():
    x, y = make_data([12] * 8, features=(1, 4, 4))
    src = Episodes(x, y, n_way=5, k_support=3, k_query=4, seed=0)
    batch = src.sample(20)
    check_batch(batch, src, 20, 5, 3, 4)
    # unique rows: the row index in the first feature is never in both sets
    s_rows = batch.support_x[:, :, 0, 0, 0]
    q_rows = batch.query_x[:, :, 0, 0, 0]
    for i in range(20):
        assert not set(s_rows[i].tolist()) & set(q_rows[i].tolist())


def test_works_as_task_source_and_accepts_numpy():
    x, y = make_data([6] * 4)
    src = Episodes(x.numpy().astype(np.float64), y.numpy() + 100, 2, 2, 1, seed=0)
    assert isinstance(src, TaskSource)
    batch = src.sample(3)
    assert batch.support_x.dtype == torch.get_default_dtype()
    assert set(batch.info["classes"].flatten().tolist()) <= {100, 101, 102, 103}
    src64 = Episodes(x, y, 2, 2, 1, seed=0, dtype=torch.float64)
    assert src64.sample(1).query_x.dtype == torch.float64


def test_noncontiguous_labels_and_random_relabelling():
    x, y = make_data([5] * 6, labels=[-3, 7, 42, 1000, 8, 9])
    src = Episodes(x, y, 3, 1, 2, seed=1)
    batch = src.sample(200)
    check_batch(batch.select(slice(0, 20)), src, 20, 3, 1, 2)
    # label 0 maps to every class, and each class gets every label
    assert set(batch.info["classes"][:, 0].tolist()) == {-3, 7, 42, 1000, 8, 9}
    assert set(torch.nonzero(batch.info["classes"] == 42)[:, 1].tolist()) == {0, 1, 2}


def test_order_is_shuffled_within_sets():
    x, y = make_data([10] * 5)
    batch = Episodes(x, y, 5, 2, 2, seed=0).sample(50)
    # not grouped by label: some episode has a support set that is not sorted
    assert any(not torch.equal(s, s.sort().values) for s in batch.support_y)
    assert any(not torch.equal(q, q.sort().values) for q in batch.query_y)


def test_examples_are_covered_uniformly():
    x, y = make_data([10, 10])
    batch = Episodes(x, y, 2, 1, 1, seed=0).sample(2000)
    counts = torch.bincount(batch.info["support_index"].flatten(), minlength=20)
    assert int(counts.min()) > 150 and int(counts.max()) < 260  # expected 200 each


def test_zero_query_gives_empty_query_set():
    x, y = make_data([3] * 4)
    batch = Episodes(x, y, 4, 3, 0, seed=0).sample(2)
    assert batch.query_x.shape == (2, 0, 3) and batch.query_y.shape == (2, 0)
    assert batch.info["query_index"].shape == (2, 0)


def test_reproducible_and_seed_dependent():
    x, y = make_data([8] * 10)
    a = Episodes(x, y, 5, 1, 3, seed=3).sample(4)
    b = Episodes(x, y, 5, 1, 3, seed=3).sample(4)
    c = Episodes(x, y, 5, 1, 3, seed=4).sample(4)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    assert not torch.equal(a.info["support_index"], c.info["support_index"])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    d = Episodes(x, y, 5, 1, 3).sample(4, generator=g1)
    e = Episodes(x, y, 5, 1, 3, seed=99).sample(4, generator=g2)
    assert torch.equal(d.info["query_index"], e.info["query_index"])


def test_classes_restricts_the_draw():
    x, y = make_data([4] * 10)
    src = Episodes(x, y, 3, 1, 1, classes=[2, 5, 7, 9], seed=0)
    assert src.num_classes == 4 and "num_classes=4" in repr(src)
    batch = src.sample(100)
    check_batch(batch.select(slice(0, 10)), src, 10, 3, 1, 1)
    assert set(batch.info["classes"].flatten().tolist()) == {2, 5, 7, 9}


def test_from_dataset_matches_arrays():
    x, y = make_data([5] * 4, features=(1, 2, 2))

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return x[i], y[i]

    a = Episodes.from_dataset(Pairs(), 2, 2, 2, seed=0).sample(3)
    b = Episodes(x, y, 2, 2, 2, seed=0).sample(3)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    pairs = [(x[i].numpy(), int(y[i])) for i in range(len(y))]
    c = Episodes.from_dataset(pairs, 2, 2, 2, seed=0).sample(3)
    assert torch.equal(c.query_x, b.query_x)


def test_from_dataset_errors():
    with pytest.raises(ValueError, match="holds no examples"):
        Episodes.from_dataset([], 2, 1, 1)
    with pytest.raises(ShapeError, match=r"dataset\[1\] has x of shape \[3\]"):
        Episodes.from_dataset([(torch.zeros(2), 0), (torch.zeros(3), 1)], 2, 1, 1)
    with pytest.raises(ValueError, match=r"dataset\[0\] has label 0.5"):
        Episodes.from_dataset([(torch.zeros(2), 0.5)], 1, 1, 0)
    with pytest.raises(ValueError, match=r"dataset\[0\] must be an \(x, label\) pair"):
        Episodes.from_dataset([torch.zeros(2)], 1, 1, 0)
    with pytest.raises(TypeError, match="map-style"):
        Episodes.from_dataset(iter([(torch.zeros(2), 0)]), 1, 1, 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_way": 20}, ValueError, "n_way=20 but only 10 classes are available"),
        ({"k_support": 0}, ValueError, "k_support must be >= 1"),
        ({"k_query": -1}, ValueError, "k_query must be >= 0"),
        ({"n_way": 2.0}, TypeError, "n_way must be an int"),
        ({"classes": [1, 99]}, ValueError, r"classes \[99\] have no examples"),
        ({"classes": [1, 1, 2]}, ValueError, "duplicate"),
        ({"classes": []}, ValueError, "classes is empty"),
        ({"classes": [0, 1], "n_way": 3}, ValueError, "n_way=3 but only 2 classes"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, match):
    x, y = make_data([6] * 10)
    args = {"n_way": 5, "k_support": 1, "k_query": 1, **kwargs}
    with pytest.raises(error, match=match):
        Episodes(x, y, **args)


def test_too_few_examples_names_class_and_count():
    x, y = make_data([20, 20, 7, 20], labels=[0, 1, 5, 3])
    with pytest.raises(ValueError, match=r"k_support \+ k_query = 5 \+ 5 = 10 .* class 5 has 7"):
        Episodes(x, y, 2, 5, 5)
    # leaving the class out works
    Episodes(x, y, 2, 5, 5, classes=[0, 1, 3])


def test_rejects_bad_data():
    x, y = make_data([4] * 3)
    with pytest.raises(ShapeError, match="x has 12 examples but labels has 11"):
        Episodes(x, y[:-1], 2, 1, 1)
    with pytest.raises(ValueError, match="whole-number class labels"):
        Episodes(x, y.float() + 0.5, 2, 1, 1)
    with pytest.raises(ValueError, match="integer class labels"):
        Episodes(x, np.array(["a", "b", "c"] * 4), 2, 1, 1)
    with pytest.raises(ShapeError, match=r"labels must be 1-D \[M\]"):
        Episodes(x, y[:, None], 2, 1, 1)
    bad = x.clone()
    bad[3, 1] = float("nan")
    bad[5, 0] = float("inf")
    with pytest.raises(ValueError, match="x holds 2 NaN or infinite"):
        Episodes(bad, y, 2, 1, 1)
    with pytest.raises(ValueError, match="hold no examples"):
        Episodes(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 2, 1, 1)
    with pytest.raises(ValueError, match="num_tasks must be >= 1"):
        Episodes(x, y, 2, 1, 1).sample(0)
    # whole-number float labels are fine; 1-D inputs become one feature
    src = Episodes(torch.arange(12.0), y.double(), 2, 1, 1, seed=0)
    assert src.sample(2).support_x.shape == (2, 2, 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=st.lists(st.integers(1, 8), min_size=1, max_size=7),
    n=st.integers(1, 8),
    k=st.integers(1, 4),
    q=st.integers(0, 4),
    t=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_sampler_property(counts, n, k, q, t, seed):
    x, y = make_data(counts, labels=[3 * i + 1 for i in range(len(counts))])
    if n > len(counts):
        with pytest.raises(ValueError, match=f"n_way={n} but only {len(counts)} classes"):
            Episodes(x, y, n, k, q, seed=seed)
        return
    if min(counts) < k + q:
        with pytest.raises(ValueError, match=f"= {k + q} distinct examples per class"):
            Episodes(x, y, n, k, q, seed=seed)
        return
    src = Episodes(x, y, n, k, q, seed=seed)
    check_batch(src.sample(t), src, t, n, k, q)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_classes=st.integers(2, 9),
    n=st.integers(1, 4),
    k=st.integers(1, 3),
    q=st.integers(0, 3),
    t=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_episodes_draw_only_the_classes_of_their_split(num_classes, n, k, q, t, seed):
    """Episodes built on one split of split_classes never show a class of another split."""
    x, y = make_data([k + q + 1] * num_classes, labels=[5 * i for i in range(num_classes)])
    train, test = split_classes(y, (num_classes - 1, 1), seed=seed)
    if n > len(train):
        with pytest.raises(ValueError, match=f"n_way={n} but only {len(train)} classes"):
            Episodes(x, y, n, k, q, classes=train, seed=seed)
        return
    src = Episodes(x, y, n, k, q, classes=train, seed=seed)
    assert set(src.classes.tolist()) == set(train.tolist())
    batch = src.sample(t)
    check_batch(batch, src, t, n, k, q)
    drawn = set(batch.info["classes"].reshape(-1).tolist())
    assert drawn <= set(train.tolist()) and not drawn & set(test.tolist())
    shown = torch.cat([batch.info["support_index"], batch.info["query_index"]], 1)
    assert not set(y[shown].reshape(-1).tolist()) & set(test.tolist())


def test_split_classes_fractions_counts_and_seed():
    labels = torch.arange(1000) % 50 * 2  # 50 classes: 0, 2, ..., 98
    train, val, test = split_classes(labels, seed=0)
    assert (len(train), len(val), len(test)) == (32, 8, 10)
    parts = [set(p.tolist()) for p in (train, val, test)]
    assert set.union(*parts) == set(range(0, 100, 2))
    assert sum(len(p) for p in parts) == 50  # disjoint
    again = split_classes(labels, seed=0)
    assert all(torch.equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    other = split_classes(labels, seed=1)
    assert not torch.equal(train, other[0])
    a, b = split_classes(labels, (20, 5), seed=0)
    assert len(a) == 20 and len(b) == 5 and not set(a.tolist()) & set(b.tolist())
    # rounding keeps every class when fractions do not divide evenly
    assert sum(len(p) for p in split_classes(torch.arange(7), (0.5, 0.25, 0.25))) == 7


@pytest.mark.parametrize(
    ("fractions", "match"),
    [
        ((0.5, 0.6), "sum to 1"),
        ((0.9, 0.1, 0.0), "positive"),
        ((8, 3), "sum to 11 but labels holds only 10 classes"),
        ((5, 0), "counts must be >= 1"),
        ((0.98, 0.01, 0.01), "leave group"),
        ((), "at least one group"),
    ],
)
def test_split_classes_errors(fractions, match):
    with pytest.raises(ValueError, match=match):
        split_classes(torch.arange(10), fractions)


def test_splits_are_disjoint_sources():
    x, y = make_data([6] * 30)
    sources = Episodes.splits(x, y, 3, 2, 2, seed=0)
    assert list(sources) == ["train", "val", "test"]
    groups = [set(s.classes.tolist()) for s in sources.values()]
    assert [len(g) for g in groups] == [19, 5, 6]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    for name, src in sources.items():
        drawn = set(src.sample(50).info["classes"].flatten().tolist())
        assert drawn <= groups[list(sources).index(name)]
    assert sources["train"].x is sources["test"].x  # converted once, shared
    assert sources["train"].seed != sources["val"].seed
    a, b = Episodes.splits(x, y, 3, 2, 2, seed=0), Episodes.splits(x, y, 3, 2, 2, seed=0)
    assert torch.equal(a["test"].sample(2).query_x, b["test"].sample(2).query_x)


def test_splits_with_explicit_classes_and_two_fractions():
    x, y = make_data([6] * 10)
    sources = Episodes.splits(x, y, 2, 1, 1, classes={"a": [0, 1, 2], "b": [7, 8]})
    assert list(sources) == ["a", "b"] and sources["b"].classes.tolist() == [7, 8]
    assert list(Episodes.splits(x, y, 2, 1, 1, fractions=(0.5, 0.5))) == ["train", "test"]
    with pytest.raises(ValueError, match=r"class 2 is in both classes\['a'\] and classes\['b'\]"):
        Episodes.splits(x, y, 2, 1, 1, classes={"a": [0, 1, 2], "b": [2, 3]})
    with pytest.raises(ValueError, match=r"'val' split \(2 classes\): n_way=3 but only 2"):
        Episodes.splits(x, y, 3, 1, 1)  # 10 classes: 6 / 2 / 2
    with pytest.raises(ValueError, match=r"2 .* or 3 .* groups, got 4"):
        Episodes.splits(x, y, 2, 1, 1, fractions=(0.25,) * 4)
