import math

import pytest
import torch

from bayesmeta import Prediction
from bayesmeta.errors import ShapeError


def test_point_prediction_is_gaussian():
    mean = torch.tensor([[0.0], [1.0]])
    pred = Prediction.point(mean, torch.tensor(2.0))
    assert pred.num_samples == 1
    torch.testing.assert_close(pred.std, torch.full((2, 1), 2.0))
    torch.testing.assert_close(pred.epistemic_std, torch.zeros(2, 1))
    y = torch.tensor([[0.5], [-1.0]])
    want = torch.distributions.Normal(mean, 2.0).log_prob(y).sum(-1)
    torch.testing.assert_close(pred.log_prob(y), want)
    lo, hi = pred.interval(0.9)
    torch.testing.assert_close(hi - mean, torch.full((2, 1), 1.6448536 * 2.0))
    torch.testing.assert_close(mean - lo, torch.full((2, 1), 1.6448536 * 2.0))


def test_mixture_quantiles_and_log_prob_match_monte_carlo():
    torch.manual_seed(0)
    f = torch.tensor([-1.0, 0.0, 3.0]).reshape(3, 1, 1)
    pred = Prediction(f, torch.tensor(0.5))
    torch.testing.assert_close(pred.mean, torch.tensor([[2.0 / 3.0]]))
    # total variance = var(f) + sigma^2
    var_f = f.var(0, unbiased=False)
    torch.testing.assert_close(pred.std**2, var_f + 0.25)
    lo, hi = pred.interval(0.8)
    torch.testing.assert_close(pred.cdf(lo), torch.tensor([[0.1]]), atol=1e-5, rtol=0)
    torch.testing.assert_close(pred.cdf(hi), torch.tensor([[0.9]]), atol=1e-5, rtol=0)
    draws = pred.sample(200_000, generator=torch.Generator().manual_seed(1))
    assert abs(float((draws <= lo).float().mean()) - 0.1) < 0.005
    y = torch.tensor([[0.2]])
    dens = sum(torch.distributions.Normal(float(m), 0.5).log_prob(y).exp() for m in f.flatten()) / 3
    torch.testing.assert_close(pred.log_prob(y), dens.log().squeeze(-1))


def test_no_noise_model_errors_clearly():
    pred = Prediction.point(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="no noise model"):
        pred.log_prob(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="no noise model"):
        pred.interval(0.9)
    with pytest.raises(ValueError, match="no noise model"):
        _ = pred.std
    assert pred.epistemic_std.abs().sum() == 0


def test_validation():
    with pytest.raises(ShapeError):
        Prediction(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="positive"):
        Prediction.point(torch.zeros(3, 1), torch.tensor(0.0))
    with pytest.raises(ShapeError, match="does not broadcast"):
        Prediction.point(torch.zeros(3, 1), torch.ones(2))
    with pytest.raises(ShapeError, match=r"y \(the targets\) must have the prediction's shape"):
        Prediction.point(torch.zeros(3, 1), torch.tensor(1.0)).log_prob(torch.zeros(4, 1))
    with pytest.raises(ValueError, match="level"):
        Prediction.point(torch.zeros(3, 1), torch.tensor(1.0)).interval(1.0)


def test_interval_of_sample_only_prediction_uses_empirical_quantiles():
    f = torch.arange(101.0).reshape(101, 1, 1)
    lo, hi = Prediction(f).interval(0.9)
    assert math.isclose(float(lo), 5.0) and math.isclose(float(hi), 95.0)
