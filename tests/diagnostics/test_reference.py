import math

import pytest
import torch
from torch import nn

from bayesmeta import MAML, BayesianMAML, Prediction, ShapeError, VariationalMetaLearner
from bayesmeta.diagnostics.reference import (
    ReferencePosterior,
    compare_predictives,
    nuts_posterior,
    reference_posterior,
)
from bayesmeta.model.likelihoods import GaussianLikelihood
from bayesmeta.model.priors import GaussianPrior
from bayesmeta.nets import MLP, FunctionalNet

NOISE = 0.3
KEYS = {"mean_gap", "width_ratio", "epistemic_std_gap"}


def linear_problem(
    k: int = 12,
) -> tuple[FunctionalNet, GaussianPrior, GaussianLikelihood, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    fnet = FunctionalNet(nn.Linear(2, 1))
    # Weights [w1, w2] then the bias, as nn.Linear's named_parameters order them.
    prior = GaussianPrior(
        torch.tensor([0.5, -0.3, 0.1]),
        torch.tensor([1.0, 0.7, 1.5]),
        learn_loc=False,
        learn_scale=False,
    )
    likelihood = GaussianLikelihood(NOISE, learn_scale=False)
    x = torch.randn(k, 2, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0]]) + 0.5 + NOISE * torch.randn(k, 1, generator=gen)
    return fnet, prior, likelihood, x, y


