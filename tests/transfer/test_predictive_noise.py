"""TransferLearner.fit_noise_scale: a predictive noise calibrated on held-out points."""

import pytest
import torch
from torch import nn

from bayesmeta.learners.noise_calibration import residual_noise_variance
from bayesmeta.tasks import TaskBatch
from bayesmeta.transfer import BayesianLastLayer, TransferLearner
from bayesmeta.transfer.predictive_noise import with_noise


def linear_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(1, 1)


def forecast_tasks(t: int, seed: int, k: int = 4, q: int = 8) -> TaskBatch:
    """Lines plus a curvature that only shows at the later (query) inputs.

    A straight line fitted to all points of a task explains them up to a small
    scatter; forecast from the first ``k`` points it misses the bend, so the
    query errors are far larger than the in-sample noise.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(0, 1, k + q).expand(t, -1).unsqueeze(-1)
    slope = torch.randn(t, 1, 1, generator=g)
    bend = 2.0 * torch.randn(t, 1, 1, generator=g)
    y = slope * x + bend * x.pow(4) + 0.05 * torch.randn(t, k + q, 1, generator=g)
    return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])


def coverage(learner: TransferLearner, batch: TaskBatch) -> float:
    post = learner.adapt(batch.support_x, batch.support_y)
    pred = post.predict(batch.query_x, num_samples=200, generator=torch.Generator().manual_seed(1))
    lower, upper = pred.interval(0.9)
    return ((batch.query_y >= lower) & (batch.query_y <= upper)).float().mean().item()


@pytest.fixture(scope="module")
def fitted() -> TransferLearner:
    train = forecast_tasks(20, seed=0)
    learner = TransferLearner(linear_net(), steps=300, lr=0.05)
    x = torch.cat([train.support_x, train.query_x], 1)
    y = torch.cat([train.support_y, train.query_y], 1)
    return learner.fit_prior(x, y)


def test_calibration_widens_forecast_intervals_to_nominal(fitted: TransferLearner) -> None:
    """In-sample noise under-covers forecasts; the calibrated noise covers 90% or a bit more."""
    test = forecast_tasks(40, seed=2)
    before = coverage(fitted, test)
    noise = fitted.fit_noise_scale(forecast_tasks(20, seed=1))
    after = coverage(fitted, test)
    assert fitted.noise_scale_ is not None
    assert noise.shape == (1,)
    assert bool((noise > 2 * fitted.noise_scale_).all())
    assert before < 0.87
    assert after > before + 0.05
    assert 0.88 <= after <= 0.98
    fitted.predictive_noise_ = None


def test_the_noise_is_the_residual_estimate_and_adaptation_is_untouched() -> None:
    """The scale equals residual_noise_variance of the draws; the posterior is unchanged."""
    learner = TransferLearner(linear_net(), method="map", prior_scale=1.0, steps=200, lr=0.05)
    batch = forecast_tasks(6, seed=3)
    before = learner.adapt(batch.support_x, batch.support_y)
    noise = learner.fit_noise_scale(batch)
    after = learner.adapt(batch.support_x, batch.support_y)
    torch.testing.assert_close(after.flat(), before.flat())
    draws = before.predict(batch.query_x).function_samples
    expected = residual_noise_variance(draws, batch.query_y).sqrt()
    torch.testing.assert_close(noise, torch.maximum(expected, torch.tensor([0.1])))
    # Each task's own fitted noise is kept where it is larger than the calibration.
    assert before.noise_scale is not None and after.noise_scale is not None
    torch.testing.assert_close(after.noise_scale, torch.maximum(before.noise_scale, noise))


def test_state_dict_keeps_the_predictive_noise_and_fit_prior_resets_it() -> None:
    learner = TransferLearner(linear_net(), steps=50)
    batch = forecast_tasks(4, seed=4)
    noise = learner.fit_noise_scale(batch)
    other = TransferLearner(linear_net(), steps=50)
    other.load_state_dict(learner.state_dict())
    assert other.predictive_noise_ is not None
    torch.testing.assert_close(other.predictive_noise_, noise)
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    assert learner.fit_prior(x, y).predictive_noise_ is None


def test_unsupported_calls_are_refused() -> None:
    batch = forecast_tasks(3, seed=5)
    with pytest.raises(ValueError, match="laplace"):
        TransferLearner(linear_net(), method="laplace").fit_noise_scale(batch)
    empty = TaskBatch(batch.support_x, batch.support_y, batch.query_x[:, :0], batch.query_y[:, :0])
    with pytest.raises(ValueError, match="query"):
        TransferLearner(linear_net()).fit_noise_scale(empty)
    classifier = TransferLearner(nn.Linear(1, 3), likelihood="categorical")
    with pytest.raises(ValueError, match="regression"):
        classifier.fit_noise_scale(batch)


def test_with_noise_keeps_the_layout_and_ignores_none() -> None:
    learner = TransferLearner(linear_net(), method="map", prior_scale=1.0, steps=5)
    batch = forecast_tasks(3, seed=6)
    post = learner.adapt(batch.support_x, batch.support_y)
    assert with_noise(post, None) is post
    wide = with_noise(post, torch.tensor([5.0]))
    assert wide.noise_scale is not None and post.noise_scale is not None
    assert wide.noise_scale.shape == post.noise_scale.shape
    assert bool((wide.noise_scale == 5.0).all())


def test_predictive_noise_is_the_scale_predictions_use() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    transfer = TransferLearner(net)
    assert transfer.predictive_noise() is None  # nothing fitted yet
    transfer.noise_scale_ = torch.tensor([0.2])
    torch.testing.assert_close(transfer.predictive_noise(), torch.tensor([0.2]))
    transfer.predictive_noise_ = torch.tensor([0.5])  # calibrated: what predictions use
    torch.testing.assert_close(transfer.predictive_noise(), torch.tensor([0.5]))
    head = BayesianLastLayer(net, num_outputs=1, noise_scale=0.3)
    torch.testing.assert_close(head.predictive_noise(), torch.tensor([0.3]))
