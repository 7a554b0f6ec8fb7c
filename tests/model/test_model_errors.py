"""Bad input to the model's public pieces is refused with an error that names it."""

import pyro.distributions as dist
import pytest
import torch

import bayesmeta as bm
from bayesmeta.errors import ShapeError
from bayesmeta.inference.task_svi import task_posterior_svi
from bayesmeta.model import TaskModel
from bayesmeta.model.likelihoods import FunctionLikelihood, make_likelihood
from bayesmeta.nets import MLP, FunctionalNet


def test_priors_refuse_bad_scales_and_degrees_of_freedom():
    for bad in (0.0, -1.0, float("nan"), True, "wide"):
        with pytest.raises((ValueError, TypeError), match="scale"):
            bm.priors.Laplace(scale=bad)
    with pytest.raises(ValueError, match="df must be"):
        bm.priors.StudentT(df=0.0)
    with pytest.raises(ValueError, match="scale_per"):
        bm.priors.Normal(scale_per="layer")
    with pytest.raises(ValueError, match="num_params"):
        bm.priors.Flat(0)


def test_an_unbound_prior_says_how_to_bind_it():
    with pytest.raises(RuntimeError, match="not bound to a network"):
        _ = bm.priors.Laplace().loc


def test_a_bound_prior_must_fit_its_network():
    small = FunctionalNet(MLP((1, 4, 1)))
    prior = bm.priors.Laplace(scale=0.1).bind(small)
    with pytest.raises(ShapeError, match="P = "):
        prior.bind(FunctionalNet(MLP((1, 8, 1))))


def test_bayesian_maml_refuses_other_priors_and_priors_centred_elsewhere():
    with pytest.raises(TypeError, match=r"bm\.priors\.Laplace"):
        bm.BayesianMAML((1, 4, 1), prior=torch.distributions.Laplace(0.0, 1.0))
    with pytest.raises(ValueError, match="prior must be one of"):
        bm.BayesianMAML((1, 4, 1), prior="horseshoe")
    source = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match="ties the prior's location"):
        bm.BayesianMAML((1, 4, 1), prior=bm.priors.Normal.from_module(source))


def test_likelihoods_refuse_what_is_not_a_distribution_factory():
    with pytest.raises(TypeError, match="callable"):
        FunctionLikelihood(3.0)
    with pytest.raises(TypeError, match="must return a distribution"):
        FunctionLikelihood(lambda f: f * 2)
    with pytest.raises(ValueError, match="likelihood must be"):
        make_likelihood("poisson")
    with pytest.raises(ValueError, match="could not call the likelihood"):
        FunctionLikelihood(lambda f: dist.Normal(f[..., 5], 1.0))


def test_the_model_refuses_inputs_without_a_task_dimension_and_mismatched_targets():
    learner = bm.BayesianMAML((1, 4, 1))
    with pytest.raises(ShapeError, match="add a task dimension"):
        learner.model(torch.zeros(5, 1))
    with pytest.raises(ShapeError, match="y must have x's tasks and points"):
        learner.model(torch.zeros(2, 5, 1), torch.zeros(3, 5, 1))
    model = TaskModel(learner.fnet, learner.prior, learner.likelihood)
    with pytest.raises(ShapeError):
        model("x")


def test_task_svi_refuses_a_guide_it_does_not_have():
    fnet = FunctionalNet(MLP((1, 4, 1)))
    prior = bm.priors.Normal(scale=0.1).bind(fnet, loc="module")
    with pytest.raises(ValueError, match="guide must be 'normal' or 'lowrank'"):
        task_posterior_svi(
            fnet,
            prior,
            bm.priors.GaussianLikelihood(),
            torch.zeros(1, 3, 1),
            torch.zeros(1, 3, 1),
            guide="iaf",
            steps=1,
            lr=0.1,
        )


def test_a_prediction_takes_a_noise_scale_or_an_observation_model_not_both():
    f = torch.zeros(2, 3, 1)
    with pytest.raises(ValueError, match="not both"):
        bm.Prediction(f, torch.ones(1), lambda g: dist.Normal(g, 1.0))
    with pytest.raises(TypeError, match="callable"):
        bm.Prediction(f, None, 3.0)


def test_adapt_with_a_guide_refuses_bad_step_counts_and_rates():
    from pyro.infer.autoguide import AutoNormal

    learner = bm.BayesianMAML((1, 4, 1))
    task = bm.Sinusoid(3, 3, seed=0).sample(1)[0]
    with pytest.raises(ValueError, match="steps"):
        learner.adapt(task.support_x, task.support_y, guide=AutoNormal, steps=0)
    with pytest.raises(ValueError, match="lr must be positive"):
        learner.adapt(task.support_x, task.support_y, guide=AutoNormal, lr=-1.0)
