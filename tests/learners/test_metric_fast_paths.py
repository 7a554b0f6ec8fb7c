"""The metric learners' faster computations equal the routes they replace (issue 18 item 5).

Each fast piece is checked against the plain formula it stands for, values and gradients:
the distances by ``cdist``, ProtoNet's shift-free scores, the indicators made by a scatter,
the one-reduction finiteness and NaN checks, the cheaper eval-mode switch and the
single-call embedding.
"""

import math

import pytest
import torch
from torch import nn
from torch.nn.functional import one_hot

from bayesmeta import BayesianProtoNet, ClassPrediction, MatchingNet, ProtoNet
from bayesmeta._checks import check_tensor
from bayesmeta.learners.episodes import class_indicators, squared_distances
from tests.learners.metric_data import Blobs, unequal_batch


def written_out(a, b):
    """``||a||^2 - 2 a.b + ||b||^2``: the distances as they were computed before."""
    a2 = a.pow(2).sum(-1).unsqueeze(-1)
    b2 = b.pow(2).sum(-1).unsqueeze(-2)
    return a2 - 2.0 * (a @ b.transpose(-1, -2)) + b2


@pytest.mark.parametrize("shape", [((2, 7, 4), (2, 3, 4)), ((1, 40, 16), (1, 5, 16))])
def test_squared_distances_equal_the_written_out_formula_values_and_gradients(shape):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(*shape[0], generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(*shape[1], generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(shape[0][0], shape[0][1], shape[1][1], generator=g, dtype=torch.float64)
    fast, slow = squared_distances(a, b), written_out(a, b)
    torch.testing.assert_close(fast, slow)
    grads_fast = torch.autograd.grad((w * fast).sum(), (a, b))
    grads_slow = torch.autograd.grad((w * slow).sum(), (a, b))
    for f, s in zip(grads_fast, grads_slow, strict=True):
        torch.testing.assert_close(f, s)


def test_protonet_log_probs_equal_log_softmax_of_minus_squared_distances():
    torch.manual_seed(0)
    learner = ProtoNet((6, 16, 8)).double()
    batch = Blobs(n_way=3, k_shot=2, n_query=5, dtype=torch.float64).sample(4)
    zs, zq = learner.embed(batch.support_x, batch.query_x)
    protos = learner._context(learner._episode(zs, batch.support_y, 3))
    fast = learner._log_probs(protos, zq)
    slow = torch.log_softmax(-written_out(zq, protos), dim=-1)
    torch.testing.assert_close(fast, slow)
    w = torch.randn_like(fast)
    params = list(learner.parameters())
    grads_fast = torch.autograd.grad((w * fast).sum(), params)
    zs, zq = learner.embed(batch.support_x, batch.query_x)
    protos = learner._context(learner._episode(zs, batch.support_y, 3))
    slow = torch.log_softmax(-written_out(zq, protos), dim=-1)
    grads_slow = torch.autograd.grad((w * slow).sum(), params)
    for f, s in zip(grads_fast, grads_slow, strict=True):
        torch.testing.assert_close(f, s)


def test_protonet_meta_loss_is_the_query_cross_entropy_of_the_logits():
    torch.manual_seed(1)
    learner = ProtoNet((6, 16, 8)).double()
    batch = Blobs(n_way=3, k_shot=2, n_query=5, dtype=torch.float64).sample(3)
    zs, zq = learner.embed(batch.support_x, batch.query_x)
    logits = learner.logits(learner._context(learner._episode(zs, batch.support_y, 3)), zq)
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), batch.query_y.reshape(-1))
    torch.testing.assert_close(learner.meta_loss(batch), want)


def test_class_indicators_equal_one_hot_in_the_asked_dtype():
    y = torch.tensor([[0, 2, 1, 2], [1, 1, 0, 2]])
    onehot, counts = class_indicators(y, 3, torch.float32)
    assert onehot.dtype == counts.dtype == torch.float32
    torch.testing.assert_close(onehot, one_hot(y, 3).float())
    torch.testing.assert_close(counts, one_hot(y, 3).sum(-2).float())
    onehot, _ = class_indicators(y, 3)
    assert onehot.dtype == torch.long
    with pytest.raises(ValueError, match="got labels from 0 to 2; relabel"):
        class_indicators(y, 2)
    with pytest.raises(ValueError, match="task 1's support set has no example of class 2"):
        class_indicators(torch.tensor([[0, 2, 1, 2], [1, 1, 0, 0]]), 3)


