import math
from statistics import NormalDist

import pytest
import torch

from bayesmeta import metrics
from bayesmeta.errors import ShapeError
from bayesmeta.predictions.prediction import Prediction
from bayesmeta.scoring.calibration import (
    COVERAGE_LEVELS,
    PACOH_LEVELS,
    calibration_curve,
    coverage_curve,
    pit_values,
    regression_calibration_error,
)

N01 = NormalDist()


def _gaussian_tasks(t=40, n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn((t, n, 1), generator=g, dtype=torch.float64) * 3
    scale = torch.rand((t, 1, 1), generator=g, dtype=torch.float64) * 2 + 0.2
    y = mean + scale * torch.randn((t, n, 1), generator=g, dtype=torch.float64)
    return mean, scale, y


def _expected_error(freq_of_z) -> float:
    """Mean |P(F(y) <= q) - q| over PACOH's levels, where P(...) = freq_of_z(z_q)."""
    return sum(abs(freq_of_z(N01.inv_cdf(q)) - q) for q in PACOH_LEVELS) / len(PACOH_LEVELS)


def test_default_levels_are_the_authors_linspace():
    assert len(PACOH_LEVELS) == 20
    torch.testing.assert_close(
        torch.tensor(PACOH_LEVELS, dtype=torch.float64),
        torch.linspace(0.05, 0.95, 20, dtype=torch.float64),
    )


def test_exact_values_on_hand_computed_cases():
    pred = Prediction.point(torch.zeros(1, 4, 1), torch.tensor(1.0))
    levels = [0.25, 0.5, 0.75]
    # F(y) = 0.5 at every point: frequencies 0, 1, 1; gaps 1/4, 1/2, 1/4
    err = regression_calibration_error(pred, torch.zeros(1, 4, 1), levels)
    torch.testing.assert_close(err, torch.tensor([1 / 3]))
    rms = regression_calibration_error(pred, torch.zeros(1, 4, 1), levels, reduction="rms")
    torch.testing.assert_close(rms, torch.tensor([math.sqrt((1 / 16 + 1 / 4 + 1 / 16) / 3)]))
    # F(y) = 1/8, 3/8, 5/8, 7/8: frequencies 1/4, 1/2, 3/4 exactly on the levels
    y = torch.tensor([[[N01.inv_cdf(k / 8)] for k in (1, 3, 5, 7)]])
    torch.testing.assert_close(regression_calibration_error(pred, y, levels), torch.tensor([0.0]))
    # default levels, half the targets far below and half far above: frequency 1/2 at
    # every level, error = mean |1/2 - q_j| over linspace(0.05, 0.95, 20) = 9/38
    y = torch.tensor([[[-10.0], [-10.0], [10.0], [10.0]]])
    err = regression_calibration_error(pred, y)
    torch.testing.assert_close(err, torch.tensor([9 / 38]))
    # every target far above: frequency 0, error = mean of the levels = 1/2
    torch.testing.assert_close(
        regression_calibration_error(pred, torch.full((1, 4, 1), 10.0)), torch.tensor([0.5])
    )
    lv, freq = calibration_curve(pred, y)
    torch.testing.assert_close(lv, torch.tensor(PACOH_LEVELS))
    torch.testing.assert_close(freq, torch.full((20,), 0.5))


def test_calibrated_gaussian_has_near_zero_error():
    mean, scale, y = _gaussian_tasks()
    pred = Prediction.point(mean, scale)
    err = regression_calibration_error(pred, y)
    assert err.shape == (40,)
    # per task, E|freq - q| ~ sqrt(2 q (1 - q) / (pi 500)), about 0.015 on average
    assert float(err.mean()) < 0.025 and float(err.max()) < 0.06
    lv, freq = calibration_curve(pred, y)  # 20k pooled targets
    assert float((freq - lv).abs().max()) < 0.02


def test_over_confident_prediction_matches_the_analytic_error():
    mean, scale, y = _gaussian_tasks(seed=1)
    pred = Prediction.point(mean, 0.5 * scale)  # half the true spread
    err = regression_calibration_error(pred, y)
    # F(y) = Phi(2 (y - m) / s) <= q  <=>  z <= z_q / 2
    want = _expected_error(lambda z: N01.cdf(z / 2))
    assert want > 0.1
    assert abs(float(err.mean()) - want) < 0.01
    assert float(err.min()) > 0.5 * want
    # over-confident: too few targets below the low quantiles, too many below the high
    lv, freq = calibration_curve(pred, y)
    assert bool((freq[:5] > lv[:5]).all()) and bool((freq[-5:] < lv[-5:]).all())


def test_under_confident_prediction_is_also_penalised():
    mean, scale, y = _gaussian_tasks(seed=2)
    err = regression_calibration_error(Prediction.point(mean, 2.0 * scale), y)
    want = _expected_error(lambda z: N01.cdf(2 * z))
    assert abs(float(err.mean()) - want) < 0.01


def test_biased_prediction_matches_the_analytic_error():
    mean, scale, y = _gaussian_tasks(seed=3)
    pred = Prediction.point(mean + scale, scale)  # one standard deviation too high
    err = regression_calibration_error(pred, y)
    # F(y) <= q  <=>  z <= z_q + 1
    want = _expected_error(lambda z: N01.cdf(z + 1))
    assert want > 0.2
    assert abs(float(err.mean()) - want) < 0.01
    lv, freq = calibration_curve(pred, y)
    assert bool((freq > lv).all())  # targets fall too often below every quantile
    rms = regression_calibration_error(pred, y, reduction="rms")
    assert bool((rms >= err - 1e-12).all())  # RMS >= mean absolute gap


def test_mixture_prediction_drawn_from_itself_is_calibrated():
    g = torch.Generator().manual_seed(4)
    f = torch.randn((30, 8, 1000, 1), generator=g)  # S = 30 posterior function samples
    pred = Prediction(f, torch.tensor(0.3))
    y = pred.sample(1, generator=g)[0]  # targets from the predictive mixture itself
    err = regression_calibration_error(pred, y)
    assert err.shape == (8,)
    assert float(err.mean()) < 0.025  # MC level about 0.01
    # the same function samples as a too-narrow point prediction are miscalibrated
    point = Prediction.point(f.mean(0), torch.tensor(0.3))
    assert float(regression_calibration_error(point, y).mean()) > 0.1


def test_empirical_cdf_without_noise_model():
    g = torch.Generator().manual_seed(5)
    f = torch.randn((400, 5, 1000, 1), generator=g, dtype=torch.float64)
    y = torch.randn((5, 1000, 1), generator=g, dtype=torch.float64)
    err = regression_calibration_error(Prediction(f), y)
    assert float(err.mean()) < 0.025  # MC level about 0.01


def test_batch_dims_and_multi_output_pooling():
    g = torch.Generator().manual_seed(6)
    mean = torch.zeros(3, 2, 10, 2)
    y = torch.randn((3, 2, 10, 2), generator=g)
    pred = Prediction.point(mean, torch.tensor([1.0, 1.0]))
    err = regression_calibration_error(pred, y, levels=[0.5])
    assert err.shape == (3, 2)
    want = ((y <= 0).float().mean(dim=(-1, -2)) - 0.5).abs()
    torch.testing.assert_close(err, want)
    _, freq = calibration_curve(pred, y, levels=[0.5])
    torch.testing.assert_close(freq, (y <= 0).float().mean().reshape(1))


@pytest.mark.parametrize(
    ("levels", "match"),
    [([], "levels must be a non-empty"), ([0.5, 1.5], "levels must lie in"), ([[0.5]], "1-D")],
)
def test_rejects_bad_levels(levels, match):
    pred = Prediction.point(torch.zeros(1, 3, 1), torch.tensor(1.0))
    with pytest.raises(ValueError, match=match):
        regression_calibration_error(pred, torch.zeros(1, 3, 1), levels)


def test_rejects_bad_targets_and_reduction():
    pred = Prediction.point(torch.zeros(2, 3, 1), torch.tensor(1.0))
    with pytest.raises(ShapeError, match=r"y must have the prediction's shape"):
        regression_calibration_error(pred, torch.zeros(1, 3, 1))
    with pytest.raises(ValueError, match="reduction"):
        regression_calibration_error(pred, torch.zeros(2, 3, 1), reduction="max")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prediction must be a Prediction"):
        regression_calibration_error(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1))  # type: ignore[arg-type]
    empty = Prediction.point(torch.zeros(2, 0, 1), torch.tensor(1.0))
    with pytest.raises(ValueError, match="at least one target"):
        calibration_curve(empty, torch.zeros(2, 0, 1))


