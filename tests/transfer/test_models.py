"""The transfer learners are the one model too: their learner.model against their own posteriors."""

import pyro
import pytest
import torch
from pyro.infer import MCMC, NUTS, Predictive

import bayesmeta as bm


def test_last_layer_model_under_nuts_matches_the_closed_form_posterior():
    """Bayesian linear regression on frozen features: NUTS on .model is the exact posterior."""
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    bll = bm.BayesianLastLayer.from_network(source)
    tasks = bm.Sinusoid(8, 20, seed=1).sample(20)
    bll.fit_prior(tasks.support_x, tasks.support_y)
    task = tasks[0]
    pred = bll.adapt(task.support_x, task.support_y).predict(task.query_x)
    mcmc = MCMC(
        NUTS(bll.model, max_tree_depth=4), num_samples=250, warmup_steps=150, disable_progbar=True
    )
    mcmc.run(task.support_x.unsqueeze(0), task.support_y.unsqueeze(0))
    draws = Predictive(bll.model, posterior_samples=mcmc.get_samples(), return_sites=["y"])(
        task.query_x.unsqueeze(0)
    )["y"][:, 0]
    # means within a few Monte Carlo errors, standard deviations within 15%
    err = (draws.mean(0) - pred.mean).abs() / (pred.std / 250**0.5)
    assert float(err.median()) < 4
    torch.testing.assert_close(draws.std(0), pred.std, rtol=0.15, atol=0)
    # and the encoder, read as a constant, collected no gradient
    assert all(p.grad is None for p in source.parameters())


def test_last_layer_model_needs_a_head_for_its_width():
    bll = bm.BayesianLastLayer(torch.nn.Linear(1, 4), num_outputs=1)
    with pytest.raises(ValueError, match="feature width"):
        _ = bll.model


def test_transfer_model_holds_frozen_layers_at_the_source():
    source = torch.nn.Sequential(torch.nn.Linear(1, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    learner = bm.TransferLearner(source, freeze=["0"], prior_scale=0.3)
    fn = pyro.poutine.trace(learner.model).get_trace(torch.zeros(2, 3, 1)).nodes["theta"]["fn"]
    flat = torch.cat([p.detach().reshape(-1) for p in source.parameters()])
    torch.testing.assert_close(fn.mean[0], flat)
    scale = fn.base_dist.scale[0]
    frozen = 1 * 6 + 6  # the first layer's weight and bias
    assert bool((scale[:frozen] <= 1e-6).all())
    torch.testing.assert_close(scale[frozen:], torch.full_like(scale[frozen:], 0.3))


def test_matching_net_says_it_has_no_model_and_protonets_have_one():
    with pytest.raises(NotImplementedError, match="no probabilistic model"):
        _ = bm.MatchingNet((1, 8)).model
    for make in (bm.ProtoNet, bm.BayesianProtoNet):
        assert isinstance(make((1, 8)).model, bm.model.ClassMeanModel)


def test_transfer_adapts_with_any_pyro_guide_under_its_prior():
    from pyro.infer.autoguide import AutoNormal

    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(1, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    before = [p.detach().clone() for p in source.parameters()]
    learner = bm.TransferLearner(source, prior_scale=0.3)
    task = bm.Sinusoid(5, 10, seed=1).sample(1)[0]
    post = learner.adapt(task.support_x, task.support_y, guide=AutoNormal, steps=30)
    assert post.predict(task.query_x).mean.shape == (10, 1)
    assert post.elbo_trace is not None and post.elbo_trace.shape == (30,)
    assert all(torch.equal(b, p.detach()) for b, p in zip(before, source.parameters(), strict=True))
    with pytest.raises(ValueError, match="weights are not part"):
        learner.adapt(
            task.support_x, task.support_y, guide=AutoNormal, weights=torch.ones(5), steps=2
        )
