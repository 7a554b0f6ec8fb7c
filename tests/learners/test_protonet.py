import json
import math

import pytest
import torch
from torch import nn

import bayesmeta as bm
from bayesmeta import BayesianProtoNet, ProtoNet, ShapeError, TaskBatch
from bayesmeta.learners.prototype_posterior import sample_log_probs
from bayesmeta.nets import MLP
from bayesmeta.scoring.metrics import accuracy
from tests.learners.metric_data import Blobs, encoder, unequal_batch


def identity_encoder(dim=2, dtype=torch.float64):
    lin = nn.Linear(dim, dim).to(dtype)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(dim))
        lin.bias.zero_()
    return lin


def loop_protonet_loss(enc, batch, distance="sqeuclidean", scale=10.0):
    total = 0.0
    for t in range(len(batch)):
        zs, zq = enc(batch.support_x[t]), enc(batch.query_x[t])
        y = batch.support_y[t]
        protos = torch.stack([zs[y == c].mean(0) for c in range(batch.n_way)])
        if distance == "cosine":
            cos = torch.nn.functional.cosine_similarity(zq[:, None], protos[None], dim=-1)
            logits = scale * cos
        else:
            logits = -((zq[:, None] - protos[None]) ** 2).sum(-1)
        total = total + torch.nn.functional.cross_entropy(logits, batch.query_y[t])
    return total / len(batch)


def loop_bayes_loss(enc, batch, tau, sigma, prior_mean="episode"):
    total = 0.0
    for t in range(len(batch)):
        zs, zq = enc(batch.support_x[t]), enc(batch.query_x[t])
        y = batch.support_y[t]
        means = torch.stack([zs[y == c].mean(0) for c in range(batch.n_way)])
        m0 = means.mean(0) if prior_mean == "episode" else torch.zeros_like(means[0])
        logits = []
        for c in range(batch.n_way):
            zc = zs[y == c]
            prec = 1 / tau**2 + len(zc) / sigma**2
            mean = (m0 / tau**2 + zc.sum(0) / sigma**2) / prec
            pred = torch.distributions.Normal(mean, (1 / prec + sigma**2) ** 0.5)
            logits.append(pred.log_prob(zq).sum(-1))
        logits = torch.stack(logits, -1)
        total = total + torch.nn.functional.cross_entropy(logits, batch.query_y[t])
    return total / len(batch)


@pytest.mark.parametrize("distance", ["sqeuclidean", "cosine"])
def test_protonet_meta_loss_and_gradient_match_per_task_loop(distance):
    batch = unequal_batch()
    learner = ProtoNet(encoder(), distance=distance).double()
    loss = learner.meta_loss(batch)
    scale = float(learner.log_scale.detach().exp()) if distance == "cosine" else None
    want = loop_protonet_loss(learner.net, batch, distance, scale)
    torch.testing.assert_close(loss, want, rtol=1e-10, atol=1e-10)
    params = list(learner.net.parameters())
    got = torch.autograd.grad(loss, params)
    ref = torch.autograd.grad(want, params)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("prior_mean", ["episode", "zero"])
def test_bayesian_meta_loss_matches_per_task_loop(prior_mean):
    batch = unequal_batch()
    learner = BayesianProtoNet(
        encoder(), prior_scale=0.7, obs_scale=1.3, prior_mean=prior_mean
    ).double()
    loss = learner.meta_loss(batch)
    want = loop_bayes_loss(learner.net, batch, 0.7, 1.3, prior_mean)
    torch.testing.assert_close(loss, want, rtol=1e-10, atol=1e-10)


def finite_difference_check(learner, batch, eps=1e-6):
    params = [p for p in learner.parameters() if p.requires_grad]
    grads = torch.autograd.grad(learner.meta_loss(batch), params)
    for p, g in zip(params, grads, strict=True):
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + eps
            up = float(learner.meta_loss(batch).detach())
            flat[i] = old - eps
            down = float(learner.meta_loss(batch).detach())
            flat[i] = old
            assert g.view(-1)[i].item() == pytest.approx((up - down) / (2 * eps), abs=1e-7)


