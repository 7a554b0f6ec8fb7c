"""The one Pyro model of every learner: sites, log joint, Predictive, NUTS, gradient isolation."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS, Predictive
from pyro.infer.autoguide import AutoNormal

import bayesmeta as bm
from bayesmeta.errors import ShapeError
from bayesmeta.model import TaskModel
from bayesmeta.model.likelihoods import GaussianLikelihood, MSELikelihood
from bayesmeta.nets import MLP, FunctionalNet


def _base(d):
    while isinstance(d, torch.distributions.Independent):
        d = d.base_dist
    return d


def _snapshot(learner):
    learner.zero_grad(set_to_none=True)
    return [(n, p.detach().clone()) for n, p in learner.named_parameters()]


def _unchanged(learner, before):
    now = dict(learner.named_parameters())
    assert set(now) == {n for n, _ in before}
    for n, b in before:
        assert torch.equal(now[n].detach(), b), n
        assert now[n].grad is None, n


@pytest.fixture(scope="module")
def sinusoid():
    torch.manual_seed(0)
    return bm.Sinusoid(5, 10, seed=1).sample(3)


def test_bayesian_maml_trace_has_the_sites_and_shapes(sinusoid):
    learner = bm.BayesianMAML((1, 8, 1), prior="laplace")
    p = learner.fnet.num_params
    trace = pyro.poutine.trace(learner.model).get_trace(sinusoid.support_x, sinusoid.support_y)
    theta, y = trace.nodes["theta"], trace.nodes["y"]
    assert theta["value"].shape == (3, p)
    assert isinstance(_base(theta["fn"]), dist.Laplace)
    assert theta["fn"].event_shape == (p,)
    assert y["is_observed"] and y["value"].shape == (3, 5, 1)
    assert y["fn"].batch_shape == (3,) and y["fn"].event_shape == (5, 1)
    assert [f.name for f in theta["cond_indep_stack"]] == ["tasks"]
    # without targets, y is sampled with the same shape
    trace = pyro.poutine.trace(learner.model).get_trace(sinusoid.support_x)
    assert not trace.nodes["y"]["is_observed"]
    assert trace.nodes["y"]["value"].shape == (3, 5, 1)


def test_categorical_labels_are_t_by_n_and_scored_by_log_softmax():
    torch.manual_seed(0)
    learner = bm.BayesianMAML((2, 8, 3), likelihood="categorical", prior_scale=0.1)
    x = torch.randn(4, 6, 2)
    labels = torch.randint(3, (4, 6))
    theta = learner.prior.loc.detach() + 0.1 * torch.randn(4, learner.fnet.num_params)
    model = pyro.poutine.condition(learner.model, data={"theta": theta})
    trace = pyro.poutine.trace(model).get_trace(x, labels)
    assert trace.nodes["y"]["value"].shape == (4, 6)
    assert trace.nodes["y"]["value"].dtype == torch.long
    logits = learner.fnet(theta, x)
    want = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).sum()
    want = (
        want
        + torch.distributions.Normal(learner.prior.loc, learner.prior.scale).log_prob(theta).sum()
    )
    torch.testing.assert_close(trace.log_prob_sum().detach(), want.detach())
    sampled = pyro.poutine.trace(learner.model).get_trace(x).nodes["y"]["value"]
    assert sampled.shape == (4, 6) and int(sampled.max()) < 3 and int(sampled.min()) >= 0


def test_the_model_refuses_inputs_of_the_wrong_shape():
    learner = bm.BayesianMAML((1, 4, 1))
    with pytest.raises(ShapeError, match="task dimension"):
        learner.model(torch.zeros(5, 1))
    with pytest.raises(ShapeError, match="task dimension"):
        learner.model(torch.zeros(1, 2, 5, 1))
    with pytest.raises(ShapeError, match="y must have x's tasks and points"):
        learner.model(torch.zeros(2, 5, 1), torch.zeros(3, 5, 1))
    with pytest.raises(ShapeError, match="y must have x's tasks and points"):
        learner.model(torch.zeros(2, 5, 1), torch.zeros(2, 4, 1))


@pytest.mark.parametrize("family", ["normal", "laplace", "student_t"])
def test_the_log_joint_is_the_prior_plus_the_likelihood_by_hand(sinusoid, family):
    torch.manual_seed(1)
    learner = bm.BayesianMAML((1, 8, 1), prior=family, prior_scale=0.2, noise_scale=0.3)
    x, y = sinusoid.support_x, sinusoid.support_y
    loc, scale = learner.prior.loc.detach(), learner.prior.scale.detach()
    theta = loc + 0.2 * torch.randn(3, learner.fnet.num_params)
    trace = pyro.poutine.trace(pyro.poutine.condition(learner.model, {"theta": theta})).get_trace(
        x, y
    )
    reference = {
        "normal": torch.distributions.Normal(loc, scale),
        "laplace": torch.distributions.Laplace(loc, scale),
        "student_t": torch.distributions.StudentT(3.0, loc, scale),
    }[family]
    prior_part = reference.log_prob(theta).sum()
    f = learner.fnet(theta, x).detach()
    lik_part = torch.distributions.Normal(f, 0.3).log_prob(y).sum()
    torch.testing.assert_close(trace.log_prob_sum().detach(), prior_part + lik_part)
    torch.testing.assert_close(
        trace.nodes["theta"]["log_prob_sum"].detach(), prior_part, rtol=1e-5, atol=1e-4
    )


def test_maml_log_joint_is_the_gibbs_likelihood_alone(sinusoid):
    torch.manual_seed(2)
    maml = bm.MAML((1, 8, 1))
    x, y = sinusoid.support_x, sinusoid.support_y
    theta = torch.randn(3, maml.fnet.num_params)
    trace = pyro.poutine.trace(pyro.poutine.condition(maml.model, {"theta": theta})).get_trace(x, y)
    f = maml.fnet(theta, x).detach()
    # the flat prior contributes 0; MSE's likelihood is Normal(f, sqrt(1/2)) for O = 1
    want = torch.distributions.Normal(f, math.sqrt(0.5)).log_prob(y).sum()
    torch.testing.assert_close(trace.log_prob_sum().detach(), want)
    assert float(trace.nodes["theta"]["log_prob_sum"]) == 0.0
    # without a guide, theta is the meta-learned initialisation
    start = maml.fnet.flatten([p.detach() for p in maml.fnet.params()])
    drawn = pyro.poutine.trace(maml.model).get_trace(x).nodes["theta"]["value"]
    torch.testing.assert_close(drawn, start.expand(3, -1))


def _check_predictive(learner, post, xq, num=600):
    pred = post.predict(xq[0], num_samples=2000)
    draws = Predictive(learner.model, guide=post.guide, num_samples=num)(xq)
    y = draws["y"][:, 0]  # [S, N, 1]
    assert y.shape == (num, *pred.mean.shape)
    sd = pred.std
    err = (y.mean(0) - pred.mean).abs() / (sd * math.sqrt(1 / num + 1 / 2000))
    assert float(err.max()) < 4.5
    ratio = y.std(0) / sd
    assert float((ratio - 1).abs().max()) < 0.2
    return draws, pred


def test_predictive_with_the_posterior_guide_agrees_with_predict_bayesian_maml(sinusoid):
    torch.manual_seed(3)
    learner = bm.BayesianMAML((1, 8, 1), prior_scale=0.3, noise_scale=0.2)
    xs, ys, xq = sinusoid.support_x[0], sinusoid.support_y[0], sinusoid.query_x[:1]
    post = learner.adapt(xs, ys)
    draws, pred = _check_predictive(learner, post, xq)
    theta = draws["theta"][:, 0]
    torch.testing.assert_close(
        theta.mean(0), post.loc, atol=5 * float(post.scale.max()) / 24, rtol=0
    )
    torch.testing.assert_close(theta.std(0), post.scale, rtol=0.2, atol=0)
    assert float(pred.epistemic_std.mean()) > 0.05  # the posterior spread is visible


def test_predictive_with_the_maml_guide_is_a_point_mass_with_the_fitted_noise(sinusoid):
    torch.manual_seed(4)
    maml = bm.MAML((1, 8, 1), inner_steps=2)
    task = sinusoid[0]
    xq = sinusoid.query_x[:1]
    adapted = maml.adapt(task.support_x, task.support_y)
    # before a noise scale is fitted: the Gibbs likelihood Normal(f, sqrt(1/2))
    draws = Predictive(maml.model, guide=adapted.guide, num_samples=500)(xq)
    assert float(draws["theta"].std(0).max()) == 0.0
    torch.testing.assert_close(draws["theta"][0, 0], adapted.flat())
    spread = float(draws["y"].std(0).mean())
    assert abs(spread / math.sqrt(0.5) - 1) < 0.1
    # after fit_noise_scale: Gaussian with the fitted scale, agreeing with predict
    maml.fit_noise_scale(bm.Sinusoid(5, 10, seed=7).sample(10))
    noise = float(maml.noise_scale)
    assert abs(noise - math.sqrt(0.5)) > 0.1  # a visibly different scale
    assert isinstance(maml.model.likelihood, GaussianLikelihood)
    adapted = maml.adapt(task.support_x, task.support_y)
    draws = Predictive(maml.model, guide=adapted.guide, num_samples=500)(xq)
    assert float(draws["theta"].std(0).max()) == 0.0
    y = draws["y"][:, 0]
    pred = adapted.predict(xq[0])
    err = (y.mean(0) - pred.mean).abs() / (noise / math.sqrt(500))
    assert float(err.max()) < 4.5
    assert abs(float(y.std(0).mean()) / noise - 1) < 0.1


def test_predictive_with_the_variational_learners_guide_agrees_with_predict(sinusoid):
    torch.manual_seed(5)
    vml = bm.VariationalMetaLearner((1, 8, 1), adapt_steps=30)
    vml.meta_fit(
        bm.Sinusoid(5, 10, seed=0), iterations=5, meta_batch_size=4, num_tasks=8, progress=False
    )
    post = vml.adapt(sinusoid.support_x[0], sinusoid.support_y[0])
    _check_predictive(vml, post, sinusoid.query_x[:1])
    # the model has its hyper sites besides theta and y
    trace = pyro.poutine.trace(vml.model).get_trace(sinusoid.support_x)
    hyper = [n for n, s in trace.nodes.items() if s["type"] == "sample" and n not in ("theta", "y")]
    assert hyper


def test_nuts_and_autoguides_leave_every_learner_parameter_alone(sinusoid):
    torch.manual_seed(6)
    x, y = sinusoid.support_x[:1], sinusoid.support_y[:1]
    learners = [
        bm.BayesianMAML((1, 6, 1), prior=bm.priors.StudentT(df=4.0, scale=0.3)),
        bm.MAML((1, 6, 1)),
    ]
    for learner in learners:
        before = _snapshot(learner)
        mcmc = MCMC(
            NUTS(learner.model, max_tree_depth=3),
            num_samples=10,
            warmup_steps=10,
            disable_progbar=True,
        )
        mcmc.run(x, y)
        theta = mcmc.get_samples()["theta"]
        assert theta.shape == (10, 1, learner.fnet.num_params)
        assert bool(torch.isfinite(theta).all())
        _unchanged(learner, before)
    vml = bm.VariationalMetaLearner((1, 6, 1))
    for learner in [*learners, vml]:
        before = _snapshot(learner)
        post = learner.adapt(x[0], y[0], guide=AutoNormal, steps=5)
        assert post.sample(3).shape == (3, learner.fnet.num_params)
        post.predict(sinusoid.query_x[0])
        _unchanged(learner, before)


def test_only_a_learn_true_model_sends_gradients_to_the_prior():
    torch.manual_seed(7)
    fnet = FunctionalNet(MLP((1, 6, 1)))
    prior = bm.priors.Laplace(scale=0.2).bind(fnet, loc="module")
    likelihood = GaussianLikelihood(0.3)
    owner = torch.nn.ModuleDict({"prior": prior, "likelihood": likelihood})
    x, y = torch.randn(2, 4, 1), torch.randn(2, 4, 1)
    for learn in (False, True):
        owner.zero_grad(set_to_none=True)
        model = TaskModel(fnet, prior, likelihood, owner=owner, learn=learn)
        lp = pyro.poutine.trace(model).get_trace(x, y).log_prob_sum()
        if lp.requires_grad:
            lp.backward()
        for p in (prior.loc, prior.log_scale, likelihood.log_scale):
            assert p.requires_grad  # restored after the run
            reached = p.grad is not None and float(p.grad.abs().sum()) > 0
            assert reached is learn
    # the log joint of the two is the same number
    theta = prior.loc.detach().expand(2, -1) + 0.1
    vals = [
        pyro.poutine.trace(
            pyro.poutine.condition(
                TaskModel(fnet, prior, likelihood, owner=owner, learn=learn), {"theta": theta}
            )
        )
        .get_trace(x, y)
        .log_prob_sum()
        .detach()
        for learn in (False, True)
    ]
    torch.testing.assert_close(vals[0], vals[1])


def test_meta_model_reaches_the_learners_parameters_and_model_does_not(sinusoid):
    learner = bm.BayesianMAML((1, 6, 1), prior="student_t")
    for model, reaches in ((learner.model, False), (learner.meta_model(), True)):
        learner.zero_grad(set_to_none=True)
        lp = (
            pyro.poutine.trace(model)
            .get_trace(sinusoid.support_x, sinusoid.support_y)
            .log_prob_sum()
        )
        if lp.requires_grad:
            lp.backward()
        for name, p in learner.named_parameters():
            assert (p.grad is not None) is reaches, name


def test_transfer_learner_model_is_centred_on_the_source_with_gaussian_noise():
    torch.manual_seed(8)
    source = torch.nn.Sequential(torch.nn.Linear(1, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    flat = torch.cat([p.detach().reshape(-1) for p in source.parameters()])
    learner = bm.TransferLearner(source, prior_scale=0.05, noise_scale=0.2)
    x = torch.randn(2, 6, 1)
    trace = pyro.poutine.trace(learner.model).get_trace(x)
    theta = trace.nodes["theta"]
    torch.testing.assert_close(theta["fn"].mean, flat.expand(2, -1))
    torch.testing.assert_close(theta["fn"].stddev, torch.full((2, flat.numel()), 0.05))
    assert theta["value"].shape == (2, flat.numel())
    noise = _base(trace.nodes["y"]["fn"])
    assert isinstance(noise, torch.distributions.Normal)
    torch.testing.assert_close(noise.scale, torch.full_like(noise.scale, 0.2))
    torch.testing.assert_close(noise.loc, learner.fnet(theta["value"], x))
    draws = Predictive(learner.model, num_samples=2000, return_sites=["theta"], parallel=True)(x)[
        "theta"
    ]
    torch.testing.assert_close(draws.mean((0, 1)), flat, atol=5 * 0.05 / math.sqrt(4000), rtol=0)
    # and MSE for MAML is the Gibbs model, not Gaussian noise
    assert isinstance(bm.MAML((1, 4, 1)).model.likelihood, MSELikelihood)
