"""Guides with fixed parameters: shapes under the tasks plate, task counts, their draws."""

import math

import pyro
import pytest
import torch
from pyro.infer import Predictive

import bayesmeta as bm
from bayesmeta.errors import ShapeError
from bayesmeta.guides import DeltaGuide, LowRankGuide, NormalGuide

P, T = 6, 3


def _guides(batch):
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(*batch, P, generator=g)
    scale = 0.1 + torch.rand(*batch, P, generator=g)
    factor = 0.3 * torch.randn(*batch, P, 2, generator=g)
    diag = 0.05 + torch.rand(*batch, P, generator=g)
    return loc, {
        "delta": DeltaGuide(loc),
        "normal": NormalGuide(loc, scale),
        "lowrank": LowRankGuide(loc, factor, diag),
    }


def _draw(guide, x, n=None):
    if n is None:
        return pyro.poutine.trace(guide).get_trace(x).nodes["theta"]
    with pyro.plate("draws", n, dim=-2):
        return pyro.poutine.trace(guide).get_trace(x).nodes["theta"]


@pytest.mark.parametrize("kind", ["delta", "normal", "lowrank"])
def test_one_task_parameters_broadcast_over_the_tasks_plate(kind):
    loc, guides = _guides(())
    site = _draw(guides[kind], torch.zeros(T, 4, 1))
    assert site["value"].shape == (T, P)
    assert [f.name for f in site["cond_indep_stack"]] == ["tasks"]
    assert site["fn"].batch_shape == (T,) and site["fn"].event_shape == (P,)
    if kind == "delta":
        torch.testing.assert_close(site["value"], loc.expand(T, P))
    site = _draw(guides[kind], torch.zeros(T, 4, 1), n=5)
    assert site["value"].shape == (5, T, P)


@pytest.mark.parametrize("kind", ["delta", "normal", "lowrank"])
def test_per_task_parameters_need_as_many_tasks(kind):
    loc, guides = _guides((T,))
    site = _draw(guides[kind], torch.zeros(T, 4, 1))
    assert site["value"].shape == (T, P)
    if kind == "delta":
        torch.testing.assert_close(site["value"], loc)
    with pytest.raises(ShapeError, match=f"holds {T} task posteriors but x has 2"):
        guides[kind](torch.zeros(2, 4, 1))


def test_guide_parameters_must_be_vectors_or_matrices():
    with pytest.raises(ShapeError, match=r"\[P\] or \[T, P\]"):
        DeltaGuide(torch.zeros(2, 3, 4))
    with pytest.raises(ShapeError, match=r"\[P\] or \[T, P\]"):
        DeltaGuide(torch.tensor(1.0))
    with pytest.raises(ShapeError, match="scale must have loc's shape"):
        NormalGuide(torch.zeros(3, 4), torch.ones(4))


def test_normal_guide_draws_have_its_mean_and_std():
    loc, guides = _guides((T,))
    scale = guides["normal"].scale
    n = 20_000
    torch.manual_seed(1)
    draws = _draw(guides["normal"], torch.zeros(T, 4, 1), n=n)["value"]
    assert draws.shape == (n, T, P)
    torch.testing.assert_close(
        draws.mean(0), loc, atol=float(5 * scale.max() / math.sqrt(n)), rtol=0
    )
    torch.testing.assert_close(draws.std(0), scale, rtol=0.05, atol=0)
    # the log density Pyro scores the draws with is the diagonal Normal's
    site = _draw(guides["normal"], torch.zeros(T, 4, 1))
    want = torch.distributions.Normal(loc, scale).log_prob(site["value"]).sum(-1)
    torch.testing.assert_close(site["fn"].log_prob(site["value"]), want)


def test_low_rank_guide_draws_have_its_covariance():
    _, guides = _guides(())
    guide = guides["lowrank"]
    cov = guide.cov_factor @ guide.cov_factor.T + torch.diag(guide.cov_diag)
    torch.manual_seed(2)
    n = 40_000
    draws = _draw(guide, torch.zeros(1, 4, 1), n=n)["value"][:, 0]
    centred = draws - draws.mean(0)
    emp = centred.T @ centred / n
    torch.testing.assert_close(emp, cov, atol=0.04, rtol=0)
    torch.testing.assert_close(draws.mean(0), guide.loc, atol=0.03, rtol=0)


def test_posterior_guides_of_the_learners():
    torch.manual_seed(3)
    tasks = bm.Sinusoid(5, 8, seed=0).sample(2)
    bmaml = bm.BayesianMAML((1, 8, 1), prior_scale=0.2)
    post = bmaml.adapt(tasks.support_x, tasks.support_y)
    guide = post.guide
    assert isinstance(guide, NormalGuide)
    torch.testing.assert_close(guide.loc, post.loc)
    torch.testing.assert_close(guide.scale, post.scale)
    maml = bm.MAML((1, 8, 1))
    adapted = maml.adapt(tasks.support_x, tasks.support_y)
    assert isinstance(adapted.guide, DeltaGuide)
    torch.testing.assert_close(adapted.guide.loc, adapted.flat())
    draws = Predictive(maml.model, guide=adapted.guide, num_samples=3)(tasks.query_x)["theta"]
    torch.testing.assert_close(draws, adapted.flat().expand(3, 2, -1))
    with pytest.raises(ShapeError, match="holds 2 task posteriors"):
        Predictive(maml.model, guide=adapted.guide, num_samples=1)(tasks.query_x[:1])
    vml = bm.VariationalMetaLearner((1, 8, 1))
    low = vml.adapt(tasks.support_x, tasks.support_y, guide="lowrank", rank=2, steps=3)
    guide = low.guide
    assert isinstance(guide, LowRankGuide)
    assert guide.cov_factor.shape == (2, bmaml.fnet.num_params, 2)
    torch.testing.assert_close(guide.cov_diag, low.cov_diag)
    site = _draw(guide, tasks.query_x)
    want = torch.distributions.LowRankMultivariateNormal(low.loc, low.cov_factor, low.cov_diag)
    torch.testing.assert_close(site["fn"].log_prob(site["value"]), want.log_prob(site["value"]))
