import copy
import dataclasses

import pytest
import torch

from bayesmeta import MAML, NonFiniteLossError, Reptile, Sinusoid, TaskBatch
from bayesmeta.scoring.evaluation import evaluate


def independent_meta_loss(net, batch, lr, steps, first_order=False):
    """One task at a time, with autograd(create_graph=True): the textbook MAML."""
    params = list(net.parameters())
    total = 0.0
    for t in range(len(batch)):
        fast = params
        for _ in range(steps):
            loss = ((forward(fast, batch.support_x[t]) - batch.support_y[t]) ** 2).mean()
            grads = torch.autograd.grad(loss, fast, create_graph=not first_order)
            fast = [
                p - lr * (g.detach() if first_order else g)
                for p, g in zip(fast, grads, strict=True)
            ]
        total = total + ((forward(fast, batch.query_x[t]) - batch.query_y[t]) ** 2).mean()
    return total / len(batch)


def forward(params, x):
    h = x
    n = len(params) // 2
    for i in range(n):
        h = h @ params[2 * i].T + params[2 * i + 1]
        if i < n - 1:
            h = torch.relu(h)
    return h


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_meta_gradient_matches_per_task_implementation(first_order, dtype):
    torch.manual_seed(0)
    learner = MAML((1, 40, 40, 1), inner_lr=0.01, inner_steps=5, first_order=first_order).to(dtype)
    batch = Sinusoid(10, 10, seed=3, dtype=dtype).sample(25)
    loss = learner.meta_loss(batch)
    got = torch.autograd.grad(loss, list(learner.net.parameters()))
    ref_loss = independent_meta_loss(learner.net, batch, 0.01, 5, first_order)
    want = torch.autograd.grad(ref_loss, list(learner.net.parameters()))
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(loss, ref_loss, atol=tol, rtol=tol)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=tol, rtol=1e-4 if dtype == torch.float32 else 1e-8)
    # second order really differs from first order (the test can tell them apart)
    if not first_order:
        fo = independent_meta_loss(learner.net, batch, 0.01, 5, first_order=True)
        fo_grad = torch.autograd.grad(fo, list(learner.net.parameters()))
        assert max(float((a - b).abs().max()) for a, b in zip(fo_grad, want, strict=True)) > 1e-4


def test_meta_step_returns_loss_and_updates_parameters():
    torch.manual_seed(0)
    learner = MAML((1, 20, 1), inner_steps=2)
    batch = Sinusoid(5, 5, seed=0).sample(4)
    before = copy.deepcopy(learner.state_dict())
    value = learner.meta_step(batch)
    assert value == pytest.approx(float(learner.meta_loss(batch).detach()), rel=0.2)
    assert any(not torch.equal(before[k], v) for k, v in learner.state_dict().items())


def test_meta_fit_learns_sinusoids():
    torch.manual_seed(0)
    learner = MAML((1, 40, 40, 1), inner_lr=0.01, inner_steps=3, outer_lr=3e-3)
    test = Sinusoid(5, 50, seed=99).sample(200)
    before = evaluate(learner, test).summary()["mse"][0]
    history = learner.meta_fit(
        Sinusoid(5, 10, seed=0), iterations=400, meta_batch_size=10, progress=False
    )
    after = evaluate(learner, test).summary()["mse"][0]
    assert history.iterations == 400 and len(history.loss) == 400
    assert after < 0.5 * before
    assert sum(history.loss[-50:]) < sum(history.loss[:50])


def test_learned_inner_rates_are_meta_parameters():
    learner = MAML((1, 8, 1), learn_inner_lr=True, inner_lr=0.05)
    names = dict(learner.named_parameters())
    assert any(n.startswith("inner_lrs.") for n in names)
    loss = learner.meta_loss(Sinusoid(5, 5, seed=0).sample(3))
    loss.backward()
    assert all(p.grad is not None for p in learner.inner_lrs)


def test_non_finite_loss_stops_without_update():
    learner = MAML((1, 8, 1), inner_lr=1e30, inner_steps=3)
    batch = Sinusoid(5, 5, seed=0).sample(3)
    before = copy.deepcopy(learner.state_dict())
    with pytest.raises(NonFiniteLossError, match="meta-training loss became"):
        learner.meta_step(batch)
    for k, v in learner.state_dict().items():
        assert torch.equal(before[k], v)
    with pytest.raises(NonFiniteLossError) as info:
        learner.meta_fit(Sinusoid(5, 5, seed=0), iterations=5, progress=False)
    assert info.value.history is not None


def test_adapt_single_and_batched_agree():
    torch.manual_seed(0)
    learner = MAML((1, 16, 1), inner_steps=3)
    batch = Sinusoid(5, 7, seed=2).sample(3)
    batched = learner.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
    single = learner.adapt(batch.support_x[1], batch.support_y[1]).predict(batch.query_x[1])
    assert batched.mean.shape == (3, 7, 1) and single.mean.shape == (7, 1)
    torch.testing.assert_close(batched.mean[1], single.mean)
    assert batched.noise_scale is None


