"""Any Pyro guide at test time: one autoguide per task, your own guides as you made them."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Predictive
from pyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoNormal
from pyro.nn import PyroModule, PyroParam

import bayesmeta as bm
from bayesmeta.errors import ShapeError


@pytest.fixture
def setting():
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 10, 1))
    tasks = bm.Sinusoid(5, 12, seed=2).sample(3)
    return learner, tasks


def test_a_multivariate_autoguide_is_fitted_per_task_not_jointly(setting):
    learner, t = setting
    post = learner.adapt(t.support_x, t.support_y, guide=AutoLowRankMultivariateNormal, steps=3)
    p = learner.fnet.num_params
    assert len(post.fitted) == 3
    for f in post.fitted:
        shapes = {tuple(v.shape) for v in f.guide.parameters()}
        assert (p,) in shapes and all(s[0] == p for s in shapes)  # P-sized, never 3P
    assert post.sample(4).shape == (4, 3, p)
    assert post.predict(t.query_x).mean.shape == (3, 12, 1)


def test_a_one_task_guide_broadcasts_over_query_tasks_and_a_batch_must_match(setting):
    learner, t = setting
    one = learner.adapt(t.support_x[0], t.support_y[0], guide=AutoNormal, steps=3)
    draws = Predictive(learner.model, guide=one.guide, num_samples=4, return_sites=["theta"])(
        t.query_x
    )["theta"]
    assert draws.shape == (4, 3, learner.fnet.num_params)
    torch.testing.assert_close(draws[:, 0], draws[:, 2])  # the same posterior for every task
    two = learner.adapt(t.support_x[:2], t.support_y[:2], guide=AutoNormal, steps=3)
    with pytest.raises(ShapeError, match="holds 2 tasks"):
        Predictive(learner.model, guide=two.guide, num_samples=2)(t.query_x)


def test_your_own_pyro_module_guide_is_fitted_and_only_it_moves(setting):
    learner, t = setting
    start = learner.prior.loc.detach().clone()

    class Guide(PyroModule):
        def __init__(self) -> None:
            super().__init__()
            self.loc = PyroParam(start.clone())

        def forward(self, x, y=None):
            with pyro.plate("tasks", x.shape[0]):
                return pyro.sample("theta", dist.Normal(self.loc, 0.01).to_event(1))

    before = [p.detach().clone() for p in learner.parameters()]
    guide = Guide()
    post = learner.adapt(t.support_x[0], t.support_y[0], guide=guide, steps=20, lr=0.01)
    assert len(post.fitted) == 1 and post.fitted[0].guide is guide
    assert not torch.allclose(guide.loc.detach(), start)  # SVI moved the guide's mean
    assert all(
        torch.equal(b, p.detach()) for b, p in zip(before, learner.parameters(), strict=True)
    )
    assert post.elbo_trace is not None and post.elbo_trace.shape == (20,)


def test_guides_that_are_not_guides_are_refused(setting):
    learner, t = setting
    with pytest.raises(TypeError, match="autoguide class"):
        learner.adapt(t.support_x[0], t.support_y[0], guide="iaf")
    with pytest.raises(ValueError, match="no parameters"):
        learner.adapt(t.support_x[0], t.support_y[0], guide=lambda x, y=None: None)


def test_meta_model_lets_gradients_reach_the_meta_parameters_and_model_does_not(setting):
    learner, t = setting
    x, y = t.support_x, t.support_y
    for model, reaches in ((learner.model, False), (learner.meta_model(), True)):
        learner.zero_grad(set_to_none=True)
        trace = pyro.poutine.trace(model).get_trace(x, y)
        log_joint = trace.log_prob_sum()
        if log_joint.requires_grad:
            log_joint.backward()
        got = learner.prior.log_scale.grad
        assert (got is not None and bool(got.abs().sum() > 0)) == reaches
        assert (learner.likelihood.log_scale.grad is not None) == reaches
