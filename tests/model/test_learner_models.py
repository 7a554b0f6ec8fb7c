"""Every weight-space learner is the one Pyro model: sites, prior families, Predictive, NUTS."""

import math

import pyro
import pytest
import torch
from pyro.infer import MCMC, NUTS, Predictive

import bayesmeta as bm


def _family(fn):
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return type(fn).__name__


@pytest.mark.parametrize(
    ("prior", "family"),
    [(None, "Normal"), (bm.priors.Laplace(), "Laplace"), (bm.priors.StudentT(df=5.0), "StudentT")],
)
def test_the_theta_site_has_the_learners_prior_family_and_shapes(prior, family):
    learner = bm.BayesianMAML((1, 6, 1), prior=prior)
    x, y = torch.randn(3, 4, 1), torch.randn(3, 4, 1)
    trace = pyro.poutine.trace(learner.model).get_trace(x, y)
    theta = trace.nodes["theta"]
    assert _family(theta["fn"]) == family
    assert theta["value"].shape == (3, learner.fnet.num_params)
    assert trace.nodes["y"]["is_observed"] and trace.nodes["y"]["value"].shape == (3, 4, 1)
    # the log joint is the prior's plus the likelihood's, by hand
    want = (
        learner.prior.log_prob(theta["value"]).sum()
        + learner.likelihood.point_log_prob(learner.fnet(theta["value"], x), y).sum()
    )
    torch.testing.assert_close(trace.log_prob_sum(), want)


def test_maml_is_the_point_mass_case_and_predictive_agrees_with_predict():
    torch.manual_seed(0)
    maml = bm.MAML((1, 8, 1), inner_steps=2)
    maml.fit_noise_scale(bm.Sinusoid(5, 10, seed=1).sample(20))
    task = bm.Sinusoid(5, 30, seed=2).sample(1)[0]
    adapted = maml.adapt(task.support_x, task.support_y)
    pred = adapted.predict(task.query_x)
    draws = Predictive(maml.model, guide=adapted.guide, num_samples=400)(task.query_x[None])
    assert float(draws["theta"].std(0).max()) == 0.0  # a point mass
    y = draws["y"][:, 0]
    noise = float(maml.noise_scale)
    err = (y.mean(0) - pred.mean).abs() / (noise / math.sqrt(400))
    assert float(err.median()) < 4
    assert abs(float(y.std(0).mean()) / noise - 1) < 0.1


def test_nuts_on_the_model_leaves_the_meta_parameters_and_their_grads_alone():
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 6, 1), prior=bm.priors.Laplace(scale=0.3))
    learner.meta_fit(bm.Sinusoid(5, 5, seed=0), iterations=3, meta_batch_size=4, progress=False)
    before = [p.detach().clone() for p in learner.parameters()]
    task = bm.Sinusoid(5, 5, seed=3).sample(1)[0]
    mcmc = MCMC(
        NUTS(learner.model, max_tree_depth=3), num_samples=10, warmup_steps=10, disable_progbar=True
    )
    mcmc.run(task.support_x[None], task.support_y[None])
    assert mcmc.get_samples()["theta"].shape == (10, 1, learner.fnet.num_params)
    for b, p in zip(before, learner.parameters(), strict=True):
        assert torch.equal(b, p.detach()) and p.grad is None
