"""PSIS k-hat: Pyro's log weights, known answers on a conjugate model, learners' posteriors."""

import math

import pyro
import pytest
import torch
from pyro import poutine

import bayesmeta as bm
from bayesmeta.diagnostics.vi_quality import (
    khat_reading,
    log_joint,
    pareto_khat,
    psis_diagnostic,
    vi_quality,
)
from bayesmeta.guides import NormalGuide
from bayesmeta.model import TaskModel
from bayesmeta.posteriors import GaussianTaskPosterior, LowRankTaskPosterior
from bayesmeta.tasks import Sinusoid
from tests.diagnostics.conjugate import exact_posterior, linear_model


def test_log_weights_equal_pyros_traces():
    fnet, prior, lik, x, y = linear_model()
    loc = torch.randn(2, 3, dtype=torch.float64)
    log_scale = torch.full((2, 3), -1.0, dtype=torch.float64)
    post = GaussianTaskPosterior(fnet, loc, log_scale)
    theta = post.sample(4, generator=torch.Generator().manual_seed(1))
    ours = log_joint(fnet, prior, lik, theta, x, y) - post.log_prob(theta)
    model, guide = TaskModel(fnet, prior, lik, learn=True), NormalGuide(loc, log_scale.exp())
    for s in range(4):
        data = {"theta": theta[s]}
        mt = poutine.trace(poutine.condition(model, data=data)).get_trace(x, y)
        gt = poutine.trace(poutine.condition(guide, data=data)).get_trace(x, y)
        # per-task log weights: the sites' log densities, summed within each task
        per_task = sum(
            site["fn"].log_prob(site["value"])
            for site in mt.nodes.values()
            if site["type"] == "sample"
        ) - gt.nodes["theta"]["fn"].log_prob(theta[s])
        torch.testing.assert_close(ours[s], per_task)


def test_exact_posterior_gives_a_small_khat_and_a_narrow_one_a_large_khat():
    fnet, prior, lik, x, y = linear_model(t=3)
    mean, cov = exact_posterior(x, y)
    diag = torch.linalg.eigvalsh(cov)[:, :1].expand(-1, 3) * 0.5
    factor = torch.linalg.cholesky(cov - torch.diag_embed(diag))
    exact = LowRankTaskPosterior(fnet, mean, factor, diag)
    g = torch.Generator().manual_seed(0)
    good = psis_diagnostic(exact, prior, lik, x, y, num_samples=2000, generator=g)
    assert bool((good.khat < 0.2).all()), good.khat
    assert good.readings == ["good"] * 3
    torch.testing.assert_close(good.relative_ess, torch.ones(3, dtype=torch.float64))
    # mean-field at half the exact marginal widths: far too narrow
    narrow = GaussianTaskPosterior(fnet, mean, (0.5 * cov.diagonal(dim1=-2, dim2=-1).sqrt()).log())
    bad = psis_diagnostic(narrow, prior, lik, x, y, num_samples=2000, generator=g)
    assert bool((bad.khat > 0.7).all()), bad.khat
    assert bad.fractions()["unreliable"] == 1.0


def test_khat_agrees_with_pyros_psis_diagnostic():
    fnet, prior, lik, x, y = linear_model(t=1)
    mean, cov = exact_posterior(x, y)
    loc, log_scale = mean, (0.8 * cov.diagonal(dim1=-2, dim2=-1).sqrt()).log()
    ours = psis_diagnostic(
        GaussianTaskPosterior(fnet, loc, log_scale),
        prior,
        lik,
        x,
        y,
        num_samples=20000,
        generator=torch.Generator().manual_seed(0),
    )
    pyro.set_rng_seed(0)
    theirs = pyro.infer.importance.psis_diagnostic(
        TaskModel(fnet, prior, lik, learn=True),
        NormalGuide(loc, log_scale.exp()),
        x,
        y,
        num_particles=20000,
    )
    assert abs(float(ours.khat[0]) - theirs) < 0.1


def test_pareto_khat_of_known_tails():
    g = torch.Generator().manual_seed(0)
    u = torch.rand(4000, generator=g, dtype=torch.float64)
    for k in (0.3, 0.9):  # generalised Pareto draws with shape k: log weights
        lw = torch.log((u.pow(-k) - 1) / k)
        assert abs(float(pareto_khat(lw.unsqueeze(-1))[0]) - k) < 0.1
    assert float(pareto_khat(torch.zeros(200, 1))[0]) == -math.inf
    with pytest.raises(ValueError, match="at least 100 draws"):
        pareto_khat(torch.zeros(50, 2))


def test_readings():
    assert [khat_reading(k) for k in (0.2, 0.6, 0.9)] == ["good", "usable", "unreliable"]


def test_vi_quality_of_learners_posteriors():
    batch = Sinusoid(10, 5, seed=0, noise_std=0.1).sample(4)
    torch.manual_seed(0)
    bmaml = bm.BayesianMAML((1, 8, 1), inner_steps=3)
    vml = bm.VariationalMetaLearner((1, 8, 1), adapt_steps=20)
    for learner in (bmaml, vml):
        post = learner.adapt(batch.support_x, batch.support_y)
        q = vi_quality(learner, post, batch.support_x, batch.support_y, num_samples=300)
        assert q.khat.shape == (4,)
        assert bool(torch.isfinite(q.khat).all())
        assert q.log_weights.shape == (300, 4)
    with pytest.raises(TypeError, match="supports BayesianMAML"):
        vi_quality(bm.MAML((1, 8, 1)), post, batch.support_x, batch.support_y)
    with pytest.raises(ValueError, match="support_x"):
        vi_quality(vml, post, batch.support_x[:2], batch.support_y[:2])


def test_svi_posteriors_carry_their_elbo_trace():
    batch = Sinusoid(10, 5, seed=0, noise_std=0.1).sample(3)
    torch.manual_seed(0)
    vml = bm.VariationalMetaLearner((1, 8, 1), adapt_steps=200, adapt_lr=0.02)
    for guide in ("normal", "lowrank"):
        post = vml.adapt(batch.support_x, batch.support_y, guide=guide)
        trace = post.elbo_trace
        assert trace is not None and trace.shape == (200,)
        assert float(trace[-20:].mean()) < float(trace[:20].mean())  # the fit made progress
        one = vml.adapt(batch.support_x[0], batch.support_y[0], guide=guide, steps=7)
        assert one.elbo_trace is not None and one.elbo_trace.shape == (7,)
