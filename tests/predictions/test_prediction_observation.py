"""Predictions with an observation model f -> Distribution instead of Gaussian noise."""

import math

import pyro.distributions as dist
import pytest
import torch

from bayesmeta.predictions.prediction import Prediction
from bayesmeta.scoring.metrics import crps

#: t_{0.95} with 4 degrees of freedom (standard tables): 2.131847.
T95_DF4 = 2.131847


def _student_t(f):
    return dist.StudentT(4.0, f, 0.3).to_event(1)


def _samples(s=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(s, 2, 7, 1, generator=g)  # [S, T, N, O]


def _student_t_log_density(y, loc, scale, df):
    z = (y - loc) / scale
    return (
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - math.log(scale)
        - (df + 1) / 2 * torch.log1p(z * z / df)
    )


def test_log_prob_is_the_exact_mixture_of_the_observation_densities():
    f = _samples()
    y = torch.randn(2, 7, 1, generator=torch.Generator().manual_seed(1))
    pred = Prediction(f, observation=_student_t)
    assert pred.has_noise_model
    per = _student_t_log_density(y, f, 0.3, 4.0).sum(-1)  # [S, T, N]
    want = torch.logsumexp(per, 0) - math.log(f.shape[0])
    got = pred.log_prob(y)
    assert got.shape == (2, 7)
    torch.testing.assert_close(got, want)
    # mean and spreads: the Student-t's own mean and variance (0.3^2 * df / (df - 2))
    torch.testing.assert_close(pred.mean, f.mean(0))
    torch.testing.assert_close(pred.epistemic_std, f.std(0, unbiased=False))
    torch.testing.assert_close(pred.aleatoric_std, torch.full_like(pred.mean, 0.3 * math.sqrt(2)))
    torch.testing.assert_close(
        pred.std, (f.var(0, unbiased=False) + 0.09 * 2).sqrt(), rtol=1e-5, atol=1e-6
    )


def test_a_normal_observation_model_agrees_with_the_closed_form_noise_path():
    f = _samples(s=5)
    sigma = 0.25
    y = f.mean(0) + 0.4 * torch.randn(2, 7, 1, generator=torch.Generator().manual_seed(2))
    obs = Prediction(f, observation=lambda v: dist.Normal(v, sigma).to_event(1))
    closed = Prediction(f, torch.tensor(sigma))
    torch.testing.assert_close(obs.log_prob(y), closed.log_prob(y))
    torch.testing.assert_close(obs.cdf(y), closed.cdf(y))  # a Normal has a closed-form CDF
    torch.testing.assert_close(obs.mean, closed.mean)
    torch.testing.assert_close(obs.std, closed.std)
    torch.testing.assert_close(obs.aleatoric_std, closed.aleatoric_std)
    # intervals and quantiles by Monte Carlo (about 2000 draws) against bisection
    for level in (0.5, 0.9):
        lo_mc, hi_mc = obs.interval(level)
        lo, hi = closed.interval(level)
        assert float((lo_mc - lo).abs().max()) < 0.25 * sigma
        assert float((hi_mc - hi).abs().max()) < 0.25 * sigma
    torch.testing.assert_close(obs.quantile(0.5), closed.quantile(0.5), atol=0.1 * sigma, rtol=0)
    # the CRPS from Monte Carlo draws is close to the closed-form one
    got, want = crps(obs, y), crps(closed, y)
    assert got.shape == want.shape == (2,)
    torch.testing.assert_close(got, want, atol=0.02 * sigma, rtol=0.02)


def test_point_prediction_crps_with_a_normal_observation_model():
    mean = torch.zeros(1, 50, 1)
    y = torch.linspace(-1, 1, 50).reshape(1, 50, 1)
    obs = Prediction(mean.unsqueeze(0), observation=lambda v: dist.Normal(v, 0.5).to_event(1))
    z = y / 0.5
    std_normal = torch.distributions.Normal(0.0, 1.0)
    by_hand = 0.5 * (
        z * (2 * std_normal.cdf(z) - 1) + 2 * std_normal.log_prob(z).exp() - 1 / math.sqrt(math.pi)
    )
    torch.testing.assert_close(crps(obs, y), by_hand.mean((-1, -2)), atol=0.01, rtol=0.02)


def test_student_t_quantiles_and_cdf_by_monte_carlo_match_the_t_distribution():
    f = torch.tensor([0.7]).reshape(1, 1, 1, 1)  # one function sample, one point
    pred = Prediction(f, observation=_student_t)
    q05, q95 = float(pred.quantile(0.05)), float(pred.quantile(0.95))
    # a large independent sample of the same Student-t, built as z / sqrt(chi2_4 / 4)
    g = torch.Generator().manual_seed(11)
    z = torch.randn(200_000, generator=g, dtype=torch.float64)
    chi2 = torch.randn(200_000, 4, generator=g, dtype=torch.float64).pow(2).sum(-1)
    big = 0.7 + 0.3 * z / (chi2 / 4).sqrt()
    ref05, ref95 = torch.quantile(big, torch.tensor([0.05, 0.95], dtype=big.dtype)).tolist()
    # ~2000 draws estimate a 5% quantile to about 0.026 here (a Normal's would be 0.15 off)
    assert abs(q95 - ref95) < 0.08 and abs(q05 - ref05) < 0.08
    # and the tabulated quantile t_{0.95}(4)
    assert abs(q95 - (0.7 + 0.3 * T95_DF4)) < 0.08
    assert abs(q05 - (0.7 - 0.3 * T95_DF4)) < 0.08
    assert abs(ref95 - (0.7 + 0.3 * T95_DF4)) < 0.01
    lo, hi = pred.interval(0.9)
    assert float(lo) == q05 and float(hi) == q95
    # the CDF at the tabulated quantiles, by the fraction of draws below
    at = torch.tensor([0.7 + 0.3 * T95_DF4]).reshape(1, 1, 1)
    assert abs(float(pred.cdf(at)) - 0.95) < 0.015
    assert abs(float(pred.cdf(2 * 0.7 - at)) - 0.05) < 0.015
    assert abs(float(pred.cdf(torch.full((1, 1, 1), 0.7))) - 0.5) < 0.04


def test_mc_draws_are_seeded_and_leave_the_global_generator_alone():
    f = _samples(s=3)
    pred = Prediction(f, observation=_student_t)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a = pred.mc_draws()
    b = pred.mc_draws()
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    m = a.shape[0]
    assert a.shape[1:] == (2, 7, 1) and m % 3 == 0 and 1900 <= m <= 2100  # about 2000 draws
    # draws of each function sample follow its Student-t: mean f_s, variance 0.09 * 2
    per = a.reshape(m // 3, 3, 2, 7, 1)
    torch.testing.assert_close(per.mean(0), f, atol=0.07, rtol=0)
    # quantile and cdf read the same seeded draws, so they repeat exactly
    assert torch.equal(pred.quantile(0.3), pred.quantile(0.3))
    y = torch.zeros(2, 7, 1)
    assert torch.equal(pred.cdf(y), pred.cdf(y))
    assert torch.equal(torch.get_rng_state(), state)
    # many function samples: at least 8 draws each
    many = Prediction(_samples(s=400), observation=_student_t)
    assert many.mc_draws().shape[0] >= 400 * 8


def test_sample_draws_from_the_observation_model():
    f = torch.zeros(1, 1, 1, 1)
    pred = Prediction(f, observation=_student_t)
    g = torch.Generator().manual_seed(0)
    draws = pred.sample(20_000, generator=g)
    assert draws.shape == (20_000, 1, 1, 1)
    q = torch.quantile(draws.reshape(-1), torch.tensor([0.05, 0.95]))
    torch.testing.assert_close(q, torch.tensor([-0.3, 0.3]) * T95_DF4, atol=0.03, rtol=0)
    again = pred.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_an_observation_model_and_a_noise_scale_are_exclusive():
    f = _samples()
    with pytest.raises(ValueError, match="not both"):
        Prediction(f, noise_scale=torch.tensor(0.1), observation=_student_t)
    with pytest.raises(TypeError, match="callable"):
        Prediction(f, observation="student_t")
    assert not Prediction(f).has_noise_model
    assert Prediction(f, torch.tensor(0.1)).has_noise_model
