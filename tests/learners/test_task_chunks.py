"""A meta-batch's tasks backpropagated in chunks: the same loss and meta-gradient."""

import math

import pytest
import torch

import bayesmeta as bm
from bayesmeta.errors import ShapeError
from bayesmeta.inference import gaussian_vi
from bayesmeta.learners import bayesian_maml_outer
from bayesmeta.learners.task_chunks import chunked_task_backward, weighted_backward
from bayesmeta.tasks import Episodes, Sinusoid, TaskBatch


def _same_noise_per_task(shape, like, generator=None):
    """Nonzero draws that do not depend on the task: so any chunk of tasks sees the same.

    ``shape`` is ``[T, P]`` or ``[S, T, P]``: the draws vary over ``S`` and ``P`` only.
    """
    s, p = (shape[0] if len(shape) == 3 else 1), shape[-1]
    base = torch.sin(torch.arange(s * p, dtype=like.dtype) * 0.7).reshape(s, 1, p)
    return base.expand(s, *shape[-2:]).reshape(shape).to(like.device)


@pytest.fixture
def fixed_noise(monkeypatch):
    monkeypatch.setattr(bayesian_maml_outer, "standard_normal", _same_noise_per_task)
    monkeypatch.setattr(gaussian_vi, "standard_normal", _same_noise_per_task)


def _grads(learner, batch):
    value = learner.meta_gradients(batch)
    return value, [p.grad.clone() for p in learner.parameters() if p.grad is not None]


def _assert_same(whole, parts, batch):
    parts.load_state_dict(whole.state_dict())
    v1, g1 = _grads(whole, batch)
    v2, g2 = _grads(parts, batch)
    assert v1 == pytest.approx(v2, rel=1e-5)
    assert len(g1) == len(g2) > 0
    for a, b in zip(g1, g2, strict=True):  # float32 sums in another order: relative to the norm
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(a.norm()) + 1e-8)
    flat1, flat2 = torch.cat([g.flatten() for g in g1]), torch.cat([g.flatten() for g in g2])
    assert float((flat1 - flat2).norm() / flat1.norm()) < 1e-5
    return v1


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("objective", ["predictive", "elbo"])
@pytest.mark.parametrize(("task_chunk", "particle_chunk"), [(1, None), (2, None), (2, 3)])
def test_bayesian_maml_regression_chunks_give_the_same_loss_and_gradient(
    objective, task_chunk, particle_chunk
):
    torch.manual_seed(0)
    kwargs = dict(inner_steps=2, num_particles=7, objective=objective, kl_weight=0.5)
    whole = bm.BayesianMAML((1, 16, 16, 1), **kwargs)
    parts = bm.BayesianMAML(
        (1, 16, 16, 1), task_chunk=task_chunk, particle_chunk=particle_chunk, **kwargs
    )
    batch = Sinusoid(5, 10, seed=3).sample(5)
    value = _assert_same(whole, parts, batch)
    # the loss is meta_loss's, and the calibration saw the whole batch once
    assert float(whole.meta_loss(batch).detach()) == pytest.approx(value, rel=1e-5)
    torch.testing.assert_close(whole.calibration.variance, parts.calibration.variance)


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("objective", ["predictive", "elbo"])
@pytest.mark.parametrize("particle_chunk", [None, 1])
def test_bayesian_maml_classification_chunks_give_the_same_loss_and_gradient(
    objective, particle_chunk
):
    x = torch.randn(60, 6)
    y = torch.arange(60) % 6
    batch = Episodes(x, y, 3, 2, 4, seed=0).sample(3)
    kwargs = dict(
        likelihood="categorical",
        inner_steps=1,
        num_particles=4,
        prior_scale=0.05,
        objective=objective,
    )
    torch.manual_seed(1)
    whole = bm.BayesianMAML((6, 8, 3), **kwargs)
    parts = bm.BayesianMAML((6, 8, 3), task_chunk=2, particle_chunk=particle_chunk, **kwargs)
    _assert_same(whole, parts, batch)


def test_bayesian_maml_delta_posterior_chunks_tasks_too():
    kwargs = dict(posterior="delta", likelihood="mse", inner_steps=2)
    torch.manual_seed(2)
    whole = bm.BayesianMAML((1, 8, 1), **kwargs)
    parts = bm.BayesianMAML((1, 8, 1), task_chunk=3, **kwargs)
    _assert_same(whole, parts, Sinusoid(5, 10, seed=4).sample(4))


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_chunks_give_the_same_loss_and_gradient(first_order):
    torch.manual_seed(3)
    whole = bm.MAML((1, 16, 1), inner_steps=2, first_order=first_order)
    parts = bm.MAML((1, 16, 1), inner_steps=2, first_order=first_order, task_chunk=2)
    _assert_same(whole, parts, Sinusoid(5, 10, seed=5).sample(5))


def test_the_units_are_fitted_on_the_whole_batch_not_its_first_chunk():
    b = Sinusoid(5, 10, seed=8).sample(4)
    scaled = TaskBatch(b.support_x * 50, b.support_y * 100, b.query_x * 50, b.query_y * 100)
    torch.manual_seed(5)
    whole = bm.MAML((1, 8, 1), inner_steps=1, standardize=True)
    parts = bm.MAML((1, 8, 1), inner_steps=1, standardize=True, task_chunk=1)
    _assert_same(whole, parts, scaled)
    torch.testing.assert_close(whole.units.state_dict(), parts.units.state_dict())


def test_a_chunked_step_trains_as_the_whole_batch_does():
    torch.manual_seed(4)
    whole = bm.MAML((1, 8, 1), inner_steps=1)
    parts = bm.MAML((1, 8, 1), inner_steps=1, task_chunk=1)
    parts.load_state_dict(whole.state_dict())
    batch = Sinusoid(5, 10, seed=6).sample(3)
    assert whole.meta_step(batch) == pytest.approx(parts.meta_step(batch), rel=1e-5)
    for a, b in zip(whole.parameters(), parts.parameters(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("learner", [bm.MAML, bm.BayesianMAML])
def test_task_chunk_is_a_checked_hyper_parameter(learner):
    assert learner((1, 4, 1), task_chunk=2).config()["task_chunk"] == 2
    assert learner((1, 4, 1)).hparams.task_chunk is None
    with pytest.raises(ValueError, match="task_chunk"):
        learner((1, 4, 1), task_chunk=0)
    with pytest.raises(TypeError, match="task_chunk"):
        learner((1, 4, 1), task_chunk=1.5)


def test_a_non_finite_chunk_stops_the_accumulation():
    batch = Sinusoid(5, 10, seed=7).sample(4)
    seen = []

    def backward(sub, weight):
        seen.append(len(sub))
        return float("nan") if len(seen) == 2 else 1.0

    assert math.isnan(chunked_task_backward(batch, 1, backward))
    assert seen == [1, 1]
    with pytest.raises(ValueError, match="task_chunk"):
        chunked_task_backward(batch, 0, backward)


def test_weighted_backward_adds_the_weighted_gradient_and_skips_a_non_finite_loss():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    assert weighted_backward((w**2).sum(), 0.25) == 5.0
    torch.testing.assert_close(w.grad, torch.tensor([0.5, 1.0]))
    assert weighted_backward(w.sum()) == 3.0  # weight 1: added to what is there
    torch.testing.assert_close(w.grad, torch.tensor([1.5, 2.0]))
    assert math.isnan(weighted_backward(w.sum() * float("nan"), 0.5))
    torch.testing.assert_close(w.grad, torch.tensor([1.5, 2.0]))
    with pytest.raises(ShapeError, match="loss must be a scalar"):
        weighted_backward(w * 2)