@pytest.mark.parametrize("cls", [ProtoNet, BayesianProtoNet])
def test_gradient_matches_finite_differences(cls):
    torch.manual_seed(1)
    batch = unequal_batch(t=2)
    learner = cls(nn.Linear(4, 2).double()).double()
    finite_difference_check(learner, batch)


@pytest.mark.parametrize("cls", [ProtoNet, BayesianProtoNet])
def test_meta_fit_learns_to_find_the_signal(cls):
    torch.manual_seed(0)
    learner = cls(nn.Linear(6, 2), outer_lr=0.05)
    test = Blobs(seed=123).sample(100)

    def acc():
        pred = learner.adapt(test.support_x, test.support_y).predict(test.query_x)
        return float(accuracy(pred, test.query_y).mean())

    before = acc()
    history = learner.meta_fit(Blobs(seed=0), iterations=150, meta_batch_size=8, progress=False)
    after = acc()
    assert history.iterations == 150
    assert sum(history.loss[-20:]) < sum(history.loss[:20])
    assert after > 0.8 and after > before + 0.2, (before, after)


def test_posterior_known_answer_against_joint_gaussian_conditioning():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 2, 0, 1, 2])
    learner = BayesianProtoNet(nn.Linear(3, 3), prior_scale=0.8, obs_scale=0.5).double()
    post = learner.posterior(z, y)
    m0 = torch.stack([z[y == c].mean(0) for c in range(3)]).mean(0)
    torch.testing.assert_close(post.prior_mean, m0)
    tau, sigma = 0.8, 0.5
    for c in range(3):
        zc = z[y == c]  # [Kc, E]
        k = len(zc)
        # joint Gaussian of (mu, z_1..z_k) per coordinate, then condition on the z's
        cov_zz = tau**2 * torch.ones(k, k, dtype=torch.float64) + sigma**2 * torch.eye(k)
        cov_mz = tau**2 * torch.ones(1, k, dtype=torch.float64)
        gain = torch.linalg.solve(cov_zz, cov_mz.T).T  # [1, k]
        mean = m0 + (gain @ (zc - m0)).squeeze(0)
        var = tau**2 - float(gain @ cov_mz.T)
        torch.testing.assert_close(post.mean[c], mean)
        torch.testing.assert_close(post.var[c], torch.tensor(var, dtype=torch.float64))
    # the predictive class probabilities are normalised predictive densities
    learner.net.weight.data.copy_(torch.eye(3))
    learner.net.bias.data.zero_()
    zq = torch.randn(4, 3, generator=g, dtype=torch.float64)
    pred = learner.adapt(z, y).predict(zq)
    dens = torch.stack(
        [
            torch.distributions.MultivariateNormal(
                post.mean[c], (post.var[c] + sigma**2) * torch.eye(3, dtype=torch.float64)
            )
            .log_prob(zq)
            .exp()
            for c in range(3)
        ],
        -1,
    )
    torch.testing.assert_close(pred.probs, dens / dens.sum(-1, keepdim=True))


def test_flat_prior_limit_is_protonet_with_temperature():
    batch = Blobs(n_way=4, k_shot=3, dim=4, seed=5, dtype=torch.float64).sample(3)
    enc = encoder()
    sigma = 0.7
    proto = ProtoNet(enc).double()
    bayes = BayesianProtoNet(enc, prior_scale=1e6, obs_scale=sigma).double()
    p = proto.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
    b = bayes.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
    post = b_context = bayes.adapt(batch.support_x, batch.support_y).context
    assert b_context is not None
    protos = proto.adapt(batch.support_x, batch.support_y).context
    torch.testing.assert_close(post.mean, protos, rtol=1e-9, atol=1e-9)
    temperature = 1.0 / (2 * sigma**2 * (1 + 1 / 3))
    rescaled = torch.log_softmax(temperature * p.log_probs, -1)
    torch.testing.assert_close(b.log_probs, rescaled, rtol=1e-8, atol=1e-8)
    assert torch.equal(b.predicted, p.predicted)


