import importlib
import math

import pytest
import torch
from torch import Tensor

from bayesmeta.errors import NonFiniteLossError, ShapeError
from bayesmeta.transfer.density_ratio import DensityRatio, density_ratio


def _gaussian_log_ratio(x: Tensor, mu: Tensor, s: float) -> Tensor:
    """Closed-form ``log N(x; mu, s^2 I) - log N(x; 0, I)`` for ``x`` ``[M, D]``."""
    d = x.shape[1]
    log_t = -0.5 * ((x - mu) / s).pow(2).sum(1) - d * math.log(s)
    return log_t + 0.5 * x.pow(2).sum(1)


def _shift(d: int, mu: list[float], s: float, n: int = 3000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(n, d, generator=g, dtype=torch.float64)
    loc = torch.tensor(mu, dtype=torch.float64)
    xt = loc + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    xq = torch.randn(1000, d, generator=g, dtype=torch.float64)  # where the source lives
    return xs, xt, xq, _gaussian_log_ratio(xq, loc, s)


def _centred_fit(est: Tensor, true: Tensor) -> tuple[float, float]:
    """Correlation and RMS error of two log ratios after removing their means."""
    a, b = est - est.mean(), true - true.mean()
    corr = float((a * b).sum() / (a.norm() * b.norm()))
    return corr, float((a - b).pow(2).mean().sqrt() / b.std())


@pytest.mark.parametrize(("d", "mu", "s"), [(1, [1.0], 0.7), (2, [1.0, -0.5], 0.8)])
def test_quadratic_recovers_gaussian_log_ratio(d: int, mu: list[float], s: float) -> None:
    xs, xt, xq, true = _shift(d, mu, s)
    dr = density_ratio(xs, xt, clip=None)
    corr, rel_rmse = _centred_fit(dr(xq).log(), true)
    assert corr > 0.995  # measured 0.9996 (1-D), 0.9986 (2-D)
    assert rel_rmse < 0.12  # measured 0.066, 0.086 of the true log ratio's spread
    # The unnormalised log weights estimate the log ratio itself, constant included.
    true_s = _gaussian_log_ratio(xs, torch.tensor(mu, dtype=torch.float64), s)
    central = xs.norm(dim=1) < 2
    assert float((dr.log_weights - true_s)[central].abs().median()) < 0.1
    assert 0.6 < dr.classifier_accuracy < 0.85


def test_linear_is_exact_for_equal_variance_shift_and_biased_otherwise() -> None:
    xs, xt, xq, true = _shift(2, [0.8, -0.5], 1.0)
    corr, rel_rmse = _centred_fit(
        density_ratio(xs, xt, features="linear", clip=None)(xq).log(), true
    )
    assert corr > 0.999 and rel_rmse < 0.06  # measured 0.9999, 0.04
    xs, xt, xq, true = _shift(1, [1.0], 0.7)  # a variance change needs the quadratic term
    corr, _ = _centred_fit(density_ratio(xs, xt, features="linear", clip=None)(xq).log(), true)
    assert corr < 0.97


@pytest.mark.parametrize(("d", "mu", "s"), [(1, [1.0], 0.7), (2, [0.8, -0.5], 1.0)])
def test_mlp_classifier_is_close(d: int, mu: list[float], s: float) -> None:
    xs, xt, xq, true = _shift(d, mu, s)
    dr = density_ratio(xs, xt, hidden=16, clip=None, generator=torch.Generator().manual_seed(1))
    # The tanh network saturates in the far tails, so compare the normalised weights, which are
    # dominated by the bulk, and the log ratio within two standard deviations.
    w_true = true.exp() / true.exp().mean()
    w_est = dr(xq) / dr(xq).mean()
    assert float((w_est - w_true).abs().mean()) < 0.15  # measured 0.056 (1-D), 0.025 (2-D)
    central = xq.norm(dim=1) < 2
    corr, _ = _centred_fit(dr(xq).log()[central], true[central])
    assert corr > 0.97


def test_identical_distributions_give_flat_weights() -> None:
    g = torch.Generator().manual_seed(0)
    xs, xt = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    dr = density_ratio(xs, xt)
    dev = (dr.weights - 1).abs()
    # Sampling noise only: measured mean 0.04, 90% quantile 0.07, accuracy 0.52, ESS 1992 of
    # 2000 (over four seeds the mean ranged 0.03-0.07 and the quantile 0.07-0.16).
    assert float(dev.mean()) < 0.1 and float(dev.quantile(0.9)) < 0.2
    assert abs(dr.classifier_accuracy - 0.5) < 0.05
    assert dr.effective_sample_size > 0.98 * 2000


def test_importance_weighting_corrects_misspecified_fit_under_covariate_shift() -> None:
    # Shimodaira (2000): a straight line fitted to y = sin(x) on source x ~ N(0, 1) is wrong
    # around the target x ~ N(1.5, 0.5^2); weighting by p_t / p_s fits the target region.
    g = torch.Generator().manual_seed(0)
    xs, xt = torch.randn(2000, 1, generator=g), 1.5 + 0.5 * torch.randn(2000, 1, generator=g)
    ys = torch.sin(xs) + 0.1 * torch.randn(2000, 1, generator=g)
    xq = 1.5 + 0.5 * torch.randn(2000, 1, generator=g)
    design = torch.cat([torch.ones_like(xs), xs], 1)

    def target_mse(w: Tensor) -> float:
        sw = w.sqrt()[:, None]
        beta = torch.linalg.lstsq(design * sw, ys * sw).solution
        return float((torch.cat([torch.ones_like(xq), xq], 1) @ beta - torch.sin(xq)).pow(2).mean())

    dr = density_ratio(xs, xt)
    unweighted, weighted = target_mse(torch.ones(2000)), target_mse(dr.weights)
    oracle = target_mse(_gaussian_log_ratio(xs.double(), torch.tensor([1.5]), 0.5).exp().float())
    assert weighted < 0.4 * unweighted  # measured 0.026 vs 0.097
    assert weighted < 1.2 * oracle  # measured 0.026 vs 0.026 with the true ratio
    assert 50 < dr.effective_sample_size < 1000  # measured about 400 of 2000


def test_weights_normalisation_ess_clip_and_call() -> None:
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(500, 3, 2, generator=g)  # trailing feature dims are flattened
    xt = 1.5 + 0.5 * torch.randn(300, 3, 2, generator=g)
    free = density_ratio(xs, xt, clip=None)
    clipped = density_ratio(xs, xt, clip=5.0)
    for dr in (free, clipped):
        assert isinstance(dr, DensityRatio) and dr.weights.shape == (500,)
        assert dr.log_weights.shape == (500,)
        torch.testing.assert_close(dr.weights.mean(), torch.tensor(1.0))
        assert 1.0 <= dr.effective_sample_size <= 500
        w = dr.weights
        assert dr.effective_sample_size == pytest.approx(float(w.sum() ** 2 / (w**2).sum()))
        torch.testing.assert_close(dr(xs), dr.weights)
        assert dr(xt[:7]).shape == (7,) and bool((dr(xt) > 0).all())
    assert float(free.weights.max()) > 5.0
    assert float(clipped.weights.max()) == pytest.approx(5.0, rel=1e-5)
    assert clipped.effective_sample_size > free.effective_sample_size
    assert float(clipped(xt).max()) <= 5.0 + 1e-5
    # The unclipped weights are exp(log_weights) up to one constant.
    ratio = free.weights / free.log_weights.exp()
    torch.testing.assert_close(ratio, ratio.mean().expand(500))


def test_deterministic_given_generator() -> None:
    g = torch.Generator().manual_seed(0)
    xs, xt = torch.randn(300, 2, generator=g), 1.0 + torch.randn(200, 2, generator=g)
    a, b = (
        density_ratio(xs, xt, hidden=8, steps=50, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    )
    assert torch.equal(a.weights, b.weights)
    assert torch.equal(density_ratio(xs, xt).weights, density_ratio(xs, xt).weights)


def test_rejects_bad_input() -> None:
    xs, xt = torch.randn(20, 2), torch.randn(10, 2)
    with pytest.raises(ShapeError, match=r"source_x \[20, 2\] and target_x \[10, 3\]"):
        density_ratio(xs, torch.randn(10, 3))
    with pytest.raises(ValueError, match="target_x holds no points"):
        density_ratio(xs, torch.randn(0, 2))
    with pytest.raises(ValueError, match=r"source_x holds 2 NaN or infinite value\(s\)"):
        density_ratio(torch.cat([xs, torch.full((1, 2), math.nan)]), xt)
    with pytest.raises(TypeError, match=r"source_x must be a torch\.Tensor"):
        density_ratio(xs.tolist(), xt)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"reshape a 1-D input to \[N, 1\]"):
        density_ratio(torch.randn(20), torch.randn(10))
    with pytest.raises(ShapeError, match="floating"):
        density_ratio(torch.ones(20, 2, dtype=torch.long), xt)
    with pytest.raises(ValueError, match="features must be 'linear' or 'quadratic'"):
        density_ratio(xs, xt, features="cubic")  # type: ignore[arg-type]
    for l2 in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="l2 must be a positive"):
            density_ratio(xs, xt, l2=l2)
    for steps in (0, -3):
        with pytest.raises(ValueError, match="steps must be a positive int"):
            density_ratio(xs, xt, steps=steps)
    with pytest.raises(ValueError, match="hidden must be None or a positive int"):
        density_ratio(xs, xt, hidden=0)
    with pytest.raises(ValueError, match="clip must be None or a float > 1"):
        density_ratio(xs, xt, clip=1.0)
    dr = density_ratio(xs, xt)
    with pytest.raises(ShapeError, match=r"x must have shape \[M, 2\]"):
        dr(torch.randn(5, 3))


def test_non_finite_loss_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # Standardised finite inputs keep the loss finite, so break the loss itself.
    dr_module = importlib.import_module("bayesmeta.transfer.density_ratio")
    monkeypatch.setattr(dr_module, "softplus", lambda t: t * math.nan)
    xs, xt = torch.randn(20, 2), torch.randn(10, 2)
    for hidden in (None, 4):
        with pytest.raises(NonFiniteLossError, match="domain classifier's loss became nan"):
            density_ratio(xs, xt, hidden=hidden)