def _ks_uniform(u):
    u = u.reshape(-1).double().sort().values
    i = torch.arange(1, u.numel() + 1, dtype=u.dtype)
    return float(torch.maximum(i / u.numel() - u, u - (i - 1) / u.numel()).max())


def test_pit_values_of_a_calibrated_prediction_are_uniform():
    mean, scale, y = _gaussian_tasks()
    u = pit_values(Prediction.point(mean, scale), y)
    assert u.shape == (40, 500)
    # 20k values: a uniform sample stays below 1.36 / sqrt(20000) = 0.0096 w.p. 0.95
    assert _ks_uniform(u) < 0.012
    counts = torch.histc(u.reshape(-1), 10, 0, 1) / u.numel()
    assert float((counts - 0.1).abs().max()) < 0.01


def test_pit_values_of_an_over_confident_prediction_are_u_shaped():
    mean, scale, y = _gaussian_tasks(seed=1)
    u = pit_values(Prediction.point(mean, 0.5 * scale), y)
    assert _ks_uniform(u) > 0.1
    freq = torch.histc(u.reshape(-1), 10, 0, 1) / u.numel()
    # F(y) = Phi(2 z): P(F < 0.1) = Phi(z_0.1 / 2) = 0.26 in each edge bin,
    # P(0.4 < F < 0.5) = Phi(0) - Phi(z_0.4 / 2) = 0.05 in each middle bin
    edge, middle = N01.cdf(N01.inv_cdf(0.1) / 2), 0.5 - N01.cdf(N01.inv_cdf(0.4) / 2)
    assert float(freq[0]) == pytest.approx(edge, abs=0.01)
    assert float(freq[-1]) == pytest.approx(edge, abs=0.01)
    assert float(freq[4]) == pytest.approx(middle, abs=0.01)
    assert float(freq[5]) == pytest.approx(middle, abs=0.01)