def test_fewer_shots_give_less_confident_predictions():
    learner = BayesianProtoNet(identity_encoder(), prior_scale=2.0, obs_scale=1.0).double()
    centres = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.5]], dtype=torch.float64)
    offsets = torch.tensor([[0.3, 0.1], [-0.3, -0.1], [0.1, -0.2], [-0.1, 0.2]])
    offsets = offsets.to(torch.float64)

    def support(k):
        if k == 1:
            return centres, torch.arange(3)
        x = (centres[:, None] + offsets[None, :k]).reshape(-1, 2)  # class means = centres
        return x, torch.arange(3).repeat_interleave(k)

    zq = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    entropy = {}
    for k in (1, 2, 4):
        pred = learner.adapt(*support(k)).predict(zq)
        entropy[k] = pred.entropy
    assert bool((entropy[1] > entropy[2]).all() and (entropy[2] > entropy[4]).all())
    # the sampled predictive splits off an epistemic part that shrinks with the shots
    g = torch.Generator().manual_seed(1)
    epi = {
        k: learner.adapt(*support(k)).predict(zq, 2000, generator=g).epistemic_entropy.mean()
        for k in (1, 4)
    }
    assert float(epi[1]) > float(epi[4]) > 0


def test_sampled_predictive_approaches_closed_form_with_many_shots():
    learner = BayesianProtoNet(identity_encoder(), prior_scale=1.0, obs_scale=1.0).double()
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(200)
    x = torch.randn(600, 2, generator=g, dtype=torch.float64) + 2 * torch.nn.functional.one_hot(
        y, 3
    )[:, :2].to(torch.float64)
    zq = torch.randn(20, 2, generator=g, dtype=torch.float64)
    pred = learner.adapt(x, y)
    closed, sampled = pred.predict(zq), pred.predict(zq, 500, generator=g)
    assert sampled.sample_log_probs.shape == (500, 20, 3)
    assert closed.num_samples == 1
    torch.testing.assert_close(sampled.probs, closed.probs, atol=0.02, rtol=0)


def test_batched_adapt_equals_one_task_at_a_time():
    batch = unequal_batch()
    for learner in (ProtoNet(encoder()).double(), BayesianProtoNet(encoder()).double()):
        many = learner.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
        assert many.sample_log_probs.shape == (1, 4, 5, 3)
        for t in range(len(batch)):
            one = learner.adapt(batch.support_x[t], batch.support_y[t]).predict(batch.query_x[t])
            torch.testing.assert_close(one.log_probs, many.log_probs[t])


def test_errors_name_the_problem():
    learner = ProtoNet(nn.Linear(2, 2))
    x = torch.randn(6, 2)
    with pytest.raises(ShapeError, match="integer class labels"):
        learner.adapt(x, torch.zeros(6))
    with pytest.raises(ValueError, match="no example of class 1"):
        learner.adapt(x, torch.tensor([0, 0, 2, 2, 0, 2]))
    with pytest.raises(ValueError, match="no example of class 3"):
        learner.adapt(x, torch.tensor([0, 1, 2, 0, 1, 2]), n_way=4)
    with pytest.raises(ValueError, match=r"0\.\.n_way-1"):
        learner.adapt(x, torch.tensor([0, 1, 2, 0, 1, 2]), n_way=2)
    bad = x.clone()
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="support_x holds 1 NaN"):
        learner.adapt(bad, torch.tensor([0, 1, 2, 0, 1, 2]))
    pred = learner.adapt(x, torch.tensor([0, 1, 2, 0, 1, 2]))
    with pytest.raises(ValueError, match="query_x holds 1 NaN"):
        pred.predict(bad)
    with pytest.raises(ShapeError, match="query_x must have shape"):
        pred.predict(torch.randn(2, 3, 2))
    batch = Blobs(dim=2).sample(2)
    missing = TaskBatch(
        batch.support_x, torch.zeros_like(batch.support_y), batch.query_x, batch.query_y, 3
    )
    with pytest.raises(ValueError, match="task 0's support set has no example of class 1"):
        learner.meta_loss(missing)
    flat3d = ProtoNet(nn.Sequential(nn.Linear(2, 4), nn.Unflatten(1, (2, 2))))
    with pytest.raises(ShapeError, match=r"embeddings \[N, E\]"):
        flat3d.meta_loss(batch)
    with pytest.raises(ValueError, match="distance"):
        ProtoNet(nn.Linear(2, 2), distance="l1")
    with pytest.raises(ValueError, match="prior_scale"):
        BayesianProtoNet(nn.Linear(2, 2), prior_scale=-1.0)
    with pytest.raises(ValueError, match="num_samples"):
        BayesianProtoNet(nn.Linear(2, 2)).adapt(x, torch.tensor([0, 1, 2, 0, 1, 2])).predict(x, 0)


