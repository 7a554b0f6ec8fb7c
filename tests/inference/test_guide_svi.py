"""fit_guide / adapt(..., guide=...) recover a conjugate posterior; bad guides; seeding."""

import pyro
import pytest
import torch
from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

import bayesmeta as bm
from bayesmeta.inference.guide_svi import fit_guide
from bayesmeta.inference.task_svi import task_posterior_svi
from bayesmeta.model import TaskModel
from bayesmeta.model.likelihoods import GaussianLikelihood
from bayesmeta.nets import MLP, FunctionalNet
from bayesmeta.posteriors.guided import GuidePosterior

N, SIGMA = 12, 0.5
M0 = torch.tensor([0.2, -0.1])  # prior mean of (weight, bias)
S0 = torch.tensor([0.7, 0.4])  # prior standard deviations


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0.0, 3.0, N).reshape(1, N, 1)
    y = 0.8 * x - 0.3 + SIGMA * torch.randn(1, N, 1, generator=g)
    return x, y


def _posterior(x, y, m0, s0, noise_var):
    """Exact posterior of y = w x + b + noise under N(m0, diag(s0^2)) (s0=None: flat)."""
    phi = torch.cat([x[0], torch.ones(x.shape[1], 1)], 1).double()
    prec = phi.T @ phi / noise_var
    shift = phi.T @ y[0, :, 0].double() / noise_var
    if s0 is not None:
        prec = prec + torch.diag(1 / s0.double() ** 2)
        shift = shift + m0.double() / s0.double() ** 2
    cov = torch.linalg.inv(prec)
    return cov @ shift, cov, prec


def _linear_model():
    fnet = FunctionalNet(MLP((1, 1)))
    prior = bm.priors.Normal(M0, S0, learn_loc=False, learn_scale=False)
    return TaskModel(fnet, prior, GaussianLikelihood(SIGMA, learn_scale=False))


def _moments(post, n=1000, seed=1):
    s = post.sample(n, generator=torch.Generator().manual_seed(seed)).reshape(n, -1).double()
    return s.mean(0), s.std(0), torch.corrcoef(s.T)[0, 1]