def test_pit_values_flatten_points_and_outputs_in_order():
    g = torch.Generator().manual_seed(7)
    pred = Prediction.point(torch.zeros(3, 2, 10, 2), torch.tensor([1.0, 2.0]))
    y = torch.randn((3, 2, 10, 2), generator=g)
    u = pit_values(pred, y)
    assert u.shape == (3, 2, 20)
    torch.testing.assert_close(u[1, 0, 2 * 4 + 1], pred.cdf(y)[1, 0, 4, 1])
    with pytest.raises(ShapeError, match="y must have the prediction's shape"):
        pit_values(pred, y[0])


def test_coverage_curve_of_a_calibrated_gaussian_matches_the_nominal_levels():
    mean, scale, y = _gaussian_tasks(seed=8)
    pred = Prediction.point(mean, scale)
    lv, observed = coverage_curve(pred, y)
    torch.testing.assert_close(lv, torch.tensor(COVERAGE_LEVELS, dtype=torch.float64))
    # 20k pooled targets: standard error at most sqrt(0.25 / 20000) = 0.0035
    assert float((observed - lv).abs().max()) < 0.015
    # the 90% interval agrees with metrics.coverage (equal-sized tasks: the same pooled mean)
    _, at_90 = coverage_curve(pred, y, [0.9])
    assert float(at_90) == pytest.approx(float(metrics.coverage(pred, y, 0.9).mean()), abs=1e-4)


def test_coverage_curve_of_an_over_confident_prediction_is_lower():
    mean, scale, y = _gaussian_tasks(seed=9)
    lv, observed = coverage_curve(Prediction.point(mean, 0.5 * scale), y)
    # the central l-interval of N(m, s^2 / 4) holds |z| <= z_{(1+l)/2} / 2
    want = torch.tensor(
        [2 * N01.cdf(N01.inv_cdf((1 + q) / 2) / 2) - 1 for q in COVERAGE_LEVELS],
        dtype=torch.float64,
    )
    assert bool((observed < lv - 0.02).all())
    assert float((observed - want).abs().max()) < 0.015


def test_coverage_curve_exact_values_and_bad_levels():
    pred = Prediction.point(torch.zeros(1, 4, 1), torch.tensor(1.0))
    y = torch.tensor([[[-2.0], [-0.1], [0.1], [2.0]]])
    _, observed = coverage_curve(pred, y, levels=[0.0, 0.5, 0.99, 1.0])
    torch.testing.assert_close(observed, torch.tensor([0.0, 0.5, 1.0, 1.0]))
    with pytest.raises(ValueError, match="levels must lie in"):
        coverage_curve(pred, y, levels=[1.5])
    with pytest.raises(TypeError, match="prediction must be a Prediction"):
        coverage_curve(y, y)  # type: ignore[arg-type]
