import copy

import pytest
import torch

from bayesmeta import MAML, NonFiniteLossError, Prediction, Sinusoid
from bayesmeta.learners import AdaptedPredictor, BayesianMAML
from bayesmeta.posteriors import GaussianTaskPosterior


def test_delta_posterior_with_mse_is_exactly_maml():
    torch.manual_seed(0)
    maml = MAML((1, 40, 40, 1), inner_lr=0.01, inner_steps=5)
    bayes = BayesianMAML(
        (1, 40, 40, 1), likelihood="mse", posterior="delta", inner_lr=0.01, inner_steps=5
    )
    bayes.net.load_state_dict(maml.net.state_dict())
    batch = Sinusoid(10, 10, seed=4).sample(25)
    a, b = maml.meta_loss(batch), bayes.meta_loss(batch)
    assert a.item() == b.item()
    ga = torch.autograd.grad(a, list(maml.net.parameters()))
    gb = torch.autograd.grad(b, list(bayes.net.parameters()))
    for u, v in zip(ga, gb, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_delta_posterior_with_gaussian_likelihood_takes_mamls_steps():
    # The 2 sigma^2 preconditioning makes inner_lr mean the same as MAML's.
    torch.manual_seed(0)
    maml = MAML((1, 16, 1), inner_lr=0.01, inner_steps=3)
    bayes = BayesianMAML(
        (1, 16, 1),
        likelihood="gaussian",
        noise_scale=0.37,
        posterior="delta",
        inner_lr=0.01,
        inner_steps=3,
    )
    bayes.net.load_state_dict(maml.net.state_dict())
    task = Sinusoid(5, 5, seed=1).sample(2)
    a = maml.adapt(task.support_x, task.support_y).params
    b = bayes.adapt(task.support_x, task.support_y).params
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v)


def test_meta_gradient_matches_finite_differences():
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        learner = BayesianMAML(
            (1, 6, 1), prior_scale=0.05, noise_scale=0.5, inner_steps=2, inner_num_particles=2
        )
        batch = Sinusoid(4, 4, seed=0).sample(3)

        def loss() -> torch.Tensor:
            torch.manual_seed(123)  # the same reparameterisation noise every call
            return learner.meta_loss(batch)

        params = [
            learner.prior.log_scale,
            learner.likelihood.log_scale,
            learner.net.layers[0].weight,
        ]
        grads = torch.autograd.grad(loss(), params)
        h = 1e-6
        for p, g in zip(params, grads, strict=True):
            for idx in [0, p.numel() - 1]:
                flat = p.data.view(-1)
                old = float(flat[idx])
                flat[idx] = old + h
                up = loss().item()
                flat[idx] = old - h
                down = loss().item()
                flat[idx] = old
                assert (up - down) / (2 * h) == pytest.approx(
                    float(g.reshape(-1)[idx]), rel=1e-4, abs=1e-7
                )
    finally:
        torch.set_default_dtype(torch.float32)


def test_meta_fit_improves_and_predictions_carry_both_uncertainties():
    torch.manual_seed(0)
    learner = BayesianMAML((1, 40, 40, 1), inner_steps=3, outer_lr=3e-3)
    test = Sinusoid(5, 30, seed=9).sample(100)

    def query_nll() -> float:
        post = learner.adapt(test.support_x, test.support_y)
        pred = post.predict(
            test.query_x, num_samples=32, generator=torch.Generator().manual_seed(0)
        )
        return float(-pred.log_prob(test.query_y).mean())

    before = query_nll()
    history = learner.meta_fit(
        Sinusoid(5, 10, seed=0), iterations=300, meta_batch_size=10, progress=False
    )
    after = query_nll()
    assert after < before - 0.5
    assert sum(history.loss[-30:]) < sum(history.loss[:30])
    task = test[0]
    post = learner.adapt(task.support_x, task.support_y)
    assert isinstance(post, GaussianTaskPosterior) and post.loc.shape == (learner.fnet.num_params,)
    pred = post.predict(task.query_x, num_samples=50)
    assert isinstance(pred, Prediction) and pred.function_samples.shape == (50, 30, 1)
    assert bool((pred.epistemic_std > 0).all())
    torch.testing.assert_close(pred.aleatoric_std, learner.predictive_noise().expand(30, 1))
    lo, hi = pred.interval(0.9)
    assert bool((hi > lo).all())


