import pytest
import torch
from torch.func import functional_call

import bayesmeta as bm
from bayesmeta.io import load_learner, save_learner
from bayesmeta.nets import Conv4, FunctionalNet
from bayesmeta.scoring.evaluation import evaluate


def test_shapes_head_and_encoder():
    net = Conv4(1, 5, hidden=8, image_size=28)
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 5)
    enc = Conv4(3, None, hidden=8, image_size=8)  # pooling rounds up: 8 -> 4 -> 2 -> 1 -> 1
    assert enc.embedding_dim == 8
    assert enc(torch.zeros(2, 3, 8, 8)).shape == (2, 8)
    assert Conv4(1, None, hidden=4, image_size=84).embedding_dim == 4 * 6 * 6


def test_bad_input_is_named():
    net = Conv4(1, 5, hidden=4, image_size=28)
    with pytest.raises(ValueError, match="images"):
        net(torch.zeros(3, 28, 28))
    with pytest.raises(ValueError, match="28x28"):
        net(torch.zeros(3, 1, 14, 14))
    with pytest.raises(ValueError, match="hidden"):
        Conv4(1, 5, hidden=0)
    with pytest.raises(ValueError, match="out_features"):
        Conv4(1, 0)


def test_batched_weights_match_a_per_task_loop():
    # Batch norm without running statistics normalises each task with its own points.
    torch.manual_seed(0)
    net = Conv4(1, 3, hidden=4, image_size=8)
    fnet = FunctionalNet(net)
    params = tuple(p.detach() + 0.1 * torch.randn(4, *p.shape) for p in fnet.params())
    x = torch.randn(4, 6, 1, 8, 8)
    out = fnet(params, x)
    for t in range(4):
        weights = dict(zip(fnet.names, (p[t] for p in params), strict=True))
        assert torch.allclose(out[t], functional_call(net, weights, (x[t],)), atol=1e-5)


def _image_tasks(num_tasks, shots, queries, seed):
    # 3-way tasks on 8x8 images: each class lights up one fixed 4x4 quadrant (plus noise);
    # classes are relabelled at random per task, so only adaptation can tell them apart.
    g = torch.Generator().manual_seed(seed)
    patterns = torch.zeros(4, 8, 8)
    patterns[0, :4, :4] = patterns[1, :4, 4:] = patterns[2, 4:, :4] = patterns[3, 4:, 4:] = 1

    def draw(n, cls):
        x = patterns[cls].unsqueeze(-3).repeat_interleave(n, -4)
        return x + 0.3 * torch.randn(x.shape, generator=g)

    cls = torch.stack([torch.randperm(4, generator=g)[:3] for _ in range(num_tasks)])
    sy = torch.arange(3).repeat_interleave(shots).expand(num_tasks, -1).contiguous()
    qy = torch.arange(3).repeat_interleave(queries).expand(num_tasks, -1).contiguous()
    sx = torch.stack([draw(shots, c).reshape(-1, 1, 8, 8) for c in cls])
    qx = torch.stack([draw(queries, c).reshape(-1, 1, 8, 8) for c in cls])
    return bm.TaskBatch(sx, sy, qx, qy, n_way=3)


class _Source:
    def __init__(self, seed):
        self.seed = seed

    def sample(self, num_tasks, *, generator=None):
        self.seed += 1
        return _image_tasks(num_tasks, 2, 4, self.seed)


@pytest.mark.parametrize(
    "make",
    [
        lambda net: bm.MAML(net, inner_lr=0.5, inner_steps=1, loss="cross_entropy", outer_lr=0.01),
        lambda net: bm.MAML(
            net, inner_lr=0.5, inner_steps=1, loss="cross_entropy", first_order=True, outer_lr=0.01
        ),
        lambda net: bm.Reptile(
            net, inner_lr=0.1, inner_steps=3, loss="cross_entropy", outer_lr=0.01
        ),
        lambda net: bm.BayesianMAML(
            net,
            likelihood="categorical",
            inner_lr=2.0,
            inner_steps=1,
            prior_scale=0.03,
            kl_weight=0.01,  # tempered: a few labels cannot outweigh a prior on every weight
            outer_lr=0.01,
        ),
    ],
    ids=["maml", "fomaml", "reptile", "bayesian_maml"],
)
def test_gradient_learners_learn_few_shot_image_classification(make):
    torch.manual_seed(0)
    learner = make(Conv4(1, 3, hidden=8, image_size=8))
    test = _image_tasks(40, 2, 5, seed=999)
    before = evaluate(learner, test).summary()["accuracy"][0]
    learner.meta_fit(_Source(0), iterations=40, meta_batch_size=8, progress=False)
    result = evaluate(learner, test)
    after = result.summary()["accuracy"][0]
    assert after > 0.75 and after > before + 0.1, (before, after)
    assert set(result.per_task) == {"accuracy", "nll", "brier"}
    assert 0.0 <= result.pooled["ece"][0] <= 1.0
    assert result.reliability is not None and int(result.reliability.count.sum()) == 40 * 15
    pred = learner.adapt(test.support_x[0], test.support_y[0]).predict(test.query_x[0])
    assert isinstance(pred, bm.ClassPrediction) and pred.probs.shape == (15, 3)


def test_bayesian_maml_class_predictions_carry_epistemic_uncertainty():
    torch.manual_seed(0)
    learner = bm.BayesianMAML(
        Conv4(1, 3, hidden=4, image_size=8), likelihood="categorical", prior_scale=0.3
    )
    batch = _image_tasks(2, 2, 3, seed=0)
    pred = learner.adapt(batch.support_x, batch.support_y).predict(batch.query_x, num_samples=16)
    assert isinstance(pred, bm.ClassPrediction) and pred.num_samples == 16
    assert bool((pred.epistemic_entropy > 0).all())


def test_conv4_learners_round_trip_through_checkpoints(tmp_path):
    learner = bm.MAML(Conv4(1, 3, hidden=4, image_size=8), loss="cross_entropy")
    path = save_learner(learner, tmp_path / "m.safetensors")
    loaded = load_learner(path)
    assert isinstance(loaded.net, Conv4) and loaded.net.hidden == 4
    for a, b in zip(learner.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("make", [bm.ProtoNet, bm.BayesianProtoNet, bm.MatchingNet])
def test_metric_learners_on_conv4_round_trip_through_checkpoints(tmp_path, make):
    learner = make(Conv4(1, None, hidden=4, image_size=8))
    batch = _image_tasks(2, 2, 3, seed=0)
    learner.meta_step(batch)
    loaded = load_learner(save_learner(learner, tmp_path / "m.safetensors"))
    assert type(loaded) is type(learner)
    for a, b in zip(learner.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    before = learner.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
    after = loaded.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
    assert torch.allclose(before.probs, after.probs, atol=1e-6)


def test_chunked_vmap_equals_one_call_in_value_and_gradient():
    torch.manual_seed(0)
    fnet = FunctionalNet(Conv4(1, 3, hidden=4, image_size=8))
    params = tuple(
        (p.detach() + 0.1 * torch.randn(5, *p.shape)).requires_grad_() for p in fnet.params()
    )
    x = torch.randn(5, 6, 1, 8, 8)
    results = []
    for limit in (None, 12):  # all five tasks at once; two tasks per call
        fnet.cpu_points_per_call = limit
        out = fnet(params, x)
        results.append((out, torch.autograd.grad(out.pow(2).sum(), params)))
    (a, ga), (b, gb) = results
    assert torch.allclose(a, b, atol=1e-5)
    for u, v in zip(ga, gb, strict=True):
        assert torch.allclose(u, v, atol=1e-4)