def test_adapt_rejects_bad_input():
    learner = MAML((2, 8, 1))
    with pytest.raises(ValueError, match="takes 2 input feature"):
        learner.adapt(torch.randn(5, 3), torch.randn(5, 1))
    with pytest.raises(ValueError, match="support_y must have 5 points"):
        learner.adapt(torch.randn(5, 2), torch.randn(4, 1))
    with pytest.raises(ValueError, match="NaN"):
        learner.adapt(torch.full((5, 2), float("nan")), torch.randn(5, 1))
    with pytest.raises(ValueError, match="needs floating regression targets"):
        learner.adapt(torch.randn(5, 2), torch.ones(5, dtype=torch.long))
    with pytest.raises(ValueError, match="inner_lr must be positive"):
        MAML((1, 4, 1), inner_lr=-1.0)
    with pytest.raises(ValueError, match="inner_steps must be >= 0"):
        MAML((1, 4, 1), inner_steps=-1)


def test_noise_scale_fit_and_state_dict_round_trip():
    torch.manual_seed(0)
    learner = MAML((1, 16, 1), inner_steps=2)
    learner.meta_fit(Sinusoid(5, 5, seed=0), iterations=20, progress=False)
    scale = learner.fit_noise_scale(Sinusoid(5, 20, seed=1).sample(50))
    assert scale.shape == (1,) and float(scale) > 0
    task = Sinusoid(5, 9, seed=5).sample(1)[0]
    pred = learner.adapt(task.support_x, task.support_y).predict(task.query_x)
    lo, hi = pred.interval(0.9)
    assert bool((hi > lo).all())
    fresh = MAML((1, 16, 1), inner_steps=2)
    fresh.load_state_dict(learner.state_dict())
    again = fresh.adapt(task.support_x, task.support_y).predict(task.query_x)
    torch.testing.assert_close(again.mean, pred.mean)
    torch.testing.assert_close(again.noise_scale, pred.noise_scale)


def test_reptile_step_moves_towards_mean_adapted_weights():
    torch.manual_seed(0)
    learner = Reptile(
        (1, 8, 1),
        inner_lr=0.02,
        inner_steps=4,
        train_on="support",
        optimizer=lambda ps: torch.optim.SGD(ps, lr=1.0),
    )
    batch = Sinusoid(5, 5, seed=0).sample(6)
    adapted = learner.adapt(batch.support_x, batch.support_y, steps=4).params
    learner.meta_step(batch)
    for p, phi in zip(learner.net.parameters(), adapted, strict=True):
        torch.testing.assert_close(p.detach(), phi.mean(0))


def test_reptile_train_on_all_uses_query_points():
    torch.manual_seed(0)
    a = Reptile((1, 8, 1), train_on="all", optimizer=lambda ps: torch.optim.SGD(ps, lr=1.0))
    b = copy.deepcopy(a)
    with pytest.raises(AttributeError, match="frozen"):
        b.train_on = "support"
    b.hparams = dataclasses.replace(b.hparams, train_on="support")
    batch = Sinusoid(3, 6, seed=0).sample(4)
    a.meta_step(batch)
    b.meta_step(batch)
    assert not torch.equal(a.net.layers[0].weight, b.net.layers[0].weight)
    with pytest.raises(ValueError, match="train_on"):
        Reptile((1, 4, 1), train_on="query")


def test_meta_loss_needs_query_points():
    learner = MAML((1, 4, 1))
    batch = TaskBatch(
        torch.randn(2, 3, 1), torch.randn(2, 3, 1), torch.randn(2, 0, 1), torch.randn(2, 0, 1)
    )
    with pytest.raises(ValueError, match="empty query sets"):
        learner.meta_loss(batch)


def test_any_module_runs_through_the_generic_path_and_matches_mlp():
    from torch import nn

    torch.manual_seed(0)
    mlp_learner = MAML((1, 16, 16, 1), inner_steps=3)
    seq = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    with torch.no_grad():
        for p, q in zip(seq.parameters(), mlp_learner.net.parameters(), strict=True):
            p.copy_(q)
    seq_learner = MAML(seq, inner_steps=3)
    batch = Sinusoid(5, 5, seed=0).sample(4)
    a, b = mlp_learner.meta_loss(batch), seq_learner.meta_loss(batch)
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a, list(mlp_learner.net.parameters()))
    gb = torch.autograd.grad(b, list(seq_learner.net.parameters()))
    for u, v in zip(ga, gb, strict=True):
        torch.testing.assert_close(u, v)


def test_same_seeds_give_identical_training():
    def run():
        torch.manual_seed(7)
        learner = MAML((1, 8, 1), inner_steps=2)
        history = learner.meta_fit(
            Sinusoid(5, 5, seed=3), iterations=10, meta_batch_size=4, progress=False
        )
        return learner, history

    (a, ha), (b, hb) = run(), run()
    assert ha.loss == hb.loss
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
