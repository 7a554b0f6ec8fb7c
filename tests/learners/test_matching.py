import json
import math

import pytest
import torch
from torch import nn

import bayesmeta as bm
from bayesmeta import MatchingNet, TaskBatch
from bayesmeta.nets import MLP
from bayesmeta.scoring.metrics import accuracy
from tests.learners.metric_data import Blobs, encoder, unequal_batch


def loop_log_probs(enc, sx, sy, qx, n_way, scale):
    """One query point and one support point at a time: the formula of the paper."""
    zs, zq = enc(sx), enc(qx)
    out = torch.zeros(len(qx), n_way, dtype=zs.dtype)
    for j in range(len(qx)):
        sims = torch.stack(
            [
                scale * torch.dot(zq[j], zs[i]) / (zq[j].norm() * zs[i].norm())
                for i in range(len(sx))
            ]
        )
        a = torch.softmax(sims, 0)
        p = [sum(a[i] for i in range(len(sx)) if sy[i] == c) for c in range(n_way)]
        out[j] = torch.log(torch.stack(p))
    return out


def test_attention_matches_explicit_loop():
    batch = unequal_batch()
    learner = MatchingNet(encoder(), scale=7.0).double()
    scale = float(learner.scale.detach())
    pred = learner.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
    for t in range(len(batch)):
        want = loop_log_probs(
            learner.net, batch.support_x[t], batch.support_y[t], batch.query_x[t], 3, scale
        )
        torch.testing.assert_close(pred.log_probs[t], want, rtol=1e-10, atol=1e-10)


def test_meta_loss_and_gradient_match_per_task_loop():
    batch = unequal_batch()
    learner = MatchingNet(encoder(), scale=7.0).double()
    loss = learner.meta_loss(batch)
    want = 0.0
    for t in range(len(batch)):
        lp = loop_log_probs(
            learner.net,
            batch.support_x[t],
            batch.support_y[t],
            batch.query_x[t],
            3,
            learner.scale,
        )
        want = want - lp.gather(-1, batch.query_y[t].unsqueeze(-1)).mean()
    want = want / len(batch)
    torch.testing.assert_close(loss, want, rtol=1e-10, atol=1e-10)
    params = [p for p in learner.parameters() if p.requires_grad]
    for a, b in zip(
        torch.autograd.grad(loss, params), torch.autograd.grad(want, params), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_log_probs_stay_finite_when_attention_is_peaked():
    learner = MatchingNet(nn.Linear(2, 2), scale=1e4, learn_scale=False)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        learner.net.weight.copy_(torch.eye(2))
        learner.net.bias.zero_()
    pred = learner.adapt(x, y).predict(x)
    assert bool(torch.isfinite(pred.log_probs).all())
    assert torch.equal(pred.predicted, y)
    batch = TaskBatch(x[None], y[None], x[None], y[None], 3)
    loss = learner.meta_loss(batch)
    grads = torch.autograd.grad(loss, list(learner.net.parameters()))
    assert all(bool(torch.isfinite(g).all()) for g in grads)


def test_full_context_is_batched_over_tasks():
    batch = unequal_batch()
    learner = MatchingNet(encoder(), full_context=True, processing_steps=3).double()
    many = learner.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
    assert many.probs.shape == (4, 5, 3)
    for t in range(len(batch)):
        one = learner.adapt(batch.support_x[t], batch.support_y[t]).predict(batch.query_x[t])
        torch.testing.assert_close(one.log_probs, many.log_probs[t])
    loss = learner.meta_loss(batch)
    loss.backward()
    for module in (learner.support_lstm, learner.query_cell):
        assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters())
    # full context changes the prediction
    plain = MatchingNet(encoder(), scale=10.0).double()
    other = plain.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
    assert not torch.allclose(other.probs, many.probs)


@pytest.mark.parametrize("full_context", [False, True])
def test_meta_fit_learns_to_find_the_signal(full_context):
    torch.manual_seed(0)
    learner = MatchingNet(nn.Linear(6, 4), full_context=full_context, outer_lr=0.03)
    test = Blobs(seed=123).sample(100)

    def acc():
        pred = learner.adapt(test.support_x, test.support_y).predict(test.query_x)
        return float(accuracy(pred, test.query_y).mean())

    before = acc()
    history = learner.meta_fit(Blobs(seed=0), iterations=150, meta_batch_size=8, progress=False)
    after = acc()
    assert history.iterations == 150
    assert sum(history.loss[-20:]) < sum(history.loss[:20])
    assert after > 0.75 and after > before + 0.2, (before, after)


def test_errors():
    with pytest.raises(ValueError, match="embedding_dim"):
        MatchingNet(nn.Sequential(nn.LayerNorm(2), nn.Tanh()), full_context=True)
    learner = MatchingNet(nn.Sequential(nn.Linear(2, 3)), full_context=True, embedding_dim=4)
    with pytest.raises(ValueError, match="3 features but embedding_dim = 4"):
        learner.adapt(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="processing_steps"):
        MatchingNet(nn.Linear(2, 2), processing_steps=0)
    learner = MatchingNet(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no example of class 2"):
        learner.adapt(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), n_way=3)
    bad = torch.randn(4, 2)
    bad[1, 1] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        learner.adapt(bad, torch.tensor([0, 1, 0, 1]))
    with pytest.raises(bm.ShapeError, match="integer class labels"):
        learner.adapt(torch.randn(4, 2), torch.tensor([0.0, 1.0, 0.0, 1.0]))


def test_config_rebuilds_the_learner():
    learner = MatchingNet((2, 8, 3), full_context=True, processing_steps=2, scale=5.0)
    cfg = json.loads(json.dumps(learner.config()))
    # embedding_dim is recorded as given (None): the rebuilt encoder gives it again
    assert cfg["learner"] == "MatchingNet" and cfg["embedding_dim"] is None
    cfg.pop("learner")
    net = cfg.pop("net")
    twin = MatchingNet(MLP(net["sizes"], net["activation"]), **cfg)
    assert twin.embedding_dim == learner.embedding_dim == 3
    twin.load_state_dict(learner.state_dict())
    assert twin.config() == learner.config()
    x, y = torch.randn(6, 2), torch.tensor([0, 1, 2] * 2)
    torch.testing.assert_close(
        twin.adapt(x, y).predict(x).probs, learner.adapt(x, y).predict(x).probs
    )


def test_top_level_export():
    assert bm.MatchingNet is MatchingNet


def test_full_context_with_conv4_reads_its_embedding_dim():
    from bayesmeta.nets import Conv4

    torch.manual_seed(0)
    learner = MatchingNet(Conv4(1, None, hidden=8, image_size=8), full_context=True)
    assert learner.embedding_dim == 8
    sx, qx = torch.randn(2, 10, 1, 8, 8), torch.randn(2, 6, 1, 8, 8)
    sy = torch.arange(5).repeat(2).expand(2, -1).clone()
    batch = TaskBatch(sx, sy, qx, torch.randint(5, (2, 6)), 5)
    assert math.isfinite(learner.meta_step(batch))
    assert learner.adapt(sx, sy).predict(qx).probs.shape == (2, 6, 5)