def sinusoid(k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(k, 1, generator=gen) * 10 - 5
    return x, 2.0 * torch.sin(x - 0.5)


def closed_form(prior: GaussianPrior, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Bayesian linear regression posterior N(m, S) over [w, b] with known noise."""
    design = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    prior_precision = torch.diag(prior.scale.detach().double().pow(-2))
    cov = torch.linalg.inv(prior_precision + design.T @ design / NOISE**2)
    data = design.T @ y.double()[:, 0] / NOISE**2
    mean = cov @ (prior_precision @ prior.loc.detach().double() + data)
    return mean, cov


def test_nuts_matches_conjugate_linear_regression() -> None:
    fnet, prior, likelihood, x, y = linear_problem()
    post = nuts_posterior(fnet, prior, likelihood, x, y, num_samples=400, warmup_steps=200)
    assert isinstance(post, ReferencePosterior)
    assert post.samples.shape == (2, 400, 3) and post.samples.dtype == torch.float32
    mean, cov = closed_form(prior, x, y)
    draws = post.samples.reshape(-1, 3).double()
    sd = cov.diagonal().sqrt()
    # Monte Carlo error of the mean is sd / sqrt(ESS) (ESS ~ 500-800 here): 0.2 sd is ~5 se.
    assert ((draws.mean(0) - mean).abs() / sd).max() < 0.2
    assert torch.allclose(post.loc.double(), draws.mean(0), atol=1e-6)
    # Covariance in the closed form's whitened coordinates: the identity, up to MC error.
    chol = torch.linalg.cholesky(cov)
    white = torch.linalg.solve_triangular(chol, (draws - mean).T, upper=False)
    assert (torch.cov(white) - torch.eye(3)).abs().max() < 0.3
    summary = post.summary()
    assert set(summary) == {"max_rhat", "min_ess_bulk", "divergences", "num_chains", "num_draws"}
    assert summary["max_rhat"] < 1.05
    assert summary["min_ess_bulk"] > 200
    assert summary["divergences"] == 0
    assert (summary["num_chains"], summary["num_draws"]) == (2, 400)


def test_seeded_and_leaves_global_rng_alone() -> None:
    fnet, prior, likelihood, x, y = linear_problem()
    kwargs = {"num_samples": 10, "warmup_steps": 10, "num_chains": 1, "seed": 3}
    torch.manual_seed(0)
    a = nuts_posterior(fnet, prior, likelihood, x, y, **kwargs)
    after = torch.rand(1)
    torch.manual_seed(0)
    b = nuts_posterior(fnet, prior, likelihood, x, y, **kwargs)
    assert torch.equal(torch.rand(1), after)
    assert torch.equal(a.samples, b.samples)
    gen = torch.Generator().manual_seed(0)
    theta = a.sample(7, generator=gen)
    assert theta.shape == (7, 3)
    assert all(any(torch.equal(t, d) for d in a.samples[0]) for t in theta)
    assert torch.equal(theta, a.sample(7, generator=torch.Generator().manual_seed(0)))


@pytest.fixture(scope="module")
def bmaml_reference() -> tuple[BayesianMAML, ReferencePosterior]:
    torch.manual_seed(0)
    learner = BayesianMAML(
        MLP((1, 8, 1), activation="tanh"), noise_scale=0.5, learn_noise=False, prior_scale=0.5
    )
    x, y = sinusoid(10, seed=2)
    ref = reference_posterior(learner, x, y, num_samples=30, warmup_steps=30, seed=1)
    return learner, ref


def test_mlp_sinusoid_reference_predicts(
    bmaml_reference: tuple[BayesianMAML, ReferencePosterior],
) -> None:
    _, ref = bmaml_reference
    assert ref.samples.shape == (2, 30, 25)
    assert ref.batch_shape == ()
    assert torch.isfinite(ref.rhat).all() and torch.isfinite(ref.ess_bulk).all()
    assert ref.noise_scale is not None and torch.allclose(ref.noise_scale, torch.tensor([0.5]))
    qx, _ = sinusoid(15, seed=3)
    pred = ref.predict(qx, num_samples=40, generator=torch.Generator().manual_seed(0))
    assert isinstance(pred, Prediction)
    assert pred.function_samples.shape == (40, 15, 1)
    assert pred.mean.shape == pred.std.shape == (15, 1)


def test_compare_bayesian_maml_with_reference(
    bmaml_reference: tuple[BayesianMAML, ReferencePosterior],
) -> None:
    learner, ref = bmaml_reference
    x, y = sinusoid(10, seed=2)
    qx, qy = sinusoid(15, seed=3)
    gen = torch.Generator().manual_seed(0)
    approx = learner.adapt(x, y, generator=gen).predict(qx, num_samples=50, generator=gen)
    reference = ref.predict(qx, num_samples=50, generator=gen)
    assert isinstance(approx, Prediction) and isinstance(reference, Prediction)
    out = compare_predictives(approx, reference, qy, level=0.8)
    assert set(out) == KEYS | {"nll_approx", "nll_reference"}
    assert all(math.isfinite(v) for v in out.values())
    assert out["mean_gap"] >= 0 and out["width_ratio"] > 0 and out["epistemic_std_gap"] >= 0
    same = compare_predictives(reference, reference)
    assert set(same) == KEYS
    assert same["mean_gap"] == 0 and same["width_ratio"] == 1 and same["epistemic_std_gap"] == 0


def test_reference_posterior_with_variational_learner() -> None:
    torch.manual_seed(0)
    learner = VariationalMetaLearner([1, 4, 1], noise_scale=0.5)
    x, y = sinusoid(6, seed=4)
    ref = reference_posterior(learner, x, y, num_samples=10, warmup_steps=10, num_chains=1)
    assert ref.samples.shape == (1, 10, learner.fnet.num_params)
    assert ref.num_chains == 1 and ref.num_draws == 10
    assert torch.isfinite(ref.samples).all()


def test_reference_posterior_refuses_other_learners() -> None:
    x, y = sinusoid(5, seed=0)
    with pytest.raises(TypeError, match="BayesianMAML and VariationalMetaLearner"):
        reference_posterior(MAML([1, 4, 1]), x, y)


def test_input_errors() -> None:
    fnet, prior, likelihood, x, y = linear_problem()
    with pytest.raises(ShapeError, match="one task"):
        nuts_posterior(fnet, prior, likelihood, x[None].expand(2, -1, -1), y[None])
    with pytest.raises(ShapeError, match="support_y"):
        nuts_posterior(fnet, prior, likelihood, x, y[:, 0])
    with pytest.raises(ShapeError, match="support_y"):
        nuts_posterior(fnet, prior, likelihood, x, torch.cat([y, y], 1))
    with pytest.raises(ValueError, match="num_samples"):
        nuts_posterior(fnet, prior, likelihood, x, y, num_samples=0)
    with pytest.raises(ValueError, match="num_chains"):
        nuts_posterior(fnet, prior, likelihood, x, y, num_chains=0)
    with pytest.raises(ValueError, match="max_params"):
        nuts_posterior(fnet, prior, likelihood, x, y, max_params=2)
    big = FunctionalNet(MLP((2, 100, 100, 1)))
    with pytest.raises(ValueError, match="raise max_params"):
        nuts_posterior(big, GaussianPrior.for_net(big), likelihood, x, y)
    with pytest.raises(ShapeError, match="P = 3"):
        nuts_posterior(big, prior, likelihood, x, y, max_params=20_000)


def test_compare_predictives_errors() -> None:
    gen = torch.Generator().manual_seed(0)
    a = Prediction(torch.randn(20, 5, 1, generator=gen), torch.tensor(0.3))
    b = Prediction(torch.randn(20, 6, 1, generator=gen), torch.tensor(0.3))
    with pytest.raises(ShapeError, match="same query_x"):
        compare_predictives(a, b)
    with pytest.raises(ShapeError, match="y must have"):
        compare_predictives(a, a, torch.zeros(5))
    with pytest.raises(TypeError, match="regression Prediction"):
        compare_predictives(a, a.mean)  # type: ignore[arg-type]


def test_reference_posterior_checks_its_fields() -> None:
    fnet = FunctionalNet(nn.Linear(2, 1))
    ones = torch.ones(3)
    with pytest.raises(ShapeError, match=r"\[C, D, P\]"):
        ReferencePosterior(fnet, torch.zeros(4, 3), None, False, ones, ones, 0)
    with pytest.raises(ShapeError, match="rhat"):
        ReferencePosterior(fnet, torch.zeros(1, 4, 3), None, False, ones[:2], ones, 0)
