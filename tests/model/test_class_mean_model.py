"""ProtoNet and BayesianProtoNet as Pyro models: the class-mean model in embedding space."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import MCMC, NUTS, Predictive, Trace_ELBO

import bayesmeta as bm
from bayesmeta.errors import ShapeError
from bayesmeta.learners.bayesian_protonet import sample_log_probs
from bayesmeta.model.class_mean_model import ClassMeanModel


def _task(seed: int = 0, k: int = 3, n_way: int = 3, d: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    sy = torch.arange(n_way).repeat_interleave(k)
    sx = torch.randn(n_way * k, d, generator=g) + sy.unsqueeze(-1).float()
    qx = torch.randn(5, d, generator=g)
    return sx, sy, qx


def _frequencies(labels: torch.Tensor, n_way: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n_way).double().mean(0)


def test_protonet_predictive_draws_labels_from_its_probabilities() -> None:
    torch.manual_seed(0)
    learner = bm.ProtoNet(torch.nn.Linear(3, 2))
    sx, sy, qx = _task()
    post = learner.adapt(sx, sy)
    draws = Predictive(learner.model, guide=post.guide, num_samples=6000, parallel=True)(
        qx.unsqueeze(0), n_way=3
    )
    # A point mass: every draw of the class means is the prototypes.
    prototypes = learner.embed(sx.unsqueeze(0))[0][0].detach()
    means = torch.stack([prototypes[sy == c].mean(0) for c in range(3)]).flatten()
    assert torch.allclose(draws["theta"], means.expand(6000, 1, -1), atol=1e-6)
    freq = _frequencies(draws["y"][:, 0], 3)
    probs = post.predict(qx).probs.reshape(5, 3).double()
    assert (freq - probs).abs().max() < 0.03  # 6000 draws: sd of a frequency <= 0.0065


def test_bayesian_protonet_predictive_agrees_with_sampled_predict() -> None:
    torch.manual_seed(1)
    learner = bm.BayesianProtoNet(torch.nn.Linear(3, 2), prior_scale=0.7, obs_scale=0.8)
    sx, sy, qx = _task(1, k=2)
    post = learner.adapt(sx, sy)
    draws = Predictive(learner.model, guide=post.guide, num_samples=6000, parallel=True)(
        qx.unsqueeze(0), n_way=3
    )
    # theta draws have the posterior's moments
    context = learner.posterior(learner.embed(sx.unsqueeze(0))[0][0].detach(), sy)
    theta = draws["theta"][:, 0].double()
    assert torch.allclose(theta.mean(0), context.mean.flatten().double(), atol=0.03)
    sd = context.var.sqrt().unsqueeze(-1).expand(3, 2).flatten().double()
    assert torch.allclose(theta.std(0), sd, rtol=0.05)
    freq = _frequencies(draws["y"][:, 0], 3)
    (zq,) = learner.embed(qx.unsqueeze(0))
    g = torch.Generator().manual_seed(0)
    # Predictive draws theta from the support posterior: the draws without the query update
    ref = sample_log_probs(context, zq[0].detach(), 20000, generator=g, query_update=False)
    ref = ref.exp().mean(0).double()
    assert (freq - ref).abs().max() < 0.03


def test_joint_density_is_the_conjugate_class_model() -> None:
    torch.manual_seed(2)
    tau, sigma = 0.9, 0.6
    learner = bm.BayesianProtoNet(
        torch.nn.Linear(3, 2), prior_scale=tau, obs_scale=sigma, prior_mean="zero"
    )
    sx, sy, _ = _task(2)
    theta = torch.randn(1, 6)
    conditioned = pyro.poutine.condition(learner.model, data={"theta": theta})
    tr = pyro.poutine.trace(conditioned).get_trace(sx.unsqueeze(0), sy.unsqueeze(0))
    total = tr.log_prob_sum()
    z = learner.embed(sx.unsqueeze(0))[0][0].detach().double()
    mu = theta.reshape(3, 2).double()
    by_hand = (
        torch.distributions.Normal(mu[sy], sigma).log_prob(z).sum()
        - len(sy) * math.log(3)
        + torch.distributions.Normal(0.0, tau).log_prob(mu).sum()
    )
    assert abs(float(total) - float(by_hand)) < 1e-4


def test_nuts_recovers_the_closed_form_posterior_and_leaves_the_learner_alone() -> None:
    torch.manual_seed(3)
    learner = bm.BayesianProtoNet(torch.nn.Linear(3, 2), prior_scale=0.8, obs_scale=0.5)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    sx, sy, _ = _task(3, k=3, n_way=2)
    mcmc = MCMC(NUTS(learner.model), num_samples=600, warmup_steps=300, disable_progbar=True)
    mcmc.run(sx.unsqueeze(0), sy.unsqueeze(0))
    theta = mcmc.get_samples()["theta"][:, 0].double()
    exact = learner.posterior(learner.embed(sx.unsqueeze(0))[0][0].detach(), sy)
    sd = exact.var.sqrt().unsqueeze(-1).expand(2, 2).flatten().double()
    # 600 draws: Monte Carlo error of a mean about sd / 15 (autocorrelated draws: allow 4 of those)
    assert ((theta.mean(0) - exact.mean.flatten()).abs() < 4 * sd / 15).all()
    assert torch.allclose(theta.std(0), sd, rtol=0.2)
    for name, value in learner.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(p.grad is None for p in learner.parameters())


def test_meta_model_lets_gradients_reach_the_encoder_and_scales() -> None:
    torch.manual_seed(4)
    learner = bm.BayesianProtoNet(torch.nn.Linear(3, 2))
    sx, sy, _ = _task(4)
    post = learner.adapt(sx, sy)
    loss = Trace_ELBO().differentiable_loss(
        learner.meta_model(), post.guide, sx.unsqueeze(0), sy.unsqueeze(0)
    )
    loss.backward()
    assert learner.net.weight.grad is not None and learner.net.weight.grad.abs().sum() > 0
    assert learner.log_obs_scale.grad is not None
    learner.zero_grad(set_to_none=True)
    loss = Trace_ELBO().differentiable_loss(
        learner.model, post.guide, sx.unsqueeze(0), sy.unsqueeze(0)
    )
    assert not loss.requires_grad and learner.net.weight.grad is None


def test_flat_prior_draws_return_the_class_means() -> None:
    learner = bm.ProtoNet(torch.nn.Linear(3, 2))
    sx, sy, _ = _task(5)
    tr = pyro.poutine.trace(learner.model).get_trace(sx.unsqueeze(0), sy.unsqueeze(0))
    z = learner.embed(sx.unsqueeze(0))[0][0].detach()
    means = torch.stack([z[sy == c].mean(0) for c in range(3)]).flatten()
    assert torch.allclose(tr.nodes["theta"]["value"][0], means, atol=1e-6)
    assert float(tr.nodes["theta"]["fn"].log_prob(tr.nodes["theta"]["value"]).sum()) == 0.0


def test_batched_guide_over_tasks() -> None:
    learner = bm.BayesianProtoNet(torch.nn.Linear(3, 2))
    tasks = [_task(s, k=2, n_way=2) for s in range(3)]
    sx = torch.stack([t[0] for t in tasks])
    sy = torch.stack([t[1] for t in tasks])
    qx = torch.stack([t[2] for t in tasks])
    post = learner.adapt(sx, sy)
    draws = Predictive(learner.model, guide=post.guide, num_samples=7)(qx, n_way=2)
    assert draws["theta"].shape == (7, 3, 4) and draws["y"].shape == (7, 3, 5)
    with pytest.raises(ShapeError, match="3 task posteriors"):
        Predictive(learner.model, guide=post.guide, num_samples=2)(qx[:2], n_way=2)


def test_model_errors() -> None:
    learner = bm.BayesianProtoNet(torch.nn.Linear(3, 2))
    sx, sy, _ = _task()
    with pytest.raises(ValueError, match="pass n_way"):
        learner.model(sx.unsqueeze(0))
    with pytest.raises(ShapeError, match="task dimension"):
        learner.model(sx, sy)
    with pytest.raises(ShapeError, match="integer labels"):
        learner.model(sx.unsqueeze(0), sy.unsqueeze(0).float())
    with pytest.raises(ValueError, match=r"0\.\.1"):
        learner.model(sx.unsqueeze(0), sy.unsqueeze(0), n_way=2)
    with pytest.raises(NotImplementedError, match="cosine"):
        _ = bm.ProtoNet(torch.nn.Linear(3, 2), distance="cosine").model
    with pytest.raises(NotImplementedError, match="attention"):
        _ = bm.MatchingNet(torch.nn.Linear(3, 2)).model
    with pytest.raises(NotImplementedError, match="no probabilistic model"):
        _ = bm.MatchingNet(torch.nn.Linear(3, 2)).adapt(sx, sy).guide
    conv = bm.ProtoNet(bm.nets.Conv4(1, None, hidden=4), feature_dims=3)
    with pytest.raises(NotImplementedError, match="batch statistics"):
        _ = conv.model
    with pytest.raises(NotImplementedError, match="batch statistics"):
        _ = conv.adapt(torch.randn(2, 1, 28, 28), torch.tensor([0, 1])).guide


def test_model_repr_and_type() -> None:
    assert isinstance(bm.ProtoNet(torch.nn.Linear(3, 2)).model, ClassMeanModel)
    assert "flat" in repr(bm.ProtoNet(torch.nn.Linear(3, 2)).model)