def test_fit_guide_recovers_the_conjugate_posterior_with_a_full_covariance_guide(data):
    x, y = data
    mean, cov, _ = _posterior(x, y, M0, S0, SIGMA**2)
    sd = cov.diag().sqrt()
    corr = cov[0, 1] / sd.prod()
    assert float(corr) < -0.5  # a correlated posterior, so a mean-field fit would not do
    post = fit_guide(
        _linear_model(),
        x,
        y,
        AutoMultivariateNormal,
        steps=300,
        lr=0.1,
        num_particles=8,
        init_loc=M0,
        init_scale=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    assert isinstance(post, GuidePosterior)
    assert post.loc.shape == (1, 2) and post.elbo_trace.shape == (300,)
    assert float(post.elbo_trace[-20:].mean()) < float(post.elbo_trace[:20].mean())
    got_mean, got_sd, got_corr = _moments(post)
    torch.testing.assert_close(got_mean, mean, atol=float(0.15 * sd.min()), rtol=0)
    torch.testing.assert_close(got_sd, sd, rtol=0.1, atol=0)
    assert abs(float(got_corr - corr)) < 0.06
    # the summary mean is of 64 draws
    torch.testing.assert_close(post.loc[0].double(), mean, atol=float(0.5 * sd.max()), rtol=0)
    # predictions carry the likelihood's noise
    torch.testing.assert_close(post.noise_scale, torch.tensor([SIGMA]))


def test_adapt_with_an_autoguide_recovers_the_mean_field_optimum(data):
    x, y = data
    torch.manual_seed(0)
    learner = bm.BayesianMAML(MLP((1, 1)), prior_scale=0.5, noise_scale=SIGMA, learn_noise=False)
    with torch.no_grad():
        for p, v in zip(learner.net.parameters(), M0, strict=True):
            p.fill_(float(v))
    s0 = torch.full((2,), 0.5)
    mean, _, prec = _posterior(x, y, M0, s0, SIGMA**2)
    before = [p.detach().clone() for p in learner.parameters()]
    post = learner.adapt(
        x[0], y[0], guide=AutoNormal, steps=500, lr=0.05, generator=torch.Generator().manual_seed(0)
    )
    assert post.loc.shape == (2,)
    got_mean, got_sd, got_corr = _moments(post)
    # mean-field VI on a Gaussian: the exact mean, and 1 / sqrt(precision_ii) as the std
    mf_sd = prec.diag().rsqrt()
    torch.testing.assert_close(got_mean, mean, atol=float(0.25 * mf_sd.min()), rtol=0)
    torch.testing.assert_close(got_sd, mf_sd, rtol=0.1, atol=0)
    assert abs(float(got_corr)) < 0.1
    for b, p in zip(before, learner.parameters(), strict=True):
        assert torch.equal(b, p.detach()) and p.grad is None


def test_maml_with_an_autoguide_recovers_the_flat_prior_gibbs_posterior(data):
    x, y = data
    maml = bm.MAML(MLP((1, 1)))
    # flat prior, likelihood Normal(f, sqrt(1/2)): the least-squares posterior
    mean, cov, _ = _posterior(x, y, None, None, 0.5)
    sd = cov.diag().sqrt()
    post = maml.adapt(
        x[0],
        y[0],
        guide=AutoMultivariateNormal,
        steps=500,
        lr=0.05,
        generator=torch.Generator().manual_seed(0),
    )
    got_mean, got_sd, got_corr = _moments(post)
    torch.testing.assert_close(got_mean, mean, atol=float(0.25 * sd.min()), rtol=0)
    torch.testing.assert_close(got_sd, sd, rtol=0.15, atol=0)
    assert abs(float(got_corr - cov[0, 1] / sd.prod())) < 0.1


def test_guides_that_are_not_guides_are_refused(data):
    x, y = data
    model = _linear_model()
    with pytest.raises(TypeError, match="autoguide class"):
        fit_guide(model, x, y, "iaf", steps=1, lr=0.1)
    with pytest.raises(TypeError, match="autoguide class"):
        fit_guide(model, x, y, 3.0, steps=1, lr=0.1)

    def empty(x, y=None):
        with pyro.plate("tasks", x.shape[0]):
            pyro.sample("theta", pyro.distributions.Normal(torch.zeros(2), 1.0).to_event(1))

    with pytest.raises(ValueError, match="no parameters to fit"):
        fit_guide(model, x, y, empty, steps=1, lr=0.1)
    learner = bm.BayesianMAML((1, 4, 1))
    with pytest.raises(TypeError, match="autoguide class"):
        learner.adapt(x[0], y[0], guide="iaf")
    fnet = FunctionalNet(MLP((1, 4, 1)))
    prior = bm.priors.Normal(scale=0.1).bind(fnet, loc="module")
    with pytest.raises(ValueError, match="guide must be 'normal' or 'lowrank'"):
        task_posterior_svi(fnet, prior, GaussianLikelihood(), x, y, guide="iaf", steps=1, lr=0.1)


def test_a_generator_makes_fits_identical_and_leaves_the_global_rng_alone(data):
    x, y = data
    model = _linear_model()

    def fit(seed):
        return fit_guide(
            model,
            x,
            y,
            AutoNormal,
            steps=20,
            lr=0.05,
            init_loc=M0,
            init_scale=0.1,
            generator=torch.Generator().manual_seed(seed),
        )

    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b, c = fit(7), fit(7), fit(8)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.elbo_trace, b.elbo_trace)
    assert torch.equal(a.loc, b.loc)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(a.sample(5, generator=g1), b.sample(5, generator=g2))
    assert not torch.equal(a.elbo_trace, c.elbo_trace)
    # adapt with a generator is reproducible too
    learner = bm.BayesianMAML((1, 4, 1))
    runs = [
        learner.adapt(
            x[0], y[0], guide=AutoNormal, steps=5, generator=torch.Generator().manual_seed(3)
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0].elbo_trace, runs[1].elbo_trace)
    assert torch.equal(runs[0].loc, runs[1].loc)
