"""Regression tests: the Student-t prior's KL for wide ``q``, and bools refused as numbers."""

import math

import numpy as np
import pytest
import torch

from bayesmeta.model.likelihoods import GaussianLikelihood, StudentTLikelihood
from bayesmeta.model.priors import Flat, Laplace, Normal, StudentT, log1p_square_mean

# -- KL(q || StudentT) for a q wider than the prior -------------------------------------------


def _expect(g, m, s, mu, width):
    """``E[g(theta)]``, ``theta ~ N(m, s^2)``, in float64 to ~1e-9.

    The trapezoid rule on ``theta = mu + width sinh(tau)``: nodes dense at the
    prior's centre ``mu`` (its peak, or a Laplace prior's kink, at a node) and
    spreading out to cover ``q`` out to 14 standard deviations.
    """
    top = math.asinh((abs(m - mu) + 14 * s) / width)
    tau = np.linspace(-top, top, 200_001)
    theta = mu + width * np.sinh(tau)
    density = np.exp(-0.5 * ((theta - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    return float(np.trapezoid(g(theta) * density * width * np.cosh(tau), tau))


def _student_t_reference(mu, sigma, df, m, s):
    """The cross term ``E_q[-log p]`` and its derivatives in ``m``, ``s`` and ``log sigma``."""
    const = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def u(theta):
        return (theta - mu) / sigma

    def slope(theta):  # d(-log p) / d theta
        return (df + 1) * u(theta) / (sigma * (df + u(theta) ** 2))

    def e(g):
        return _expect(g, m, s, mu, sigma / 4)

    value = e(lambda th: math.log(sigma) - const + 0.5 * (df + 1) * np.log1p(u(th) ** 2 / df))
    d_m = e(slope)
    d_s = e(lambda th: slope(th) * (th - m) / s)
    d_log_sigma = e(lambda th: 1 - (df + 1) * u(th) ** 2 / (df + u(th) ** 2))
    return np.array([value, d_m, d_s, d_log_sigma])


def _entropy(s):
    return math.log(s) + 0.5 * (1 + math.log(2 * math.pi))


def _kl_and_grads(prior, m, s, dtype):
    """One weight's ``KL(q || prior)``; its gradients in ``m``, ``s``, the prior's log scale."""
    q_loc = torch.tensor([m], dtype=dtype, requires_grad=True)
    q_scale = torch.tensor([s], dtype=dtype, requires_grad=True)
    kl = prior.kl_from(q_loc, q_scale.log())
    d_m, d_s, d_log_sigma = torch.autograd.grad(kl, (q_loc, q_scale, prior.log_scale))
    return np.array([float(v.detach()) for v in (kl, d_m, d_s, d_log_sigma)])


def test_the_reference_integrator_matches_the_laplace_closed_form():
    # a kink at the prior's centre and a q ten times wider: the cases the reference is for
    for b, m, s in ((0.3, 0.2, 3.0), (0.3, -1.0, 0.03), (1.0, 4.0, 10.0)):
        prior = Laplace(torch.zeros(1, dtype=torch.float64), b)
        q_loc = torch.tensor([m], dtype=torch.float64)
        kl = prior.kl_from(q_loc, torch.tensor([math.log(s)], dtype=torch.float64))
        cross = _expect(lambda th, b=b: math.log(2 * b) + np.abs(th) / b, m, s, 0.0, b / 4)
        assert abs(float(kl.detach()) + _entropy(s) - cross) < 1e-8 * max(1.0, abs(cross))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("df", [1.0, 3.0, 10.0])
@pytest.mark.parametrize("ratio", [0.1, 1.0, 3.0, 10.0])
def test_student_t_kl_and_its_gradients_match_a_high_accuracy_reference(ratio, df, dtype):
    mu, sigma = 0.4, 0.2
    s = ratio * sigma
    prior = StudentT(torch.tensor([mu], dtype=dtype), sigma, df=df)
    for offset in (0.0, 0.7 * sigma, 2.0 * s):  # q's mean: at the prior's, near, out in q's tail
        m = mu + offset
        want = _student_t_reference(mu, sigma, df, m, s)
        got = _kl_and_grads(prior, m, s, dtype)
        # the cross term E_q[-log p] (the quadrature) and its gradients, then the KL itself
        cross = got + np.array([_entropy(s), 0.0, 1 / s, 0.0])
        scale = np.array([1.0, 1 / s, 1 / s, 1.0])  # each term's natural size
        err = np.abs(cross - want) / np.maximum(np.abs(want), 1e-4 * scale)
        assert (err < 0.02).all(), (offset, cross, want, err)
        kl_want = want[0] - _entropy(s)
        assert abs(got[0] - kl_want) < 0.02 * abs(kl_want) + 1e-5, (offset, got[0], kl_want)
        # much tighter than 2% in fact
        assert err.max() < 2e-3, (offset, err)


def test_the_rule_is_accurate_where_five_gauss_hermite_nodes_were_not():
    # q ten times wider than a Cauchy prior, its mean half its spread off the prior's:
    # 5 Gauss-Hermite nodes had the gradient in q's mean wrong by ~100%
    mu, sigma, df, m, s = 0.0, 1.0, 1.0, 5.0, 10.0
    want = _student_t_reference(mu, sigma, df, m, s)
    prior = StudentT(torch.tensor([mu], dtype=torch.float64), sigma, df=df)
    got = _kl_and_grads(prior, m, s, torch.float64)
    assert abs(got[1] - want[1]) < 1e-3 * abs(want[1])
    assert abs(want[1] - 0.0818) < 1e-3  # the reference: d E_q[-log p] / dm


def test_log1p_square_mean_limits_and_a_closed_form():
    a = torch.tensor([0.0, 1e-3, 3.0, 1e3], dtype=torch.float64)
    zero = torch.zeros_like(a)
    # b = 0: E log(1 + w^2) = log(1 + a^2) exactly
    torch.testing.assert_close(
        log1p_square_mean(a, zero), torch.log1p(a * a), rtol=1e-6, atol=1e-12
    )
    # a tiny spread: log(1 + a^2) + b^2 (1 - a^2) / (1 + a^2)^2, to O(b^4) ~ 1e-12
    b = torch.full_like(a, 1e-3)
    want = torch.log1p(a * a) + b * b * (1 - a * a) / (1 + a * a) ** 2
    torch.testing.assert_close(log1p_square_mean(a, b), want, rtol=1e-6, atol=1e-11)
    with pytest.raises(ValueError, match="num_points"):
        log1p_square_mean(a, b, 1)


def test_the_student_t_kl_is_differentiable_twice_and_batched():
    torch.manual_seed(0)
    p = 5
    prior = StudentT(torch.randn(p, dtype=torch.float64), torch.rand(p, dtype=torch.float64) + 0.1)
    m = torch.randn(3, p, dtype=torch.float64, requires_grad=True)
    ls = torch.randn(3, p, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: prior.kl_from(a, b), (m, ls))
    assert torch.autograd.gradgradcheck(lambda a, b: prior.kl_from(a, b), (m, ls))
    batched = prior.kl_from(m, ls)
    assert batched.shape == (3,)
    for t in range(3):
        torch.testing.assert_close(batched[t], prior.kl_from(m[t], ls[t]))
    assert bool((batched > 0).all())  # KL(q || p) > 0
    # with df -> infinity the Student-t is the Normal: for q about the prior (u ~ 1) the
    # KLs differ by O(E[u^4] / df)
    loc, scale = prior.loc.detach(), prior.scale.detach()
    m_near = loc + 0.5 * scale * torch.randn(3, p, dtype=torch.float64)
    ls_near = (scale * (0.5 + torch.rand(3, p, dtype=torch.float64))).log()
    near_normal = StudentT(loc, scale, df=1e4).kl_from(m_near, ls_near).detach()
    normal = Normal(loc, scale).kl_from(m_near, ls_near).detach()
    torch.testing.assert_close(near_normal, normal, rtol=0.0, atol=5e-3)
    assert float((near_normal - normal).abs().max()) > 0  # a Student-t all the same


# -- bools are not numbers -------------------------------------------------------------------

BOOLS = [True, False, torch.tensor(True), torch.tensor([True, False, True])]


def _id(value):
    return f"tensor({value.tolist()})" if isinstance(value, torch.Tensor) else repr(value)


@pytest.mark.parametrize("bad", BOOLS, ids=_id)
@pytest.mark.parametrize("family", [Normal, Laplace, StudentT])
def test_priors_refuse_a_bool_scale(family, bad):
    with pytest.raises(TypeError, match="scale must be a number or a floating tensor, got a bool"):
        family(scale=bad)  # unbound: refused when made, not when bound
    with pytest.raises(TypeError, match="scale must be"):
        family(torch.zeros(3), bad)
    # a number, or a float tensor, is taken
    torch.testing.assert_close(
        family(torch.zeros(3), torch.tensor(0.5)).scale, torch.full((3,), 0.5)
    )


@pytest.mark.parametrize("bad", [True, torch.tensor(True), torch.tensor([True, False])], ids=_id)
@pytest.mark.parametrize("family", [Normal, Laplace, StudentT])
def test_priors_refuse_a_bool_location(family, bad):
    with pytest.raises(TypeError, match="loc must be a floating tensor"):
        family(bad)
    torch.testing.assert_close(family(torch.ones(2), 0.3).loc.detach(), torch.ones(2))


@pytest.mark.parametrize("bad", [True, False, torch.tensor(True)], ids=_id)
def test_student_t_refuses_bool_degrees_of_freedom(bad):
    with pytest.raises(TypeError, match="df must be a number"):
        StudentT(df=bad)
    with pytest.raises(TypeError, match="df must be a number"):
        StudentTLikelihood(df=bad)
    assert StudentT(df=torch.tensor(5.0)).df == 5.0
    assert StudentTLikelihood(df=2.5).df == 2.5


@pytest.mark.parametrize("bad", [True, False, torch.tensor(True), torch.tensor(False)], ids=_id)
@pytest.mark.parametrize("likelihood", [GaussianLikelihood, StudentTLikelihood])
def test_likelihoods_refuse_a_bool_noise_scale(likelihood, bad):
    with pytest.raises(TypeError, match="noise_scale must be a number"):
        likelihood(scale=bad)
    if likelihood is GaussianLikelihood:
        with pytest.raises(TypeError, match="noise_scale must be a number"):
            likelihood(bad)
    with pytest.raises(TypeError, match="num_outputs must be an int"):
        likelihood(num_outputs=True)
    # a float, or a one-element float tensor, is taken as it is
    made = likelihood(scale=torch.tensor(0.3), num_outputs=2)
    torch.testing.assert_close(made.log_scale.detach(), torch.full((2,), math.log(0.3)))
    with pytest.raises(ValueError, match="noise_scale must be positive and finite"):
        likelihood(scale=0.0)


@pytest.mark.parametrize("bad", [True, False, torch.tensor(True)], ids=_id)
def test_flat_prior_refuses_a_bool_size(bad):
    with pytest.raises(TypeError, match="num_params must be an int"):
        Flat(bad)
    assert Flat(3).num_params == 3
    with pytest.raises(ValueError, match="num_params must be >= 1"):
        Flat(0)