def test_integer_labels_of_any_width_are_accepted():
    learner = ProtoNet(nn.Linear(2, 2))
    x = torch.randn(6, 2)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    a = learner.adapt(x, y.to(torch.int32)).predict(x).probs
    torch.testing.assert_close(a, learner.adapt(x, y).predict(x).probs)


def test_batch_norm_with_running_stats_is_inductive_and_modes_are_restored():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    learner = ProtoNet(enc)
    learner.meta_fit(Blobs(dim=2), iterations=3, meta_batch_size=2, progress=False)
    assert learner.training and enc[1].training
    stats = enc[1].running_mean.clone()
    task = Blobs(dim=2, seed=1).sample(1)[0]
    pred = learner.adapt(task.support_x, task.support_y)
    assert pred.context is not None
    full = pred.predict(task.query_x).probs
    single = pred.predict(task.query_x[:1]).probs
    torch.testing.assert_close(single[0], full[0])
    assert learner.training and enc[1].training
    assert torch.equal(enc[1].running_mean, stats)  # test time did not update the statistics


def test_batch_norm_with_batch_statistics_embeds_support_with_queries():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4, track_running_stats=False))
    learner = BayesianProtoNet(enc)
    batch = Blobs(dim=2, seed=1).sample(2)
    pred = learner.adapt(batch.support_x, batch.support_y)
    assert pred.context is None
    out = pred.predict(batch.query_x)
    assert out.probs.shape == (2, 10, 3)
    with torch.no_grad():
        zs, zq = learner.embed(batch.support_x, batch.query_x)
        want = learner._log_probs(learner._context(learner._episode(zs, batch.support_y, 3)), zq)
    torch.testing.assert_close(out.log_probs, want)
    assert learner.training


def test_conv_encoder_with_image_inputs():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
    enc.append(nn.Flatten())
    learner = ProtoNet(enc, feature_dims=3)
    sx, qx = torch.randn(2, 6, 1, 5, 5), torch.randn(2, 4, 1, 5, 5)
    sy, qy = torch.tensor([[0, 1, 2] * 2] * 2), torch.tensor([[0, 1, 2, 0]] * 2)
    batch = TaskBatch(sx, sy, qx, qy, 3)
    assert math.isfinite(learner.meta_step(batch))
    assert learner.adapt(sx, sy).predict(qx).probs.shape == (2, 4, 3)
    assert learner.adapt(sx[0], sy[0]).predict(qx[0]).probs.shape == (4, 3)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (ProtoNet, {"distance": "cosine"}),
        (BayesianProtoNet, {"prior_scale": 2.0, "learn_scales": False, "prior_mean": "zero"}),
    ],
)
def test_config_rebuilds_the_learner(cls, kwargs):
    learner = cls((2, 8, 3), outer_lr=0.01, **kwargs)
    cfg = json.loads(json.dumps(learner.config()))
    assert cfg["learner"] == cls.__name__
    cfg.pop("learner")
    net = cfg.pop("net")
    twin = cls(MLP(net["sizes"], net["activation"]), **cfg)
    twin.load_state_dict(learner.state_dict())
    assert twin.config() == learner.config()


def test_learned_scales_move_and_fixed_scales_do_not():
    batch = Blobs(dim=2).sample(4)
    learned = BayesianProtoNet(nn.Linear(2, 2), outer_lr=0.1)
    fixed = BayesianProtoNet(nn.Linear(2, 2), outer_lr=0.1, learn_scales=False)
    for learner in (learned, fixed):
        learner.meta_step(batch)
    assert float(learned.prior_scale.detach()) != 1.0 and float(learned.obs_scale.detach()) != 1.0
    assert float(fixed.prior_scale.detach()) == 1.0 and float(fixed.obs_scale.detach()) == 1.0


def test_top_level_exports():
    assert bm.ProtoNet is ProtoNet and bm.BayesianProtoNet is BayesianProtoNet