def test_finiteness_check_accepts_finite_values_whose_sum_overflows():
    big = torch.full((3,), 3e38)  # finite float32 values whose sum is inf
    assert math.isinf(float(big.sum()))
    assert check_tensor("x", big) is big
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.zeros(5)
        x[2] = bad
        with pytest.raises(ValueError, match="x holds 1 NaN or infinite value"):
            check_tensor("x", x)
    inf_and_nan = torch.tensor([float("inf"), -float("inf"), float("nan")])
    with pytest.raises(ValueError, match="holds 3 NaN or infinite"):
        check_tensor("x", inf_and_nan)


def test_class_prediction_takes_minus_infinity_and_refuses_nan():
    lp = torch.log(torch.tensor([[[1.0, 0.0], [0.5, 0.5]]]))  # a -inf log-probability
    assert ClassPrediction(lp).probs[0, 1].item() == 0.0
    with pytest.raises(ValueError, match="contains NaN"):
        ClassPrediction(torch.tensor([[[float("nan"), 0.0]]]))
    with pytest.raises(ValueError, match="contains NaN"):  # NaN beside +inf and -inf
        ClassPrediction(torch.tensor([[[float("nan"), float("inf"), -float("inf")]]]))


class _Tracked(nn.Module):
    """A layer that records each train() call, as a module with its own train() may need."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 4)
        self.calls: list[bool] = []

    def train(self, mode=True):
        self.calls.append(mode)
        return super().train(mode)

    def forward(self, x):
        return self.lin(x)


def test_evaluating_switches_only_training_modules_and_restores_them():
    learner = ProtoNet(nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 4)))
    learner.net[2].eval()  # one module already in eval mode stays there
    before = {name: m.training for name, m in learner.named_modules()}
    with learner.evaluating():
        assert not any(m.training for m in learner.modules())
        assert not torch.is_grad_enabled()
    assert {name: m.training for name, m in learner.named_modules()} == before
    tracked = _Tracked()
    learner = ProtoNet(nn.Sequential(tracked))
    with learner.evaluating():
        assert not tracked.training
    assert tracked.calls == [False] and tracked.training


def test_matching_net_single_call_embedding_equals_chunked_calls():
    torch.manual_seed(2)
    learner = MatchingNet((6, 16, 8)).double()
    batch = Blobs(n_way=3, k_shot=2, n_query=5, dtype=torch.float64).sample(6)
    one = learner.embed(batch.support_x, batch.query_x)
    learner.cpu_points_per_call = 2 * (6 + 5)  # two tasks per encoder call
    chunked = learner.embed(batch.support_x, batch.query_x)
    for a, b in zip(one, chunked, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("prior_mean", ["episode", "zero"])
def test_bayesian_protonet_posterior_and_predictive_equal_the_written_out_formulas(prior_mean):
    torch.manual_seed(3)
    learner = BayesianProtoNet((4, 16, 8), prior_mean=prior_mean, prior_scale=0.7, obs_scale=1.3)
    learner = learner.double()
    batch = unequal_batch(t=3)  # unequal class counts, so the variances differ by class
    zs, zq = learner.embed(batch.support_x, batch.query_x)
    episode = learner._episode(zs, batch.support_y, 3)
    post = learner._context(episode)
    fast = learner._log_probs(post, zq)

    # The conjugate update and the Normal predictive as first written.
    sums = episode.onehot.transpose(-1, -2) @ episode.z
    counts = episode.counts
    m0 = (sums / counts.unsqueeze(-1)).mean(-2)
    if prior_mean == "zero":
        m0 = torch.zeros_like(m0)
    prior_prec = torch.exp(-2.0 * learner.log_prior_scale)
    obs_var = torch.exp(2.0 * learner.log_obs_scale)
    var = 1.0 / (prior_prec + counts / obs_var)
    mean = var.unsqueeze(-1) * (m0.unsqueeze(-2) * prior_prec + sums / obs_var)
    s2 = (var + obs_var).unsqueeze(-2)
    logits = -0.5 * zq.shape[-1] * s2.log() - written_out(zq, mean) / (2.0 * s2)
    slow = torch.log_softmax(logits, dim=-1)

    torch.testing.assert_close(post.mean, mean)
    torch.testing.assert_close(post.var, var)
    torch.testing.assert_close(post.prior_mean, m0)
    torch.testing.assert_close(fast, slow)
    w = torch.randn_like(fast)
    params = list(learner.parameters())
    grads_fast = torch.autograd.grad((w * fast).sum(), params, retain_graph=True)
    grads_slow = torch.autograd.grad((w * slow).sum(), params)
    for f, s in zip(grads_fast, grads_slow, strict=True):
        torch.testing.assert_close(f, s)
