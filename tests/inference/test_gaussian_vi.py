import pyro
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO

from bayesmeta.guides import NormalGuide
from bayesmeta.inference.gaussian_vi import free_energy, gaussian_steps
from bayesmeta.model import TaskModel
from bayesmeta.nets import MLP, FunctionalNet
from bayesmeta.priors import GaussianLikelihood, GaussianPrior


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("num_samples", [1, 4])
def test_vectorised_free_energy_equals_pyro_elbo(float64, num_samples):
    torch.manual_seed(0)
    fnet = FunctionalNet(MLP((1, 8, 1), activation="tanh"))
    prior = GaussianPrior.for_net(fnet, scale=0.3)
    lik = GaussianLikelihood(0.2)
    t, k = 5, 6
    x, y = torch.randn(t, k, 1), torch.randn(t, k, 1)
    loc = (prior.loc.detach() + 0.1 * torch.randn(t, fnet.num_params)).requires_grad_(True)
    log_scale = torch.full((t, fnet.num_params), -1.5, requires_grad=True)
    elbo = TraceMeanField_ELBO(
        num_particles=num_samples, vectorize_particles=True, max_plate_nesting=1
    )
    pyro.set_rng_seed(3)
    pyro_loss = elbo.differentiable_loss(
        TaskModel(fnet, prior, lik, learn=True), NormalGuide(loc, log_scale.exp()), x, y
    )
    pyro.set_rng_seed(3)
    ours = (free_energy(fnet, prior, lik, loc, log_scale, x, y, num_samples=num_samples) * k).sum()
    torch.testing.assert_close(ours, pyro_loss)
    # and the gradients with respect to every parameter agree
    params = [loc, log_scale, prior.loc, prior.log_scale, lik.log_scale]
    g_ours = torch.autograd.grad(ours, params)
    pyro.set_rng_seed(3)
    pyro_loss = elbo.differentiable_loss(
        TaskModel(fnet, prior, lik, learn=True), NormalGuide(loc, log_scale.exp()), x, y
    )
    g_pyro = torch.autograd.grad(pyro_loss, params)
    for a, b in zip(g_ours, g_pyro, strict=True):
        torch.testing.assert_close(a, b)


def test_inner_step_is_the_free_energy_gradient_preconditioned_by_prior_curvature(float64):
    torch.manual_seed(1)
    fnet = FunctionalNet(MLP((1, 6, 1)))
    prior = GaussianPrior.for_net(fnet, scale=0.2)
    lik = GaussianLikelihood(0.3)
    x, y = torch.randn(3, 4, 1), torch.randn(3, 4, 1)
    loc0 = prior.loc.detach().expand(3, -1).clone().requires_grad_(True)
    ls0 = prior.scale.detach().log() + 0.5 * torch.randn(3, fnet.num_params)
    ls0.requires_grad_(True)
    gen = torch.Generator().manual_seed(5)
    loc1, ls1 = gaussian_steps(
        fnet,
        prior,
        lik,
        x,
        y,
        steps=1,
        lr=0.1,
        num_samples=2,
        init=(loc0, ls0),
        generator=gen,
        differentiable=False,
    )
    eps = torch.empty(2, 3, fnet.num_params).normal_(generator=torch.Generator().manual_seed(5))
    f = free_energy(fnet, prior, lik, loc0, ls0, x, y, eps=eps).sum()
    g_loc, g_ls = torch.autograd.grad(f, [loc0, ls0])
    # In loc, a gradient step preconditioned by 1 + step * (the prior part's
    # curvature), i.e. implicit in the prior; in log s, a plain gradient step.
    step = 0.1 * float(lik.step_scale().detach())
    a = step / x.shape[1] / prior.scale.detach().pow(2)
    torch.testing.assert_close(loc1, loc0.detach() - step * g_loc / (1 + a))
    torch.testing.assert_close(ls1, ls0.detach() - step * g_ls)


@pytest.mark.parametrize(
    ("scale_update", "steps", "lr"), [("gradient", 1500, 0.02), ("natural", 300, 0.1)]
)
def test_mean_field_inference_recovers_conjugate_linear_regression(
    float64, scale_update, steps, lr
):
    """Bayesian linear regression: q converges to the mean-field optimum in closed form.

    For y = w x + b + noise with a Gaussian prior, the posterior is Gaussian with
    precision L = X^T X / sigma^2 + diag(1 / s0^2) and mean L^{-1}(X^T y / sigma^2
    + m0 / s0^2). The best diagonal Gaussian has that mean and variances
    1 / diag(L).
    """
    torch.manual_seed(0)
    net = MLP((1, 1))  # a linear model: weight and bias
    fnet = FunctionalNet(net)
    prior = GaussianPrior.for_net(fnet, scale=0.7, loc="zeros")
    sigma = 0.5
    lik = GaussianLikelihood(sigma, learn_scale=False)
    k = 8
    x = torch.linspace(-1.0, 2.0, k).reshape(1, k, 1)
    y = 1.5 * x - 0.3 + sigma * torch.randn(1, k, 1)
    design = torch.cat([x[0], torch.ones(k, 1)], dim=1)  # columns: weight, bias
    precision = design.T @ design / sigma**2 + torch.eye(2) / 0.7**2
    mean = torch.linalg.solve(precision, design.T @ y[0] / sigma**2).squeeze(-1)
    loc, log_scale = gaussian_steps(
        fnet,
        prior,
        lik,
        x,
        y,
        steps=steps,
        lr=lr,
        num_samples=256,
        differentiable=False,
        generator=torch.Generator().manual_seed(0),
        scale_update=scale_update,
        scale_rate=0.2,
    )
    torch.testing.assert_close(loc[0], mean, atol=0.03, rtol=0)
    torch.testing.assert_close(
        log_scale[0].exp().pow(2), 1.0 / torch.diagonal(precision), rtol=0.1, atol=0
    )