@pytest.mark.parametrize("cls", [ProtoNet, BayesianProtoNet])
def test_conv4_encoder_reads_its_feature_dims_and_uses_batch_statistics(cls):
    from bayesmeta.nets import Conv4

    torch.manual_seed(0)
    learner = cls(Conv4(1, None, hidden=8, image_size=8))
    sx, qx = torch.randn(2, 10, 1, 8, 8), torch.randn(2, 6, 1, 8, 8)
    sy = torch.arange(5).repeat(2).expand(2, -1).clone()
    batch = TaskBatch(sx, sy, qx, torch.randint(5, (2, 6)), 5)
    assert math.isfinite(learner.meta_step(batch))
    pred = learner.adapt(sx, sy)
    assert pred.context is None  # Conv4's batch norm keeps no running statistics
    assert pred.predict(qx).probs.shape == (2, 6, 5)
    assert learner.adapt(sx[1], sy[1]).predict(qx[1]).probs.shape == (6, 5)


def test_embedding_in_chunks_of_whole_tasks_equals_one_call():
    torch.manual_seed(0)
    learner = ProtoNet(torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh()))
    xs, xq = torch.randn(7, 4, 3), torch.randn(7, 5, 3)
    learner.cpu_points_per_call = None
    whole = learner.embed(xs, xq)
    learner.cpu_points_per_call = 20  # two tasks (18 points) per call, four calls
    chunked = learner.embed(xs, xq)
    for a, b in zip(whole, chunked, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)


def _wide_one_shot(e: int = 32):
    """A 1-shot, 4-way posterior in a wide embedding, and query embeddings near the classes."""
    g = torch.Generator().manual_seed(3)
    means = 0.4 * torch.randn(4, e, generator=g, dtype=torch.float64)
    support = means + torch.randn(4, e, generator=g, dtype=torch.float64)
    labels = torch.arange(4)
    query = means.repeat(5, 1) + torch.randn(20, e, generator=g, dtype=torch.float64)
    learner = BayesianProtoNet(
        identity_encoder(e), prior_scale=1.5, obs_scale=1.0, prior_mean="zero"
    ).double()
    return learner.adapt(support, labels), query


def test_sampled_predictive_averages_to_the_closed_form_at_one_shot() -> None:
    """Drawn given the query point too, the draws' mean is the exact predictive."""
    post, query = _wide_one_shot()
    closed = post.predict(query)
    g = torch.Generator().manual_seed(0)
    sampled = post.predict(query, 20000, generator=g)
    torch.testing.assert_close(sampled.probs, closed.probs, atol=0.01, rtol=0)
    assert float(sampled.epistemic_entropy.mean()) > 0.01
    # Drawn from the support posterior alone, the average is markedly less confident.
    context, zq = post._query(query)
    plug_in = sample_log_probs(context, zq, 20000, generator=g, query_update=False).exp().mean(0)
    top = closed.probs.max(-1).values
    assert float((top - plug_in.max(-1).values).mean()) > 0.05


def test_scalar_draws_match_drawn_class_means() -> None:
    """The two-scalar form of ||z - mu||^2 has the law of drawing mu in full."""
    post, query = _wide_one_shot(e=6)
    context, zq = post._query(query)
    g = torch.Generator().manual_seed(1)
    fast = sample_log_probs(context, zq, 40000, generator=g, query_update=False).exp()
    eps = torch.randn(40000, *context.mean.shape, generator=g, dtype=torch.float64)
    mu = context.mean + context.var.sqrt().unsqueeze(-1) * eps  # [S, N, E]
    d2 = (zq.unsqueeze(0).unsqueeze(-2) - mu.unsqueeze(1)).pow(2).sum(-1)  # [S, Q, N]
    full = torch.softmax(-d2 / (2 * context.obs_var), -1)
    torch.testing.assert_close(fast.mean(0), full.mean(0), atol=0.01, rtol=0)
    torch.testing.assert_close(fast.std(0), full.std(0), atol=0.01, rtol=0)


def test_sampled_predictive_is_reproducible_and_leaves_the_global_stream() -> None:
    post, query = _wide_one_shot(e=4)
    state = torch.random.get_rng_state()
    one = post.predict(query, 50, generator=torch.Generator().manual_seed(5))
    assert torch.equal(state, torch.random.get_rng_state())
    two = post.predict(query, 50, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(one.sample_log_probs, two.sample_log_probs)
