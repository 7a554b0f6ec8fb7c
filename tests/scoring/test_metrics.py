import math

import pytest
import torch

from bayesmeta import Prediction, metrics


def test_mse_nll_coverage_per_task():
    mean = torch.zeros(2, 4, 1)
    y = torch.tensor([[[1.0], [-1.0], [0.5], [3.0]], [[0.0], [0.0], [0.0], [0.0]]])
    pred = Prediction.point(mean, torch.tensor(1.0))
    torch.testing.assert_close(metrics.mse(pred, y), torch.tensor([(1 + 1 + 0.25 + 9) / 4, 0.0]))
    want_nll = 0.5 * math.log(2 * math.pi) + 0.5 * (y**2).mean((-1, -2))
    torch.testing.assert_close(metrics.nll(pred, y), want_nll)
    torch.testing.assert_close(metrics.coverage(pred, y, 0.9), torch.tensor([0.75, 1.0]))


def test_crps_gaussian_closed_form():
    # CRPS(N(0, 1), 0) = (sqrt(2) - 1) / sqrt(pi)
    pred = Prediction.point(torch.zeros(1, 1, 1), torch.tensor(1.0))
    want = (math.sqrt(2) - 1) / math.sqrt(math.pi)
    assert float(metrics.crps(pred, torch.zeros(1, 1, 1))) == pytest.approx(want, rel=1e-5)


def test_crps_mixture_matches_monte_carlo():
    torch.manual_seed(0)
    f = torch.tensor([-1.0, 0.5, 2.0]).reshape(3, 1, 1, 1)
    pred = Prediction(f, torch.tensor(0.7))
    y = torch.tensor([[[0.3]]])
    g = torch.Generator().manual_seed(0)
    x1 = pred.sample(400_000, generator=g)
    x2 = pred.sample(400_000, generator=g)
    mc = (x1 - y).abs().mean() - 0.5 * (x1 - x2).abs().mean()
    assert float(metrics.crps(pred, y)) == pytest.approx(float(mc), abs=5e-3)


def test_crps_of_samples_without_noise():
    f = torch.tensor([0.0, 2.0]).reshape(2, 1, 1, 1)
    # E|X - 1| = 1, E|X - X'| = 1 -> CRPS = 0.5
    assert float(metrics.crps(Prediction(f), torch.ones(1, 1, 1))) == pytest.approx(0.5)


def test_mean_ci():
    m, h = metrics.mean_ci(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert m == pytest.approx(2.5)
    assert h == pytest.approx(1.959964 * math.sqrt(5 / 3) / 2, rel=1e-5)
    assert metrics.mean_ci(torch.tensor([7.0])) == (7.0, 0.0)
    with pytest.raises(ValueError):
        metrics.mean_ci(torch.tensor([]))
