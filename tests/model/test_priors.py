"""Weight priors: densities, distributions, binding to a network, KL terms, the flat prior."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence

import bayesmeta as bm
from bayesmeta.errors import ShapeError
from bayesmeta.model.priors import Flat, FlatAt, GaussianPrior, Laplace, Normal, StudentT
from bayesmeta.model.weight_prior import WeightPrior
from bayesmeta.nets import MLP, FunctionalNet

P = 7


def _base(d):
    while isinstance(d, torch.distributions.Independent):
        d = d.base_dist
    return d


@pytest.fixture
def loc_scale():
    g = torch.Generator().manual_seed(0)
    loc = 0.3 * torch.randn(P, generator=g, dtype=torch.float64)
    scale = 0.2 + torch.rand(P, generator=g, dtype=torch.float64)
    theta = loc + 0.8 * torch.randn(4, 3, P, generator=g, dtype=torch.float64)
    return loc, scale, theta


@pytest.mark.parametrize(
    ("make", "reference"),
    [
        (lambda m, s: Normal(m, s), lambda m, s: torch.distributions.Normal(m, s)),
        (lambda m, s: Laplace(m, s), lambda m, s: torch.distributions.Laplace(m, s)),
        (
            lambda m, s: StudentT(m, s, df=3.5),
            lambda m, s: torch.distributions.StudentT(torch.tensor(3.5, dtype=m.dtype), m, s),
        ),
    ],
    ids=["normal", "laplace", "student_t"],
)
def test_log_prob_is_the_sum_of_torchs_per_weight_log_densities(loc_scale, make, reference):
    loc, scale, theta = loc_scale
    prior = make(loc, scale)
    got = prior.log_prob(theta)
    assert got.shape == (4, 3)
    want = reference(loc, scale).log_prob(theta).sum(-1)
    torch.testing.assert_close(got, want)
    # the Pyro distribution agrees, with the weights as one event of size P
    d = prior.distribution()
    assert d.event_shape == (P,) and d.batch_shape == ()
    assert isinstance(_base(d), type(reference(loc, scale)))
    torch.testing.assert_close(d.log_prob(theta), want)


def test_scale_per_tensor_broadcasts_one_scale_to_each_tensors_weights():
    loc = torch.zeros(5)
    prior = Normal(loc, torch.tensor([0.5, 2.0]), numels=(3, 2), scale_per="tensor")
    torch.testing.assert_close(prior.scale, torch.tensor([0.5, 0.5, 0.5, 2.0, 2.0]))
    theta = torch.tensor([1.0, -1.0, 0.5, 2.0, -3.0])
    want = torch.distributions.Normal(loc, prior.scale).log_prob(theta).sum()
    torch.testing.assert_close(prior.log_prob(theta), want)


def test_stddev_of_each_family():
    loc, scale = torch.zeros(3), torch.tensor([0.1, 0.2, 0.4])
    torch.testing.assert_close(Normal(loc, scale).stddev(), scale)
    torch.testing.assert_close(Laplace(loc, scale).stddev(), scale * math.sqrt(2.0))
    torch.testing.assert_close(StudentT(loc, scale, df=4.0).stddev(), scale * math.sqrt(2.0))
    assert GaussianPrior is Normal


def test_an_unbound_prior_raises_until_bound_and_then_is_tied_to_the_net():
    prior = Laplace(scale=0.25)
    assert not prior.is_bound
    with pytest.raises(RuntimeError, match="not bound to a network"):
        _ = prior.loc
    with pytest.raises(RuntimeError, match="not bound"):
        prior.distribution()
    torch.manual_seed(0)
    net = MLP((1, 8, 1))
    fnet = FunctionalNet(net)
    assert prior.bind(fnet) is prior
    assert prior.num_params == fnet.num_params == 25
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    torch.testing.assert_close(prior.loc.detach(), flat)
    torch.testing.assert_close(prior.scale.detach(), torch.full((25,), 0.25))
    # tied: the location *is* the network's weights, not a copy
    with torch.no_grad():
        next(net.parameters()).add_(1.0)
    torch.testing.assert_close(prior.loc.detach()[:8], flat[:8] + 1.0)
    torch.testing.assert_close(prior.loc.detach()[8:], flat[8:])
    # and gradients of the log density reach the network's weights
    prior.log_prob(torch.zeros(25)).backward()
    assert next(net.parameters()).grad is not None
    assert float(next(net.parameters()).grad.abs().sum()) > 0
    # the prior holds only its scale: the location lives in the network
    assert [n for n, _ in prior.named_parameters()] == ["log_scale"]


def test_bind_takes_the_learner_scale_only_when_the_prior_has_none():
    fnet = FunctionalNet(MLP((1, 4, 1)))
    a = Normal().bind(fnet, scale=0.3, loc="zeros")
    torch.testing.assert_close(a.scale.detach(), torch.full((fnet.num_params,), 0.3))
    torch.testing.assert_close(a.loc.detach(), torch.zeros(fnet.num_params))
    b = Normal(scale=0.05).bind(fnet, scale=0.3)
    torch.testing.assert_close(b.scale.detach(), torch.full((fnet.num_params,), 0.05))
    with pytest.raises(ShapeError, match="P = "):
        Normal().bind(fnet, loc=torch.zeros(fnet.num_params + 1))
    # for_net: a learnable copy of the module's weights
    c = Laplace.for_net(fnet, scale=0.3)
    flat = fnet.flatten([p.detach() for p in fnet.params()])
    torch.testing.assert_close(c.loc.detach(), flat)
    assert c.loc.requires_grad and c.loc.data_ptr() != flat.data_ptr()
    with torch.no_grad():
        fnet.params()[0].add_(1.0)
    torch.testing.assert_close(c.loc.detach(), flat)


def test_from_module_centres_on_a_frozen_copy_of_the_weights():
    torch.manual_seed(1)
    source = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    flat = torch.cat([p.detach().reshape(-1) for p in source.parameters()])
    prior = Laplace.from_module(source, scale=0.2)
    assert isinstance(prior, Laplace)
    torch.testing.assert_close(prior.loc.detach(), flat)
    assert not prior.loc.requires_grad  # frozen location
    assert prior.log_scale.requires_grad  # the scale is learned
    with torch.no_grad():
        for p in source.parameters():
            p.mul_(3.0)
    torch.testing.assert_close(prior.loc.detach(), flat)  # a copy, not tied
    with pytest.raises(ShapeError, match="P = "):
        prior.bind(FunctionalNet(MLP((1, 8, 1))))


def test_normal_kl_is_torchs_kl_divergence(loc_scale):
    loc, scale, _ = loc_scale
    g = torch.Generator().manual_seed(2)
    q_loc = torch.randn(3, P, generator=g, dtype=torch.float64)
    q_log_scale = 0.4 * torch.randn(3, P, generator=g, dtype=torch.float64) - 0.5
    got = Normal(loc, scale).kl_from(q_loc, q_log_scale)
    want = kl_divergence(
        torch.distributions.Normal(q_loc, q_log_scale.exp()), torch.distributions.Normal(loc, scale)
    ).sum(-1)
    assert got.shape == (3,)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(bm.priors.gaussian_kl(q_loc, q_log_scale.exp(), loc, scale), want)


def _mc_kl(prior, q_loc, q_log_scale, n=400_000, seed=3):
    """KL(q || prior) and the gradient of it in q_loc by a reparameterised Monte Carlo estimate."""
    g = torch.Generator().manual_seed(seed)
    m = q_loc.detach().clone().requires_grad_(True)
    eps = torch.randn(n, q_loc.numel(), generator=g, dtype=q_loc.dtype)
    theta = m + q_log_scale.exp() * eps
    q = torch.distributions.Normal(m, q_log_scale.exp())
    terms = (q.log_prob(theta) - prior.log_density(theta)).sum(-1)
    est = terms.mean()
    (grad,) = torch.autograd.grad(est, m)
    return float(est.detach()), float(terms.detach().std()) / math.sqrt(n), grad


@pytest.fixture
def q_params():
    g = torch.Generator().manual_seed(4)
    q_loc = 0.5 * torch.randn(P, generator=g, dtype=torch.float64)
    q_log_scale = 0.3 * torch.randn(P, generator=g, dtype=torch.float64) - 0.5
    return q_loc, q_log_scale


def test_laplace_kl_matches_a_large_sample_monte_carlo_estimate(loc_scale, q_params):
    loc, scale, _ = loc_scale
    q_loc, q_log_scale = q_params
    prior = Laplace(loc, scale)
    mc, se, mc_grad = _mc_kl(prior, q_loc, q_log_scale)
    m = q_loc.clone().requires_grad_(True)
    got = prior.kl_from(m, q_log_scale)
    assert abs(float(got.detach()) - mc) < 4 * se + 1e-3
    # differentiable, with the gradient of the expectation
    (grad,) = torch.autograd.grad(got, m)
    torch.testing.assert_close(grad, mc_grad, atol=0.02, rtol=0.02)


def test_laplace_kl_is_differentiable_in_q_and_in_the_prior_scale(loc_scale, q_params):
    loc, scale, _ = loc_scale
    q_loc, q_log_scale = q_params
    prior = Laplace(loc, scale)
    inputs = (q_loc.clone().requires_grad_(True), q_log_scale.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(lambda m, s: prior.kl_from(m, s), inputs)
    # the prior's own parameter receives the gradient of the KL, as central differences say
    prior.kl_from(q_loc, q_log_scale).backward()
    grad = prior.log_scale.grad
    assert grad is not None
    h = 1e-6
    for i in range(P):
        with torch.no_grad():
            prior.log_scale[i] += h
            up = float(prior.kl_from(q_loc, q_log_scale))
            prior.log_scale[i] -= 2 * h
            down = float(prior.kl_from(q_loc, q_log_scale))
            prior.log_scale[i] += h
        assert abs(float(grad[i]) - (up - down) / (2 * h)) < 1e-6


def test_student_t_kl_by_quadrature_matches_monte_carlo(loc_scale, q_params):
    loc, scale, _ = loc_scale
    q_loc, q_log_scale = q_params
    prior = StudentT(loc, scale, df=3.0)
    mc, se, mc_grad = _mc_kl(prior, q_loc, q_log_scale)
    got = prior.kl_from(q_loc, q_log_scale)  # the default rule
    assert abs(float(got.detach()) - mc) < 4 * se + 0.02
    m = q_loc.clone().requires_grad_(True)
    fine = prior.kl_from(m, q_log_scale, num_points=40)
    assert abs(float(fine.detach()) - mc) < 4 * se + 1e-3
    (grad,) = torch.autograd.grad(fine, m)
    torch.testing.assert_close(grad, mc_grad, atol=0.01, rtol=0.01)


def test_neg_log_prob_grad_closed_forms_equal_autograd(loc_scale):
    loc, scale, theta = loc_scale
    for prior in (Laplace(loc, scale), StudentT(loc, scale, df=3.0)):
        got = prior.neg_log_prob_grad(theta)
        want = WeightPrior.neg_log_prob_grad(prior, theta)
        torch.testing.assert_close(got, want)


def test_frozen_copies_values_and_family():
    prior = StudentT(torch.ones(3), 0.5, df=5.0)
    frozen = prior.frozen(torch.float64)
    assert isinstance(frozen, StudentT) and frozen.df == 5.0
    assert frozen.loc.dtype == torch.float64 and not frozen.loc.requires_grad
    assert not frozen.log_scale.requires_grad
    torch.testing.assert_close(frozen.scale, torch.full((3,), 0.5, dtype=torch.float64))


def test_flat_prior_has_zero_density_and_draws_at_its_weights_under_a_plate():
    at = torch.arange(5.0)
    d = Flat(5, at=at).distribution()
    assert isinstance(d, FlatAt) and d.event_shape == (5,)
    theta = torch.randn(3, 5) * 100
    torch.testing.assert_close(d.log_prob(theta), torch.zeros(3))

    def model():
        with pyro.plate("tasks", 3, dim=-1):
            return pyro.sample("theta", d)

    trace = pyro.poutine.trace(model).get_trace()
    value = trace.nodes["theta"]["value"]
    assert value.shape == (3, 5)
    torch.testing.assert_close(value, at.expand(3, 5))
    assert float(trace.log_prob_sum()) == 0.0
    # under a second (particle) plate too
    with pyro.plate("draws", 4, dim=-2):
        value = pyro.poutine.trace(model).get_trace().nodes["theta"]["value"]
    assert value.shape == (4, 3, 5)
    torch.testing.assert_close(value, at.expand(4, 3, 5))
    assert d.sample((2,)).shape == (2, 5)
    # without at: draws are zeros
    torch.testing.assert_close(Flat(2).distribution().sample((3,)), torch.zeros(3, 2))


def test_flat_prior_refuses_bad_sizes():
    with pytest.raises(ValueError, match="num_params"):
        Flat(0)
    with pytest.raises(ShapeError, match="at must have shape"):
        Flat(3, at=torch.zeros(4))


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), True])
@pytest.mark.parametrize("family", [Normal, Laplace, StudentT])
def test_bad_scales_are_refused(family, bad):
    with pytest.raises((ValueError, TypeError), match="scale"):
        family(scale=bad)
    with pytest.raises((ValueError, TypeError), match="scale"):
        family(torch.zeros(3), bad)


@pytest.mark.parametrize(
    "bad",
    [
        torch.tensor([0.1, 0.0, 0.1]),
        torch.tensor([0.1, -1.0, 0.1]),
        torch.tensor([0.1, math.nan, 0.1]),
    ],
)
def test_bad_scale_vectors_are_refused(bad):
    with pytest.raises(ValueError, match="scale must be positive"):
        Laplace(torch.zeros(3), bad)
    with pytest.raises(ShapeError, match="scale"):
        Laplace(torch.zeros(3), torch.ones(4))


def test_student_t_refuses_bad_degrees_of_freedom():
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="df must be"):
            StudentT(df=bad)
    for bad in (True, "3", torch.tensor(True)):  # a bool is not taken for 1
        with pytest.raises(TypeError, match="df must be a number"):
            StudentT(df=bad)


def test_a_prior_site_in_a_plate_has_the_prior_log_density():
    prior = Laplace(torch.zeros(4), 0.5)
    theta = torch.randn(3, 4)

    def model():
        with pyro.plate("tasks", 3):
            return prior.sample_site()

    trace = pyro.poutine.trace(pyro.poutine.condition(model, data={"theta": theta})).get_trace()
    want = dist.Laplace(torch.zeros(4), 0.5).log_prob(theta).sum()
    torch.testing.assert_close(trace.log_prob_sum(), want)