def test_delta_adapt_returns_point_predictor():
    learner = BayesianMAML((1, 8, 1), posterior="delta")
    task = Sinusoid(5, 5, seed=0).sample(1)[0]
    adapted = learner.adapt(task.support_x, task.support_y)
    assert isinstance(adapted, AdaptedPredictor)
    pred = adapted.predict(task.query_x)
    assert pred.noise_scale is not None  # the Gaussian likelihood's learned noise


def test_bad_input_and_nan_training_raise():
    with pytest.raises(ValueError, match="prior_scale must be positive"):
        BayesianMAML((1, 4, 1), prior_scale=0.0)
    with pytest.raises(ValueError, match="noise_scale must be positive"):
        BayesianMAML((1, 4, 1), noise_scale=-1.0)
    with pytest.raises(ValueError, match="posterior"):
        BayesianMAML((1, 4, 1), posterior="mixture")
    learner = BayesianMAML((1, 4, 1))
    with pytest.raises(ValueError, match="NaN"):
        learner.adapt(torch.tensor([[float("nan")]]), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="needs floating regression targets"):
        learner.adapt(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="needs kl_weight > 0"):
        BayesianMAML((1, 4, 1), kl_weight=0.0)
    with pytest.raises(ValueError, match="scale_rate"):
        BayesianMAML((1, 4, 1), scale_rate=1.5)
    # Plain gradient steps on log-scales overflow with a huge step; the proximal
    # mean step and the natural scale step do not, so blow up the weights instead.
    exploding = [
        BayesianMAML((1, 4, 1), inner_lr=1e30, scale_update="gradient"),
        BayesianMAML((1, 4, 1)),
    ]
    with torch.no_grad():
        exploding[1].net.layers[0].weight.fill_(3e38)
    for learner in exploding:
        before = copy.deepcopy(learner.state_dict())
        with pytest.raises(NonFiniteLossError) as err:
            learner.meta_fit(Sinusoid(5, 5, seed=0), iterations=3, progress=False)
        assert err.value.history is not None
        for key, value in learner.state_dict().items():
            assert torch.equal(before[key], value)


def test_state_dict_round_trip():
    torch.manual_seed(0)
    learner = BayesianMAML((1, 8, 1), scale_per="tensor")
    learner.meta_fit(Sinusoid(5, 5, seed=0), iterations=5, progress=False)
    fresh = BayesianMAML((1, 8, 1), scale_per="tensor")
    fresh.load_state_dict(learner.state_dict())
    task = Sinusoid(5, 5, seed=1).sample(1)[0]
    a = learner.adapt(task.support_x, task.support_y, generator=torch.Generator().manual_seed(0))
    b = fresh.adapt(task.support_x, task.support_y, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.loc, b.loc, rtol=0, atol=1e-6)
    c = fresh.adapt(task.support_x, task.support_y, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a.loc, c.loc)  # the generator really drives the noise
    assert set(learner.state_dict()) == {
        "net.layers.0.weight",
        "net.layers.0.bias",
        "net.layers.1.weight",
        "net.layers.1.bias",
        "likelihood.log_scale",
        "prior.log_scale",
        "units.x_loc",  # standardisation maps, empty here (sinusoids are on unit scale)
        "units.x_scale",
        "units.y_loc",
        "units.y_scale",
        "calibration.variance",  # the predictive noise estimate
    }


@pytest.mark.parametrize("objective", ["predictive", "elbo"])
def test_outer_objective_is_the_scored_predictive_nll_or_the_expected_nll(objective):
    """The query term equals an independent computation from the same draws."""
    from bayesmeta.inference.gaussian_vi import gaussian_steps

    torch.manual_seed(0)
    learner = BayesianMAML(
        (1, 16, 1),
        objective=objective,
        num_particles=6,
        kl_weight=0.0,
        scale_update="gradient",
        inner_steps=2,
    )
    batch = Sinusoid(5, 7, seed=2).sample(4)
    torch.manual_seed(11)
    got = learner.meta_loss(batch)
    torch.manual_seed(11)
    loc, log_scale = gaussian_steps(
        learner.fnet,
        learner.prior,
        learner.likelihood,
        batch.support_x,
        batch.support_y,
        steps=2,
        lr=learner.inner_lr,
        kl_weight=0.0,
    )
    theta = loc + log_scale.exp() * torch.empty(6, *loc.shape).normal_()
    f = learner.fnet(theta, batch.query_x)  # [S, T, Q, 1]
    noise = learner.likelihood.scale
    if objective == "predictive":
        want = -Prediction(f, noise).log_prob(batch.query_y).mean()
    else:
        want = -torch.distributions.Normal(f, noise).log_prob(batch.query_y).mean()
    torch.testing.assert_close(got, want)
