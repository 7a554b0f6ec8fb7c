"""Likelihoods: distributions per point, the per-task loss, output gradients, callables."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import bayesmeta as bm
from bayesmeta.model.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    FunctionLikelihood,
    GaussianLikelihood,
    Likelihood,
    MSELikelihood,
    StudentTLikelihood,
    make_likelihood,
)

B, N, NOUT, C = (2, 3), 5, 2, 4


def _data(kind, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    if kind == "categorical":
        out = torch.randn(*B, N, C, generator=g, dtype=dtype)
        y = torch.randint(C, (*B, N), generator=g)
    elif kind == "bernoulli":
        out = torch.randn(*B, N, NOUT, generator=g, dtype=dtype)
        y = torch.randint(2, (*B, N, NOUT), generator=g).to(dtype)
    else:
        out = torch.randn(*B, N, NOUT, generator=g, dtype=dtype)
        y = out + 0.5 * torch.randn(*B, N, NOUT, generator=g, dtype=dtype)
    return out, y


def _student_t_log_density(y, loc, scale, df):
    z = (y - loc) / scale
    return (
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - math.log(scale)
        - (df + 1) / 2 * torch.log1p(z * z / df)
    )


def _reference(kind, out, y):
    """Per-point log densities ``[*B, N]`` written out by hand."""
    if kind == "gaussian":
        s = 0.3
        return (-0.5 * ((y - out) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)).sum(-1)
    if kind == "student_t":
        return _student_t_log_density(y, out, 0.3, 4.0).sum(-1)
    if kind == "bernoulli":
        p = torch.sigmoid(out)
        return (y * p.log() + (1 - y) * (1 - p).log()).sum(-1)
    if kind == "categorical":
        return torch.log_softmax(out, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    if kind == "mse":
        s2 = NOUT / 2.0  # the normalised Gibbs likelihood Normal(f, sqrt(NOUT / 2))
        return (-0.5 * (y - out) ** 2 / s2 - 0.5 * math.log(2 * math.pi * s2)).sum(-1)
    raise AssertionError(kind)


def _make(kind):
    lik = {
        "gaussian": lambda: GaussianLikelihood(0.3, num_outputs=NOUT),
        "student_t": lambda: StudentTLikelihood(4.0, 0.3, num_outputs=NOUT),
        "bernoulli": BernoulliLikelihood,
        "categorical": CategoricalLikelihood,
        "mse": MSELikelihood,
    }[kind]()
    return lik.double()


KINDS = ["gaussian", "student_t", "bernoulli", "categorical", "mse"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_distribution_has_one_event_per_point_with_the_right_density(kind):
    lik = _make(kind)
    out, y = _data(kind)
    d = lik(out)
    lp = d.log_prob(y)
    assert lp.shape == (*B, N)
    torch.testing.assert_close(lp, _reference(kind, out, y))
    if kind != "mse":  # MSE's point log-likelihood is its Gibbs form, without the constants
        torch.testing.assert_close(lik.point_log_prob(out, y), lp)
    assert d.sample().shape == y.shape


@pytest.mark.parametrize("kind", KINDS)
def test_the_loss_is_the_mean_negative_log_likelihood_per_point(kind):
    lik = _make(kind)
    out, y = _data(kind)
    loss = lik(out, y)
    assert loss.shape == B
    if kind == "mse":
        torch.testing.assert_close(loss, ((out - y) ** 2).mean(dim=(-1, -2)))
        torch.testing.assert_close(lik.point_log_prob(out, y), -((out - y) ** 2).mean(-1))
    else:
        torch.testing.assert_close(loss, -_reference(kind, out, y).mean(-1))


@pytest.mark.parametrize("kind", ["gaussian", "categorical", "mse"])
def test_closed_form_output_grads_equal_autograd(kind):
    lik = _make(kind)
    out, y = _data(kind)
    got = lik.output_grad(out, y)
    want = Likelihood.output_grad(lik, out, y)
    assert got.shape == out.shape
    torch.testing.assert_close(got, want)
    # and by hand: d sum_B loss / d out
    o = out.clone().requires_grad_(True)
    (direct,) = torch.autograd.grad(lik(o, y).sum(), o)
    torch.testing.assert_close(got, direct)


@pytest.mark.parametrize("kind", ["gaussian", "categorical", "mse"])
def test_closed_form_output_grads_have_the_right_second_derivatives(kind):
    lik = _make(kind)
    out, y = _data(kind)
    o = out.clone().requires_grad_(True)
    # under grad mode, both forms stay differentiable (create_graph): equal Jacobians
    jac = torch.autograd.functional.jacobian(lambda v: lik.output_grad(v, y), o)
    ref = torch.autograd.functional.jacobian(lambda v: Likelihood.output_grad(lik, v, y), o)
    torch.testing.assert_close(jac, ref)
    assert float(jac.abs().sum()) > 0
    assert torch.autograd.gradcheck(lambda v: lik.output_grad(v, y), (o,))
    assert torch.autograd.gradcheck(lambda v: Likelihood.output_grad(lik, v, y), (o,))


def test_gaussian_output_grad_is_differentiable_in_the_noise_scale():
    lik = _make("gaussian")
    out, y = _data("gaussian")
    w = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(9))
    o = out.clone().requires_grad_(True)
    (a,) = torch.autograd.grad((lik.output_grad(o, y) * w).sum(), lik.log_scale)
    (b,) = torch.autograd.grad((Likelihood.output_grad(lik, o, y) * w).sum(), lik.log_scale)
    torch.testing.assert_close(a, b)
    assert float(a.abs().sum()) > 0


def test_without_grad_mode_the_autograd_output_grad_is_a_constant():
    lik = _make("student_t")
    out, y = _data("student_t")
    o = out.clone().requires_grad_(True)
    with torch.no_grad():
        g = lik.output_grad(o, y)
    assert not g.requires_grad
    # a Student-t has no closed form here: the base class's autograd is what it uses
    (want,) = torch.autograd.grad(lik(o, y).sum(), o)
    torch.testing.assert_close(g, want)


def test_a_callable_student_t_gives_the_student_t_log_density():
    lik = FunctionLikelihood(lambda f: dist.StudentT(4.0, f, 0.3))
    out, y = _data("student_t", dtype=torch.float32)
    assert not lik.classification
    d = lik(out)
    assert d.event_shape == (NOUT,) and d.batch_shape == (*B, N)
    torch.testing.assert_close(d.log_prob(y), _student_t_log_density(y, out, 0.3, 4.0).sum(-1))
    torch.testing.assert_close(
        lik(out, y), -_student_t_log_density(y, out, 0.3, 4.0).sum(-1).mean(-1)
    )
    # its observation model for predictions is the same distribution, detached
    obs = lik.observation()
    assert obs is not None
    o = out.clone().requires_grad_(True)
    od = obs(o)
    assert not od.log_prob(y).requires_grad
    torch.testing.assert_close(od.log_prob(y), d.log_prob(y))
    # the inner step scale is 2 Var(y | f) = 2 * 0.3^2 * df / (df - 2)
    assert math.isclose(float(lik.step_scale()), 2 * 0.09 * 2.0, rel_tol=1e-5)


@pytest.mark.parametrize(
    ("fn", "classification"),
    [
        (lambda f: dist.Categorical(logits=f), True),
        (lambda f: dist.StudentT(4.0, f, 0.3), False),
        (lambda f: dist.Bernoulli(logits=f), False),
        (lambda f: dist.Normal(f, 1.0).to_event(1), False),
    ],
    ids=["categorical", "student_t", "bernoulli", "normal_event"],
)
def test_class_labels_are_told_from_the_distribution(fn, classification):
    lik = FunctionLikelihood(fn)
    assert lik.classification is classification
    assert (lik.observation() is None) is classification
    assert make_likelihood(fn).classification is classification


def test_callable_categorical_log_prob_has_one_event_per_point():
    lik = FunctionLikelihood(lambda f: dist.Categorical(logits=f))
    out, y = _data("categorical", dtype=torch.float32)
    torch.testing.assert_close(lik(out).log_prob(y), _reference("categorical", out, y))
    torch.testing.assert_close(lik.output_grad(out, y), CategoricalLikelihood().output_grad(out, y))


def test_a_callable_that_returns_no_distribution_is_refused():
    with pytest.raises(TypeError, match="must return a distribution"):
        FunctionLikelihood(lambda f: f + 1.0)
    lik = FunctionLikelihood(lambda f: f, classification=False)  # not probed at construction
    with pytest.raises(TypeError, match="must return a distribution"):
        lik(torch.zeros(1, 2, 1))
    with pytest.raises(TypeError, match="callable"):
        FunctionLikelihood("gaussian")


def test_make_likelihood_names_objects_and_callables():
    assert isinstance(make_likelihood("gaussian", 0.2, outputs=3), GaussianLikelihood)
    g = make_likelihood("gaussian", 0.2, learn_noise=False, outputs=3)
    torch.testing.assert_close(g.noise_scale(), torch.full((3,), 0.2))
    assert not g.log_scale.requires_grad
    assert isinstance(make_likelihood("student_t"), StudentTLikelihood)
    assert isinstance(make_likelihood("mse"), MSELikelihood)
    assert isinstance(make_likelihood("categorical"), CategoricalLikelihood)
    assert isinstance(make_likelihood("bernoulli"), BernoulliLikelihood)
    same = BernoulliLikelihood()
    assert make_likelihood(same) is same
    assert isinstance(make_likelihood(lambda f: dist.Normal(f, 1.0)), FunctionLikelihood)
    with pytest.raises(ValueError, match="likelihood must be"):
        make_likelihood("poisson")


def test_noise_scale_and_observation_of_the_built_ins():
    g = GaussianLikelihood(0.25)
    torch.testing.assert_close(g.noise_scale(), torch.tensor([0.25]))
    assert g.observation() is None
    assert MSELikelihood().observation() is None and MSELikelihood().noise_scale() is None
    assert CategoricalLikelihood().observation() is None
    t = StudentTLikelihood(4.0, 0.3)
    assert t.noise_scale() is None
    obs = t.observation()
    f = torch.zeros(1, 3, 1)
    torch.testing.assert_close(obs(f).log_prob(f), t(f).log_prob(f))
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="noise_scale"):
            GaussianLikelihood(bad)


class _LearnedStudentT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(0.3)))

    def forward(self, f):
        return dist.StudentT(4.0, f, self.log_scale.exp())


def test_a_module_likelihoods_parameters_are_meta_learned():
    torch.manual_seed(0)
    fn = _LearnedStudentT()
    learner = bm.BayesianMAML((1, 8, 1), likelihood=fn, inner_steps=1, outer_lr=0.05)
    assert any(p is fn.log_scale for p in learner.parameters())
    assert any(n.endswith("log_scale") and "likelihood" in n for n, _ in learner.named_parameters())
    before = float(fn.log_scale.detach())
    learner.meta_fit(bm.Sinusoid(5, 5, seed=0), iterations=3, meta_batch_size=4, progress=False)
    assert abs(float(fn.log_scale.detach()) - before) > 1e-3
    # and the learner's model scores y with it
    x = torch.randn(2, 4, 1)
    trace = pyro.poutine.trace(learner.model).get_trace(x)
    base = trace.nodes["y"]["fn"]
    while hasattr(base, "base_dist"):
        base = base.base_dist
    assert isinstance(base, torch.distributions.StudentT)
    torch.testing.assert_close(base.scale, fn.log_scale.detach().exp().expand_as(base.scale))
