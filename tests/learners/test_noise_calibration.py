"""The calibrated predictive noise: intervals wide early, calibrated on the training tasks."""

from __future__ import annotations

import pytest
import torch
from pyro.infer import Predictive

import bayesmeta as bm
from bayesmeta.learners import AdaptedPredictor
from bayesmeta.learners.noise_calibration import (
    CalibratedNoise,
    function_draws,
    residual_noise_variance,
)
from bayesmeta.nets import MLP
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.tasks import Sinusoid, SinusoidOrLine


def test_residual_noise_variance_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    out = torch.randn(4, 3, 5, 2, generator=g)
    y = torch.randn(3, 5, 2, generator=g)
    mean, var = out.mean(0), out.var(0, unbiased=False)
    moment = ((y - mean) ** 2 - var).mean(dim=(0, 1))
    got = residual_noise_variance(out, y)
    assert bool((got >= moment).all())
    # the quantile part: the 90% intervals with the estimate cover 90% of the points
    half = 1.6448536 * (var + got).sqrt()
    covered = ((y - mean).abs() <= half + 1e-6).double().mean(dim=(0, 1))
    assert bool((covered >= 0.9 - 1e-9).all())
    # a point estimate with equal errors: the mean squared error (both estimates agree)
    point = residual_noise_variance(y.unsqueeze(0) + 0.5, y)
    torch.testing.assert_close(point, torch.full((2,), 0.25))


def test_running_estimate_and_non_finite_batches() -> None:
    noise = CalibratedNoise()
    assert noise.scale() is None
    y = torch.zeros(2, 3, 1)
    noise.update(torch.full((1, 2, 3, 1), 2.0), y)  # first batch: set, variance 4
    noise.update(torch.full((1, 2, 3, 1), 1.0), y, rate=0.5)  # 0.5 * 4 + 0.5 * 1
    torch.testing.assert_close(noise.variance, torch.tensor([2.5]))
    noise.update(torch.full((1, 2, 3, 1), float("nan")), y)
    torch.testing.assert_close(noise.variance, torch.tensor([2.5]))


def _coverage(learner: bm.BayesianMAML, batch: bm.TaskBatch) -> float:
    result = bm.evaluate(learner, batch).summary()
    return float(result["coverage_90"][0])


@pytest.mark.parametrize("source", [Sinusoid, SinusoidOrLine])
def test_short_runs_err_wide_not_narrow(source) -> None:
    """After a few meta-iterations the 90% intervals cover at least 85%, not 10%."""
    test = source(5, 20, seed=5).sample(60)
    for calibrate in (True, False):
        torch.manual_seed(0)
        learner = bm.BayesianMAML((1, 40, 40, 1), calibrate_noise=calibrate)
        coverages = []
        for _ in range(3):
            learner.meta_fit(source(5, 10, seed=0), 10, progress=False)
            coverages.append(_coverage(learner, test))
        if calibrate:
            assert min(coverages) >= 0.85, coverages
        else:  # the likelihood's own scale (0.1) is learned too slowly to cover anything
            assert max(coverages) < 0.5, coverages


def test_calibration_leaves_training_untouched() -> None:
    weights = []
    for calibrate in (True, False):
        torch.manual_seed(0)
        learner = bm.BayesianMAML((1, 8, 1), calibrate_noise=calibrate)
        learner.meta_fit(Sinusoid(5, 10, seed=0), 15, meta_batch_size=5, progress=False)
        weights.append(torch.cat([p.detach().reshape(-1) for p in learner.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_model_predictive_uses_the_calibrated_noise_and_adaptation_model_the_inner_one() -> None:
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 8, 1), posterior="delta")
    learner.meta_fit(Sinusoid(5, 10, seed=0), 10, meta_batch_size=5, progress=False)
    noise = learner.predictive_noise()
    assert noise is not None and float(noise) > 2 * float(learner.likelihood.scale.detach())
    task = Sinusoid(5, 10, seed=1).sample(1)[0]
    post = learner.adapt(task.support_x, task.support_y)
    draws = Predictive(learner.model, guide=post.guide, num_samples=4000)(task.query_x[None])
    spread = draws["y"][:, 0].std(0).mean()
    assert abs(float(spread) / float(noise) - 1) < 0.05
    inner = learner.adaptation_model()
    assert inner.likelihood is learner.likelihood  # type: ignore[attr-defined]


def test_fit_noise_scale_on_held_out_tasks_and_errors() -> None:
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 8, 1))
    learner.meta_fit(Sinusoid(5, 10, seed=0), 5, meta_batch_size=5, progress=False)
    held_out = Sinusoid(5, 10, seed=3).sample(20)
    scale = learner.fit_noise_scale(held_out)
    torch.testing.assert_close(learner.predictive_noise(), scale)
    fresh = bm.BayesianMAML((1, 8, 1))
    fresh.load_state_dict(learner.state_dict())
    torch.testing.assert_close(fresh.predictive_noise(), scale)
    with pytest.raises(ValueError, match="Gaussian likelihood"):
        bm.BayesianMAML((1, 8, 1), likelihood="student_t").fit_noise_scale(held_out)
    off = bm.BayesianMAML((1, 8, 1), calibrate_noise=False)
    off.meta_fit(Sinusoid(5, 10, seed=0), 2, meta_batch_size=5, progress=False)
    torch.testing.assert_close(off.predictive_noise(), off.likelihood.scale.detach())


def test_variational_short_run_errs_wide_and_training_is_untouched() -> None:
    test = Sinusoid(5, 20, seed=5).sample(40)
    results = {}
    for calibrate in (True, False):
        torch.manual_seed(0)
        learner = bm.VariationalMetaLearner((1, 40, 40, 1), calibrate_noise=calibrate)
        learner.meta_fit(Sinusoid(5, 10, seed=0), 30, num_tasks=60, progress=False)
        summary = bm.evaluate(learner, test).summary()
        weights = torch.cat([p.detach().reshape(-1) for p in learner.fnet.params()])
        results[calibrate] = (float(summary["coverage_90"][0]), float(summary["mse"][0]), weights)
    assert results[True][0] >= 0.85 and results[False][0] < 0.5, results
    torch.testing.assert_close(results[True][2], results[False][2], rtol=0, atol=0)
    assert results[True][1] == pytest.approx(results[False][1], rel=1e-5)


def test_function_draws_of_a_point_estimate_and_of_a_posterior() -> None:
    fnet = FunctionalNet(MLP((1, 8, 1)))
    params = tuple(p.detach().expand(3, *p.shape).clone() for p in fnet.params())
    qx = torch.randn(3, 4, 1)
    point = function_draws(AdaptedPredictor(fnet, params), qx, num_samples=7)
    torch.testing.assert_close(point, fnet(params, qx).unsqueeze(0))
    learner = bm.BayesianMAML((1, 8, 1))
    batch = Sinusoid(3, 4, seed=0).sample(3)
    post = learner.adapt(batch.support_x, batch.support_y)
    g = torch.Generator().manual_seed(0)
    draws = function_draws(post, batch.query_x, num_samples=7, generator=g)
    assert draws.shape == (7, 3, 4, 1)
    classifier = AdaptedPredictor(fnet, params, classification=True)
    with pytest.raises(TypeError, match="regression Prediction"):
        function_draws(classifier, qx, num_samples=1)
