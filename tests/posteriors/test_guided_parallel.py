"""Guides under ``Predictive(..., parallel=True)``: independent draws, as ``parallel=False`` gives.

``Predictive(parallel=True)`` runs the guide once inside a ``"_num_predictive_samples"``
plate. A guide that draws outside that plate's reach (a fitted guide run inside a
``poutine.block``) would give one draw broadcast over the samples: zero spread.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Predictive
from pyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoNormal
from pyro.nn import PyroModule, PyroParam

import bayesmeta as bm
from bayesmeta.guides import DeltaGuide, LowRankGuide, NormalGuide

S = 400


@pytest.fixture(autouse=True)
def _fresh_param_store():
    # a guide you build (a PyroModule) keeps its parameters in Pyro's global store
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def _theta(learner, guide, x, parallel, n=S):
    return Predictive(
        learner.model, guide=guide, num_samples=n, parallel=parallel, return_sites=["theta", "y"]
    )(x)


def _support():
    x = torch.linspace(-1.0, 1.0, 6).reshape(1, 6, 1)
    return x, torch.sin(3 * x)


@pytest.mark.parametrize(
    ("learner_cls", "guide_cls"),
    [
        (bm.BayesianMAML, AutoNormal),
        (bm.MAML, AutoNormal),
        (bm.MAML, AutoLowRankMultivariateNormal),
    ],
)
def test_parallel_predictive_draws_as_spread_as_sequential(learner_cls, guide_cls):
    torch.manual_seed(0)
    learner = learner_cls((1, 8, 1))
    x, y = _support()
    post = learner.adapt(x, y, guide=guide_cls, steps=30)
    p = learner.fnet.num_params
    seq = _theta(learner, post.guide, x, parallel=False)
    par = _theta(learner, post.guide, x, parallel=True)
    assert seq["theta"].shape == par["theta"].shape == (S, 1, p)
    sd_seq = seq["theta"].std(0).mean()
    sd_par = par["theta"].std(0).mean()
    assert float(sd_seq) > 0 and float(sd_par) > 0
    assert abs(float(sd_par / sd_seq) - 1) < 0.15
    # every draw distinct, and the predictive draws of y spread too
    assert torch.unique(par["theta"][:, 0, 0]).numel() == S
    assert float(par["y"].std(0).mean()) > 0
    # the same distribution's centre: means agree to a few standard errors
    err = (par["theta"].mean(0) - seq["theta"].mean(0)).abs() / (sd_seq * (2 / S) ** 0.5)
    assert float(err.mean()) < 3


def test_parallel_predictive_of_a_batch_of_guides_draws_per_task():
    torch.manual_seed(1)
    learner = bm.MAML((1, 8, 1))
    x = torch.linspace(-1.0, 1.0, 6).reshape(1, 6, 1).expand(2, 6, 1).clone()
    y = torch.cat([torch.sin(3 * x[:1]), torch.cos(3 * x[1:])])
    post = learner.adapt(x, y, guide=AutoNormal, steps=30)
    assert len(post.fitted) == 2
    seq = _theta(learner, post.guide, x, parallel=False)["theta"]
    par = _theta(learner, post.guide, x, parallel=True)["theta"]
    assert par.shape == (S, 2, learner.fnet.num_params)
    for t in range(2):
        ratio = par[:, t].std(0).mean() / seq[:, t].std(0).mean()
        assert abs(float(ratio) - 1) < 0.15
    # the two tasks are drawn independently: no sample repeats across them
    assert not torch.allclose(par[:, 0] - par[:, 0].mean(0), par[:, 1] - par[:, 1].mean(0))


def test_parallel_predictive_of_your_own_guide_draws_independently():
    torch.manual_seed(2)
    learner = bm.MAML((1, 8, 1))
    x, y = _support()
    p = learner.fnet.num_params

    class Guide(PyroModule):
        def __init__(self) -> None:
            super().__init__()
            self.loc = PyroParam(torch.zeros(p))

        def forward(self, x, y=None):
            with pyro.plate("tasks", x.shape[0]):
                return pyro.sample("theta", dist.Normal(self.loc, 0.05).to_event(1))

    post = learner.adapt(x, y, guide=Guide(), steps=5)
    seq = _theta(learner, post.guide, x, parallel=False)["theta"]
    par = _theta(learner, post.guide, x, parallel=True)["theta"]
    assert par.shape == (S, 1, p)
    for draws in (seq, par):
        assert abs(float(draws.std(0).mean()) / 0.05 - 1) < 0.15


def test_the_replayed_guide_outside_any_plate_draws_once():
    torch.manual_seed(3)
    learner = bm.MAML((1, 8, 1))
    x, y = _support()
    post = learner.adapt(x, y, guide=AutoNormal, steps=5)
    site = pyro.poutine.trace(post.guide).get_trace(x).nodes["theta"]
    assert site["value"].shape == (1, learner.fnet.num_params)
    with pyro.plate("draws", 50, dim=-2):
        site = pyro.poutine.trace(post.guide).get_trace(torch.zeros(3, 4, 1)).nodes["theta"]
    assert site["value"].shape == (50, 3, learner.fnet.num_params)
    assert float(site["value"].std(0).mean()) > 0
    # one posterior for every task of a draw
    torch.testing.assert_close(site["value"][:, 0], site["value"][:, 2])


@pytest.mark.parametrize("kind", ["delta", "normal", "lowrank"])
def test_fixed_guides_under_parallel_predictive_match_their_distribution(kind):
    torch.manual_seed(4)
    learner = bm.MAML((1, 8, 1))
    p = learner.fnet.num_params
    loc = torch.randn(3, p)
    scale = 0.1 + torch.rand(3, p)
    factor = 0.3 * torch.randn(3, p, 2)
    diag = 0.05 + torch.rand(3, p)
    guide, sd = {
        "delta": (DeltaGuide(loc), torch.zeros(3, p)),
        "normal": (NormalGuide(loc, scale), scale),
        "lowrank": (LowRankGuide(loc, factor, diag), (factor.pow(2).sum(-1) + diag).sqrt()),
    }[kind]
    x = torch.zeros(3, 4, 1)
    n = 2000
    for parallel in (False, True):
        theta = _theta(learner, guide, x, parallel, n=n)["theta"]
        assert theta.shape == (n, 3, p)
        if kind == "delta":
            torch.testing.assert_close(theta, loc.expand(n, 3, p))
            continue
        # each weight's spread within 15% of the true one, their average within 3%
        torch.testing.assert_close(theta.std(0), sd, atol=0.0, rtol=0.15)
        assert abs(float((theta.std(0) / sd).mean()) - 1) < 0.03
        torch.testing.assert_close(theta.mean(0), loc, atol=float(5 * sd.max() / n**0.5), rtol=0.0)
