"""The ArviZ export and SBC use the likelihood's own distribution, not Gaussian noise."""

import pyro.distributions as dist
import pytest
import torch

import bayesmeta as bm
from bayesmeta.diagnostics import to_inference_data
from bayesmeta.diagnostics.sbc import _simulate
from bayesmeta.model.likelihoods import MSELikelihood, StudentTLikelihood


def _student_t_posterior():
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 8, 1), likelihood="student_t", inner_steps=2)
    task = bm.Sinusoid(k_support=5, k_query=7, seed=3).sample(1)[0]
    post = learner.adapt(task.support_x, task.support_y)
    return learner, post, task


def test_export_log_likelihood_is_the_student_t_density():
    learner, post, task = _student_t_posterior()
    idata = to_inference_data(
        post, task.query_x, task.query_y, num_samples=30, generator=torch.Generator().manual_seed(1)
    )
    f = torch.as_tensor(idata.posterior["f"].values).reshape(30, 7, 1)
    scale = learner.likelihood.log_scale.exp().detach()
    want = dist.StudentT(4.0, f, scale).log_prob(task.query_y).sum(-1)
    got = torch.as_tensor(idata.log_likelihood["y"].values).reshape(30, 7)
    torch.testing.assert_close(got, want.to(got.dtype))
    # Gaussian noise of the same scale would give another density
    gaussian = dist.Normal(f, scale).log_prob(task.query_y).sum(-1)
    assert not torch.allclose(got, gaussian.to(got.dtype), atol=1e-3)
    assert idata.posterior_predictive["y"].shape[-2:] == (7, 1)


def test_sbc_simulates_from_the_likelihoods_distribution():
    lik = StudentTLikelihood(df=2.5, scale=1.0)
    out = torch.zeros(20000, 1, 1)
    draws = _simulate(lik, out, torch.Generator().manual_seed(0))
    assert draws.shape == out.shape
    # heavy tails: far more draws beyond 4 scales than a Normal's 6e-5
    assert float((draws.abs() > 4).float().mean()) > 0.01
    same = _simulate(lik, out, torch.Generator().manual_seed(0))
    assert torch.equal(draws, same)


def test_sbc_refuses_a_loss_without_a_distribution():
    with pytest.raises(TypeError, match="generative"):
        _simulate(MSELikelihood(), torch.zeros(3, 2, 1), None)


@pytest.mark.parametrize(
    "prior", [bm.priors.Laplace(scale=0.2), bm.priors.StudentT(scale=0.2, df=5.0)]
)
def test_nuts_reference_keeps_the_learners_prior_family_and_likelihood(prior):
    learner = bm.BayesianMAML((1, 4, 1), prior=prior, likelihood="student_t")
    frozen = learner.prior.frozen(torch.float64)
    assert type(frozen) is type(learner.prior)
    assert frozen.loc.dtype == torch.float64 and not frozen.loc.requires_grad
    torch.testing.assert_close(frozen.scale, learner.prior.scale.detach().double())
    assert getattr(frozen, "df", None) == getattr(learner.prior, "df", None)
    task = bm.Sinusoid(5, 6, seed=0).sample(1)[0]
    ref = bm.diagnostics.reference_posterior(
        learner, task.support_x, task.support_y, num_samples=8, warmup_steps=8, num_chains=2
    )
    pred = ref.predict(task.query_x)
    assert pred.observation is not None  # scored with the Student-t, not Gaussian noise
    f = pred.function_samples
    scale = learner.likelihood.log_scale.exp().detach()
    want = torch.logsumexp(dist.StudentT(4.0, f, scale).log_prob(task.query_y).sum(-1), 0)
    log_s = torch.log(torch.tensor(float(pred.num_samples)))
    torch.testing.assert_close(pred.log_prob(task.query_y), want - log_s)
