"""The mixed-model baseline of benchmarks/real_grouped.py: its conjugate update is exact."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "_mixed_model.py"


def _module():
    if "_mixed_model" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_mixed_model", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["_mixed_model"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["_mixed_model"]


def _joint_conditioning(beta, G, noise_var, xs, ys, xq):
    """y_query | y_support from the marginal Gaussian N(X beta, Z G Z' + sigma^2 I), one task."""
    x = torch.cat([xs, xq]).double()[:, 0]
    X = torch.stack([torch.ones_like(x), x, x * x], -1)
    Z = torch.stack([torch.ones_like(x), x], -1)
    V = Z @ G @ Z.T + noise_var * torch.eye(len(x), dtype=torch.float64)
    k = len(xs)
    mu = X @ beta
    v_ss, v_qs, v_qq = V[:k, :k], V[k:, :k], V[k:, k:]
    gain = v_qs @ torch.linalg.inv(v_ss)
    mean = mu[k:] + gain @ (ys.double()[:, 0] - mu[:k])
    cov = v_qq - gain @ v_qs.T
    return mean, cov.diagonal()


@pytest.mark.parametrize(
    "G",
    [
        torch.tensor([[0.8, 0.3], [0.3, 0.5]], dtype=torch.float64),
        torch.tensor([[0.6, 0.0], [0.0, 0.0]], dtype=torch.float64),  # singular: boundary fit
    ],
)
def test_conjugate_update_matches_joint_gaussian_conditioning(G):
    mm = _module()
    beta = torch.tensor([0.2, -0.5, 0.1], dtype=torch.float64)
    baseline = mm.MixedModelBaseline.from_params(beta, G, 0.09)
    g = torch.Generator().manual_seed(0)
    for k in (1, 3, 5):
        sx, sy = torch.randn(4, k, 1, generator=g), torch.randn(4, k, 1, generator=g)
        qx = torch.randn(4, 6, 1, generator=g)
        predictor = baseline.adapt(sx, sy)
        mean, var = predictor.mean_var(qx)
        pred = predictor.predict(qx)
        for t in range(4):
            ref_mean, ref_var = _joint_conditioning(beta, G, 0.09, sx[t], sy[t], qx[t])
            torch.testing.assert_close(mean[t], ref_mean, rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(var[t], ref_var, rtol=1e-9, atol=1e-9)
        # The Prediction is that Gaussian: Gaussian NLL, interval mean ± 1.645 sd.
        y = torch.randn(4, 6, 1, generator=g)
        ref_nll = -torch.distributions.Normal(mean, var.sqrt()).log_prob(y[..., 0]).mean(-1)
        torch.testing.assert_close(-pred.log_prob(y).mean(-1), ref_nll)
        lower, upper = pred.interval(0.9)
        torch.testing.assert_close(
            (upper - lower)[..., 0], 2 * 1.6448536 * var.sqrt(), rtol=1e-6, atol=0
        )


def test_no_support_information_gives_the_prior_predictive():
    mm = _module()
    G = torch.tensor([[0.8, 0.3], [0.3, 0.5]], dtype=torch.float64)
    baseline = mm.MixedModelBaseline.from_params(torch.zeros(3, dtype=torch.float64), G, 1e12)
    b_mean, b_cov = baseline.posterior(torch.randn(2, 3, 1), torch.randn(2, 3, 1))
    torch.testing.assert_close(b_mean, torch.zeros(2, 2, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(b_cov, G.expand(2, 2, 2), atol=1e-9, rtol=1e-9)


def test_fit_recovers_statsmodels_random_effect_predictions():
    pytest.importorskip("statsmodels")
    mm = _module()
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 8)
    x = np.tile(np.linspace(-1.5, 1.5, 8), 30)
    b = rng.multivariate_normal([0, 0], [[0.5, 0.1], [0.1, 0.2]], size=30)
    y = 0.3 + 0.8 * x - 0.2 * x**2 + b[groups, 0] + b[groups, 1] * x + 0.2 * rng.normal(size=x.size)
    baseline = mm.MixedModelBaseline.fit(x, y, groups)
    assert baseline.converged
    assert abs(float(baseline.noise_var) - 0.04) < 0.015
    torch.testing.assert_close(
        baseline.beta, torch.tensor([0.3, 0.8, -0.2], dtype=torch.float64), atol=0.3, rtol=0
    )
    # Conditioning a training group on all its rows gives statsmodels' own BLUP of its effects.
    from statsmodels.regression.mixed_linear_model import MixedLM

    X = np.stack([np.ones_like(x), x, x**2], -1)
    Z = np.stack([np.ones_like(x), x], -1)
    result = MixedLM(y, X, groups=groups, exog_re=Z).fit(reml=True)
    sx = torch.tensor(x.reshape(30, 8, 1))
    sy = torch.tensor(y.reshape(30, 8, 1))
    b_mean, _ = baseline.posterior(sx, sy)
    blup = torch.tensor(np.stack([np.asarray(result.random_effects[i]) for i in range(30)]))
    torch.testing.assert_close(b_mean, blup, rtol=1e-5, atol=1e-6)
