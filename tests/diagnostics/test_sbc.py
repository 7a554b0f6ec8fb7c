"""Simulation-based calibration: uniform ranks for exact inference, not for overconfident."""

import pytest
import torch

import bayesmeta as bm
from bayesmeta.diagnostics.sbc import SBCResult, learner_sbc, simulation_based_calibration
from bayesmeta.posteriors import LowRankTaskPosterior
from bayesmeta.tasks import Sinusoid
from tests.diagnostics.conjugate import exact_posterior, linear_model


def conjugate_adapt(shrink: float = 1.0):
    fnet = linear_model()[0]

    def adapt(x, y):
        mean, cov = exact_posterior(x, y)
        cov = cov * shrink**2
        diag = torch.linalg.eigvalsh(cov)[:, :1].expand(-1, 3) * 0.5
        return LowRankTaskPosterior(
            fnet, mean, torch.linalg.cholesky(cov - torch.diag_embed(diag)), diag
        )

    return adapt


def test_exact_inference_gives_uniform_ranks():
    fnet, prior, lik, x, _ = linear_model(t=1)
    fx = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    result = simulation_based_calibration(
        fnet, prior, lik, conjugate_adapt(), x[0], num_simulations=500, function_x=fx, generator=g
    )
    assert result.ranks.shape == (500, 4)
    assert result.names == ("weight[0]", "bias[0]", "f(x_0)", "f(x_1)")
    assert bool((result.p_values() > 1e-3).all()), result.p_values()
    torch.testing.assert_close(
        result.mean_rank(), torch.full((4,), 0.5, dtype=torch.float64), atol=0.05, rtol=0
    )
    assert int(result.histogram(10).sum()) == 4 * 500


def test_overconfident_inference_is_flagged():
    fnet, prior, lik, x, _ = linear_model(t=1)
    g = torch.Generator().manual_seed(1)
    result = simulation_based_calibration(
        fnet, prior, lik, conjugate_adapt(shrink=0.4), x[0], num_simulations=500, generator=g
    )
    assert bool((result.p_values() < 1e-6).all())
    hist = result.histogram(10)
    # a U shape: the extreme bins hold far more than the middle ones
    assert bool((hist[:, [0, -1]].sum(1) > 3 * hist[:, 4:6].sum(1)).all())


def test_learner_sbc_runs_the_learners_adapt():
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 8, 1), inner_steps=3, noise_scale=0.3)
    x = Sinusoid(10, 0, seed=0).sample(1).support_x[0]
    result = learner_sbc(
        learner, x, num_simulations=20, num_draws=30, generator=torch.Generator().manual_seed(0)
    )
    assert isinstance(result, SBCResult)
    assert result.ranks.shape == (20, 4) and int(result.ranks.max()) <= 30
    with pytest.raises(TypeError, match="supports BayesianMAML"):
        learner_sbc(bm.MAML((1, 8, 1)), x)
    with pytest.raises(ValueError, match="weights must index"):
        learner_sbc(learner, x, weights=[10_000])
    with pytest.raises(TypeError, match="generative"):
        learner_sbc(bm.BayesianMAML((1, 8, 1), likelihood="mse"), x, num_simulations=3)
