"""Model-based transfer: the transfer prior with SVI, Laplace, L2-SP and fine-tuning."""

import math

import pytest
import torch
from torch import nn

import bayesmeta as bm
from bayesmeta.errors import ShapeError
from bayesmeta.learners import AdaptedPredictor
from bayesmeta.nets import MLP
from bayesmeta.posteriors import GaussianTaskPosterior
from bayesmeta.transfer import LaplacePosterior, TransferLearner
from bayesmeta.transfer.fitting import fit_transfer
from bayesmeta.transfer.laplace import group_grams, jacobians, linearised_evidence


def linear_net(d: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(d, 1)


def regression_data(t: int, k: int, d: int = 3, noise: float = 0.3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(t, d, 1, generator=g)
    x = torch.randn(t, k, d, generator=g)
    y = x @ w + noise * torch.randn(t, k, 1, generator=g)
    return x, y


def bayes_linear_posterior(x, y, mu, prior_sd, noise_sd):
    """Closed-form posterior of y = x w + b with w, b ~ N(mu, prior_sd^2), in float64."""
    phi = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1).double()
    precision = (
        torch.eye(phi.shape[1], dtype=torch.float64) / prior_sd**2 + phi.T @ phi / noise_sd**2
    )
    cov = torch.linalg.inv(precision)
    mean = cov @ (mu.double() / prior_sd**2 + phi.T @ y.double()[:, 0] / noise_sd**2)
    return mean, cov


def test_map_is_the_ridge_solution_towards_the_source_weights():
    """L2-SP on a linear model is ridge regression shrunk towards the source weights."""
    net = linear_net()
    x, y = regression_data(1, 8)
    learner = TransferLearner(
        net, method="map", prior_scale=0.5, noise_scale=0.3, learn_noise=False, steps=3000, lr=0.05
    )
    fit = learner.adapt(x[0], y[0])
    assert isinstance(fit, AdaptedPredictor)
    mu = learner.centre  # [weight (3), bias (1)]
    mean, _ = bayes_linear_posterior(x[0], y[0], mu, 0.5, 0.3)
    torch.testing.assert_close(fit.flat().double(), mean, atol=2e-3, rtol=0)


def test_svi_recovers_the_conjugate_posterior():
    """With a linear network the mean-field family holds the marginals' means exactly."""
    net = linear_net()
    x, y = regression_data(1, 10)
    learner = TransferLearner(
        net,
        prior_scale=0.5,
        noise_scale=0.3,
        learn_noise=False,
        steps=3000,
        lr=0.02,
        num_particles=16,
    )
    post = learner.adapt(x[0], y[0])
    assert isinstance(post, GaussianTaskPosterior)
    mean, cov = bayes_linear_posterior(x[0], y[0], learner.centre, 0.5, 0.3)
    torch.testing.assert_close(post.loc.double(), mean, atol=0.03, rtol=0)
    # mean-field VI matches the diagonal of the precision: s^2 = 1 / Lambda_ii
    exact = 1.0 / torch.linalg.inv(cov).diagonal().sqrt()
    torch.testing.assert_close(post.scale.double(), exact, rtol=0.15, atol=0)


def test_laplace_is_exact_for_a_linear_network():
    """For a linear model the linearised Laplace predictive is the exact posterior predictive."""
    net = linear_net()
    x, y = regression_data(1, 6)
    learner = TransferLearner(
        net,
        method="laplace",
        prior_scale=0.5,
        noise_scale=0.3,
        learn_noise=False,
        steps=3000,
        lr=0.05,
    )
    post = learner.adapt(x[0], y[0])
    assert isinstance(post, LaplacePosterior)
    xq = torch.randn(5, 3)
    mean, cov = post.mean_cov(xq)
    m, c = bayes_linear_posterior(x[0], y[0], learner.centre, 0.5, 0.3)
    phi_q = torch.cat([xq, torch.ones(5, 1)], 1).double()
    torch.testing.assert_close(mean[:, 0].double(), phi_q @ m, atol=2e-3, rtol=0)
    torch.testing.assert_close(cov.double(), phi_q @ c @ phi_q.T, atol=1e-5, rtol=1e-4)
    pred = post.predict(xq, num_samples=4000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        pred.epistemic_std.pow(2).double()[:, 0], (phi_q @ c @ phi_q.T).diagonal(), rtol=0.1, atol=0
    )


def test_linearised_evidence_matches_a_gaussian_marginal_likelihood():
    torch.manual_seed(1)
    net = MLP((2, 5, 1))
    fnet = bm.nets.FunctionalNet(net)
    theta = fnet.flatten(fnet.params()).detach().expand(3, -1)
    x = torch.randn(3, 4, 2)
    y = torch.randn(3, 4, 1)
    out, jac = jacobians(fnet, theta, x)
    assert jac.shape == (3, 4, 1, fnet.num_params)
    groups = torch.repeat_interleave(torch.arange(4), torch.tensor(fnet.numels))
    grams = group_grams(jac, groups, 4)
    p_log = torch.tensor([[-1.0, -0.5, 0.0, -2.0]], dtype=torch.float64)
    log_noise = torch.tensor([[math.log(0.3)]], dtype=torch.float64)
    resid = (y - out).flatten(1).double()
    got = linearised_evidence(grams, resid, p_log, log_noise)
    var = (2 * p_log[0, groups]).exp()
    for t in range(3):
        j = jac[t, :, 0]
        cov = j @ torch.diag(var) @ j.T + 0.09 * torch.eye(4, dtype=torch.float64)
        want = torch.distributions.MultivariateNormal(torch.zeros(4).double(), cov).log_prob(
            resid[t]
        )
        torch.testing.assert_close(got[t], want)


def test_jacobians_match_finite_differences():
    torch.manual_seed(2)
    fnet = bm.nets.FunctionalNet(MLP((1, 4, 1), activation="tanh"))
    theta = fnet.flatten(fnet.params()).detach().double().unsqueeze(0)
    fnet.module.double()
    x = torch.randn(1, 3, 1, dtype=torch.float64)
    _, jac = jacobians(fnet, theta, x)
    h = 1e-6
    for i in range(fnet.num_params):
        e = torch.zeros_like(theta)
        e[0, i] = h
        fd = (fnet(theta + e, x) - fnet(theta - e, x)) / (2 * h)
        torch.testing.assert_close(jac[0, :, :, i], fd[0], atol=1e-6, rtol=1e-5)


def sine_setup(seed: int = 0):
    torch.manual_seed(seed)
    src = MLP((1, 20, 1), activation="tanh")
    x = torch.linspace(-3, 3, 200).unsqueeze(-1)
    opt = torch.optim.Adam(src.parameters(), lr=2e-2)
    for _ in range(600):
        opt.zero_grad()
        (src(x) - torch.sin(x)).pow(2).mean().backward()
        opt.step()
    g = torch.Generator().manual_seed(seed + 1)

    def tasks(t, k, q):
        a = 1.3 + 0.4 * torch.rand(t, 1, 1, generator=g)
        xs = 6 * torch.rand(t, k + q, 1, generator=g) - 3
        ys = a * torch.sin(xs) + 0.1 * torch.randn(xs.shape, generator=g)
        return xs[:, :k], ys[:, :k], xs[:, k:], ys[:, k:]

    return src, tasks


def nll(pred, y):
    return float(-pred.log_prob(y).mean())


def test_transfer_prior_beats_scratch_and_fine_tuning_on_nll():
    """The real behaviour: the learned transfer prior predicts shifted tasks better."""
    src, tasks = sine_setup()
    rx, ry, _, _ = tasks(10, 15, 0)
    sx, sy, qx, qy = tasks(20, 3, 30)
    transfer = TransferLearner(src, method="laplace", steps=300, progress=False).fit_prior(rx, ry)
    assert transfer.noise_scale_ is not None
    assert 0.05 < float(transfer.noise_scale_[0]) < 0.2  # the true noise is 0.1
    scratch = TransferLearner.from_scratch(
        MLP((1, 20, 1), activation="tanh"), method="laplace", steps=300, progress=False
    ).fit_prior(rx, ry)
    noise = float(transfer.noise_scale_[0])
    finetune = TransferLearner(
        src, method="finetune", prior_scale=1.0, noise_scale=noise, learn_noise=False, steps=200
    )
    scores = {
        name: nll(learner.adapt(sx, sy).predict(qx), qy)
        for name, learner in [("transfer", transfer), ("scratch", scratch), ("ft", finetune)]
    }
    assert scores["transfer"] < scores["scratch"] - 0.2
    assert scores["transfer"] < scores["ft"] - 0.2
    pred = transfer.adapt(sx, sy).predict(qx)
    lo, hi = pred.interval(0.9)
    coverage = float(((qy >= lo) & (qy <= hi)).float().mean())
    assert 0.8 < coverage < 0.98


def test_batched_adaptation_equals_one_task_at_a_time():
    src, tasks = sine_setup()
    sx, sy, qx, _ = tasks(3, 5, 4)
    for method in ("map", "laplace", "bayes"):
        learner = TransferLearner(src, method=method, prior_scale=0.3, steps=50, progress=False)
        batched = learner.adapt(sx, sy)
        for t in range(3):
            alone = learner.adapt(sx[t], sy[t])
            assert alone.predict(qx[t]).mean.shape == (4, 1)
            if isinstance(alone, LaplacePosterior):
                want, got = batched.mean_cov(qx)[0][t], alone.mean_cov(qx[t])[0]
            elif isinstance(alone, AdaptedPredictor):
                want, got = batched.predict(qx).mean[t], alone.predict(qx[t]).mean
            else:  # SVI's Monte Carlo noise differs with the batch size
                continue
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_empirical_bayes_scales_move_and_noise_is_learned_from_related_tasks():
    src, tasks = sine_setup()
    rx, ry, _, _ = tasks(10, 15, 0)
    svi = TransferLearner(src, steps=200, progress=False).fit_prior(rx, ry)
    lap = TransferLearner(src, method="laplace", steps=200, progress=False).fit_prior(rx, ry)
    for learner in (svi, lap):
        assert learner.prior_scale_ is not None and learner.prior_scale_.shape == (4,)
        assert not torch.allclose(learner.prior_scale_, torch.full((4,), 0.1))
    # the tasks differ in amplitude (the output weights), not in offset (the output bias)
    assert float(lap.prior_scale_[2]) > 10 * float(lap.prior_scale_[3])


def test_frozen_parameters_stay_at_the_source_values():
    src, tasks = sine_setup()
    sx, sy, _, _ = tasks(2, 5, 3)
    learner = TransferLearner(src, method="bayes", prior_scale=0.3, freeze=["layers.0"], steps=30)
    post = learner.adapt(sx, sy)
    assert isinstance(post, GaussianTaskPosterior)
    first = learner.free.logical_not()
    assert int(first.sum()) == 40  # the first layer's 20 weights and 20 biases
    torch.testing.assert_close(post.loc[:, first], learner.centre[first].expand(2, -1))
    assert bool((post.scale[:, first] == 0).all())
    assert bool((post.scale[:, ~first] > 0).all())


def test_weights_scale_the_likelihood():
    """A point with weight 2 counts as that point given twice."""
    net = linear_net(1)
    x = torch.tensor([[0.0], [1.0], [2.0]])
    y = torch.tensor([[0.0], [1.5], [1.0]])
    kw = {"method": "map", "prior_scale": 1.0, "learn_noise": False, "noise_scale": 0.5}
    kw.update(steps=2000, lr=0.05)
    weighted = TransferLearner(net, **kw).adapt(x, y, weights=torch.tensor([1.0, 2.0, 1.0]))
    doubled = TransferLearner(net, **kw).adapt(torch.cat([x, x[1:2]]), torch.cat([y, y[1:2]]))
    torch.testing.assert_close(weighted.flat(), doubled.flat(), atol=1e-3, rtol=0)


def test_classification_with_the_transfer_prior():
    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    src = MLP((2, 8, 3))
    labels = torch.arange(3).repeat_interleave(4)
    x = centres[labels] + 0.3 * torch.randn(12, 2)
    post = TransferLearner(
        src, likelihood="categorical", prior_scale=1.0, steps=300, lr=0.05
    ).adapt(x, labels)
    qlabels = torch.arange(3).repeat_interleave(10)
    pred = post.predict(centres[qlabels] + 0.3 * torch.randn(30, 2))
    assert isinstance(pred, bm.ClassPrediction)
    assert float((pred.probs.argmax(-1) == qlabels).float().mean()) > 0.9


def test_fit_transfer_stops_on_a_non_finite_objective():
    fnet = bm.nets.FunctionalNet(linear_net(1))
    centre = fnet.flatten(fnet.params()).detach()
    x = torch.ones(1, 2, 1)
    y = torch.tensor([[[float("inf")], [0.0]]])
    with pytest.raises(bm.NonFiniteLossError, match="transfer objective"):
        fit_transfer(
            fnet,
            centre,
            torch.zeros(2, dtype=torch.long),
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            x,
            y,
            method="map",
            steps=5,
            lr=0.1,
        )


def test_mismatched_architectures_are_refused_with_the_parameter_named():
    src = MLP((1, 20, 1))
    with pytest.raises(
        ShapeError, match=r"layers\.0\.weight.*\[20, 1\] in the source but \[30, 1\]"
    ):
        TransferLearner(src, net=MLP((1, 30, 1)))
    with pytest.raises(ShapeError, match="missing from the source"):
        TransferLearner(src, net=MLP((1, 20, 20, 1)))
    with pytest.raises(TypeError, match="net="):
        TransferLearner(src.state_dict())
    same = TransferLearner(src.state_dict(), net=MLP((1, 20, 1)))
    torch.testing.assert_close(
        same.centre, bm.nets.FunctionalNet(src).flatten(tuple(src.parameters()))
    )


def test_bad_arguments_are_named():
    src = MLP((1, 4, 1))
    with pytest.raises(ValueError, match="method must be"):
        TransferLearner(src, method="sgd")
    with pytest.raises(ValueError, match="needs method='bayes' or 'laplace'"):
        TransferLearner(src, method="map")
    with pytest.raises(ValueError, match="prior_scale must be positive"):
        TransferLearner(src, prior_scale=0.0)
    with pytest.raises(ValueError, match=r"freeze names 'layers\.7'"):
        TransferLearner(src, freeze=["layers.7"])
    with pytest.raises(ValueError, match="for regression"):
        TransferLearner(src, method="laplace", likelihood="categorical")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TransferLearner(src, steps=0)
    learner = TransferLearner(src, prior_scale=0.1, steps=2)
    with pytest.raises(ShapeError, match="input feature"):
        learner.adapt(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ShapeError, match="integer class labels"):
        TransferLearner(src, likelihood="categorical", prior_scale=1.0).adapt(
            torch.zeros(3, 1), torch.zeros(3, 1)
        )
    with pytest.raises(ShapeError, match="float regression targets"):
        learner.adapt(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ShapeError, match="one value per support point"):
        learner.adapt(torch.zeros(3, 1), torch.zeros(3, 1), weights=torch.ones(2))
    with pytest.raises(ValueError, match="non-negative"):
        learner.adapt(torch.zeros(3, 1), torch.zeros(3, 1), weights=-torch.ones(3))
    with pytest.raises(ShapeError, match="several tasks"):
        learner.fit_prior(torch.zeros(3, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="fit_prior needs"):
        TransferLearner(src, method="map", prior_scale=0.1).fit_prior(
            torch.zeros(2, 3, 1), torch.zeros(2, 3, 1)
        )


def test_num_samples_is_renamed_num_particles():
    net = MLP((1, 4, 1))
    with pytest.warns(DeprecationWarning, match="num_samples is renamed num_particles") as seen:
        learner = TransferLearner(net, num_samples=3)
    assert seen[0].filename == __file__  # the warning points at the caller's line
    assert learner.num_particles == 3 and learner.config()["num_particles"] == 3
    assert TransferLearner(net).num_particles == 4
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*'num_sample'"):
        TransferLearner(net, num_sample=3)
