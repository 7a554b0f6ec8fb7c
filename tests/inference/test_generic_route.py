"""The fast inner loop against the generic route, step for step on the same noise.

The fast path of Bayesian MAML's inner loop (a likelihood's closed-form output
gradient, the MLP's hand-written batched backward pass, the prior's part folded
into per-weight constants) must compute what the generic route computes:
autograd through the network on the likelihood's Pyro distribution. For a
non-Normal prior, a step of the generic prior part is a gradient step on Pyro's
own ELBO.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO

from bayesmeta.guides import NormalGuide
from bayesmeta.inference.gaussian_vi import gaussian_steps
from bayesmeta.model import TaskModel
from bayesmeta.model.likelihoods import FunctionLikelihood, GaussianLikelihood
from bayesmeta.model.priors import Laplace, Normal, StudentT
from bayesmeta.nets import MLP, FunctionalNet


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _steps(fnet, prior, lik, x, y, route, **kw):
    return gaussian_steps(
        fnet,
        prior,
        lik,
        x,
        y,
        steps=3,
        lr=0.05,
        generator=torch.Generator().manual_seed(7),
        route=route,
        **kw,
    )


@pytest.mark.parametrize("scale_update", ["natural", "gradient"])
@pytest.mark.parametrize("num_samples", [1, 3])
@pytest.mark.parametrize("likelihood", ["gaussian", "student_t_callable"])
def test_fast_path_equals_autograd_route_with_second_order_gradients(
    float64, scale_update, num_samples, likelihood
):
    torch.manual_seed(0)
    fnet = FunctionalNet(MLP((1, 8, 8, 1), activation="tanh"))
    prior = Normal(scale=0.2).bind(fnet)
    if likelihood == "gaussian":
        lik = GaussianLikelihood(0.3)
        learned = [lik.log_scale]
    else:
        log_noise = torch.nn.Parameter(torch.tensor(-1.0))
        lik = FunctionLikelihood(lambda f: dist.StudentT(4.0, f, log_noise.exp()))
        learned = [log_noise]
    x, y = torch.randn(4, 5, 1), torch.randn(4, 5, 1)
    params = [*fnet.params(), prior.log_scale, *learned]
    results = {}
    for route in ("auto", "autograd"):
        loc, log_scale = _steps(
            fnet,
            prior,
            lik,
            x,
            y,
            route,
            num_samples=num_samples,
            scale_update=scale_update,
        )
        # A scalar of the adapted q, differentiated to second order as meta-training does.
        target = (loc.sin() * torch.linspace(0, 1, loc.shape[-1])).sum() + log_scale.exp().sum()
        results[route] = (loc, log_scale, torch.autograd.grad(target, params))
    fast, generic = results["auto"], results["autograd"]
    torch.testing.assert_close(fast[0], generic[0])
    torch.testing.assert_close(fast[1], generic[1])
    for a, b in zip(fast[2], generic[2], strict=True):
        torch.testing.assert_close(a, b)


def test_unknown_route_is_refused():
    fnet = FunctionalNet(MLP((1, 4, 1)))
    with pytest.raises(ValueError, match="route"):
        gaussian_steps(
            fnet,
            Normal(scale=0.1).bind(fnet),
            GaussianLikelihood(),
            torch.randn(2, 3, 1),
            torch.randn(2, 3, 1),
            steps=1,
            lr=0.1,
            route="jit",
        )


@pytest.mark.parametrize("prior_cls", [Laplace, StudentT])
def test_non_normal_prior_step_is_a_gradient_step_on_pyros_elbo(float64, prior_cls):
    """One 'gradient' step equals (loc, log s) - step * grad(Trace_ELBO / K) on the same draw."""
    torch.manual_seed(2)
    fnet = FunctionalNet(MLP((1, 6, 1), activation="tanh"))
    prior = prior_cls(scale=0.3).bind(fnet)
    lik = GaussianLikelihood(0.4, learn_scale=False)
    t, k = 3, 4
    x, y = torch.randn(t, k, 1), torch.randn(t, k, 1)
    loc0 = (prior.loc.detach() + 0.05 * torch.randn(t, fnet.num_params)).requires_grad_(True)
    ls0 = torch.full((t, fnet.num_params), -2.0, requires_grad=True)
    lr = 0.05
    pyro.set_rng_seed(11)
    loc1, ls1 = gaussian_steps(
        fnet,
        prior,
        lik,
        x,
        y,
        steps=1,
        lr=lr,
        init=(loc0, ls0),
        differentiable=False,
        scale_update="gradient",
    )
    pyro.set_rng_seed(11)
    model = TaskModel(fnet, prior, lik, learn=True)
    loss = Trace_ELBO(max_plate_nesting=1).differentiable_loss(
        model, NormalGuide(loc0, ls0.exp()), x, y
    )
    g_loc, g_ls = torch.autograd.grad(loss / k, [loc0, ls0])
    step = lr * float(lik.step_scale())
    torch.testing.assert_close(loc1, loc0.detach() - step * g_loc)
    torch.testing.assert_close(ls1, ls0.detach() - step * g_ls)


def test_the_same_model_written_as_a_callable_adapts_as_the_builtin():
    """A Normal of fixed scale as a callable steps like the built-in Gaussian (step_scale 2 s^2)."""
    import bayesmeta as bm

    torch.manual_seed(0)
    builtin = bm.BayesianMAML((1, 8, 1), likelihood="gaussian", noise_scale=0.1, learn_noise=False)
    callable_ = bm.BayesianMAML((1, 8, 1), likelihood=lambda f: dist.Normal(f, 0.1))
    callable_.load_state_dict(builtin.state_dict(), strict=False)
    assert float(callable_.likelihood.step_scale()) == pytest.approx(0.02)
    t = bm.Sinusoid(5, 5, seed=0).sample(3)
    a, b = (
        m.adapt(t.support_x, t.support_y, generator=torch.Generator().manual_seed(0))
        for m in (builtin, callable_)
    )
    torch.testing.assert_close(a.loc, b.loc)
    torch.testing.assert_close(a.log_scale, b.log_scale)
