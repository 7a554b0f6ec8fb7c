import math

import numpy as np
import pytest
import torch

from bayesmeta.errors import ShapeError
from bayesmeta.tasks import Task, TaskBatch, TaskPool, from_arrays


def make(k=5, q=3, d=2, o=1):
    return Task(torch.randn(k, d), torch.randn(k, o), torch.randn(q, d), torch.randn(q, o))


def test_valid_task_shapes_and_kind():
    task = make()
    assert task.kind == "regression"
    assert task.n_way is None
    assert task.support_x.shape == (5, 2)


def test_classification_task_infers_n_way():
    task = Task(
        torch.randn(6, 3),
        torch.tensor([0, 1, 2, 0, 1, 2]),
        torch.randn(3, 3),
        torch.tensor([2, 1, 0]),
    )
    assert task.kind == "classification"
    assert task.n_way == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"support_y": torch.randn(4, 1)}, r"support_y must have 5 points"),
        ({"support_x": torch.randn(5)}, r"support_x must have shape \[N, D\]"),
        (
            {"support_y": torch.randn(5)},
            r"support_y \(regression targets\) must have shape \[N, O\] = \[5, O\]",
        ),
        ({"query_x": torch.randn(3, 4)}, r"same feature shape"),
        ({"query_y": torch.randn(3, 2)}, r"same number of outputs"),
        (
            {"support_x": torch.randn(0, 2), "support_y": torch.randn(0, 1)},
            r"support_x holds no points",
        ),
        ({"support_y": torch.ones(5, 1, dtype=torch.long)}, r"integer class labels"),
    ],
)
def test_bad_shapes_raise_value_error_naming_argument(kwargs, match):
    args = {
        "support_x": torch.randn(5, 2),
        "support_y": torch.randn(5, 1),
        "query_x": torch.randn(3, 2),
        "query_y": torch.randn(3, 1),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Task(**args)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_rejected(bad):
    sx = torch.randn(5, 2)
    sx[2, 1] = bad
    with pytest.raises(ValueError, match="support_x holds 1 NaN or infinite"):
        Task(sx, torch.randn(5, 1), torch.randn(3, 2), torch.randn(3, 1))
    qy = torch.randn(3, 1)
    qy[0, 0] = bad
    with pytest.raises(ValueError, match="query_y holds 1 NaN"):
        Task(torch.randn(5, 2), torch.randn(5, 1), torch.randn(3, 2), qy)


def test_shape_errors_are_shape_error_subclass():
    with pytest.raises(ShapeError):
        Task(torch.randn(5, 2), torch.randn(4, 1), torch.randn(3, 2), torch.randn(3, 1))


def test_labels_out_of_range_rejected():
    with pytest.raises(ValueError, match=r"0\.\.n_way-1 = 0\.\.1"):
        Task(
            torch.randn(3, 2),
            torch.tensor([0, 1, 2]),
            torch.randn(1, 2),
            torch.tensor([0]),
            n_way=2,
        )


def test_non_tensor_rejected_with_hint():
    with pytest.raises(TypeError, match="from_arrays"):
        Task(np.zeros((3, 1)), torch.zeros(3, 1), torch.zeros(1, 1), torch.zeros(1, 1))


def test_batch_stack_select_and_index():
    tasks = [make() for _ in range(4)]
    batch = TaskBatch.stack(tasks)
    assert len(batch) == 4
    assert batch.support_x.shape == (4, 5, 2)
    assert torch.equal(batch[2].query_y, tasks[2].query_y)
    sub = batch.select([3, 1])
    assert torch.equal(sub.support_x[0], tasks[3].support_x)
    assert len(batch.select(slice(0, 2))) == 2


def test_batch_stack_rejects_unequal_tasks():
    with pytest.raises(ValueError, match=r"tasks\[1\]\.support_x has shape \[4, 2\]"):
        TaskBatch.stack([make(k=5), make(k=4)])
    with pytest.raises(ValueError, match="at least one task"):
        TaskBatch.stack([])


def test_batch_validation_names_task_dimension():
    with pytest.raises(ValueError, match=r"query_x must start with the task dimension \[4\]"):
        TaskBatch(
            torch.randn(4, 5, 1), torch.randn(4, 5, 1), torch.randn(3, 2, 1), torch.randn(3, 2, 1)
        )
    with pytest.raises(ValueError, match=r"info\['a'\]"):
        TaskBatch(
            torch.randn(4, 5, 1),
            torch.randn(4, 5, 1),
            torch.randn(4, 2, 1),
            torch.randn(4, 2, 1),
            info={"a": torch.zeros(3)},
        )


def test_from_arrays_converts_and_reshapes_1d():
    task = from_arrays(np.arange(4.0), np.arange(4.0) * 2, [5.0, 6.0], [10.0, 12.0])
    assert task.support_x.shape == (4, 1) and task.support_y.shape == (4, 1)
    assert task.support_x.dtype == torch.get_default_dtype()
    assert task.query_y[1, 0] == 12.0
    empty_query = from_arrays([[1.0, 2.0]], [0.5])
    assert empty_query.query_x.shape == (0, 2)


def test_from_arrays_regression_rejects_integer_targets():
    with pytest.raises(ValueError, match="regression targets must be floating"):
        from_arrays([1.0, 2.0], np.array([1, 2]))


def test_from_arrays_classification_and_batched():
    task = from_arrays(np.zeros((4, 3)), [0, 1, 0, 1], classification=True)
    assert task.kind == "classification" and task.n_way == 2
    batch = from_arrays(
        np.zeros((2, 4)), np.ones((2, 4)), np.zeros((2, 3)), np.ones((2, 3)), batched=True
    )
    assert isinstance(batch, TaskBatch) and batch.support_x.shape == (2, 4, 1)
    with pytest.raises(ValueError, match="both query_x and query_y"):
        from_arrays([1.0], [1.0], [2.0])


def test_task_pool_draws_reproducibly_without_replacement():
    batch = TaskBatch.stack([make() for _ in range(6)])
    a = TaskPool(batch, seed=3).sample(6)
    b = TaskPool(batch, seed=3).sample(6)
    assert torch.equal(a.support_x, b.support_x)
    firsts = {round(float(a.support_x[i, 0, 0]), 6) for i in range(6)}
    assert len(firsts) == 6  # every task exactly once
    assert len(TaskPool(batch, seed=0).sample(10)) == 10  # with replacement beyond the pool
