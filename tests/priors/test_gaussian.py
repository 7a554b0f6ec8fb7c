import pytest
import torch
from torch.distributions import Normal, kl_divergence

from bayesmeta.errors import ShapeError
from bayesmeta.nets import MLP, FunctionalNet
from bayesmeta.priors import GaussianPrior, gaussian_kl


def test_kl_matches_torch_analytic_kl():
    torch.manual_seed(0)
    q_loc, q_scale = torch.randn(4, 7), torch.rand(4, 7) + 0.1
    p_loc, p_scale = torch.randn(7), torch.rand(7) + 0.2
    want = kl_divergence(Normal(q_loc, q_scale), Normal(p_loc, p_scale)).sum(-1)
    torch.testing.assert_close(gaussian_kl(q_loc, q_scale, p_loc, p_scale), want)


def test_log_prob_matches_torch_normal_for_both_scale_layouts():
    torch.manual_seed(0)
    fnet = FunctionalNet(MLP((2, 3, 1)))
    for scale_per in ("weight", "tensor"):
        prior = GaussianPrior.for_net(fnet, scale=0.3, scale_per=scale_per)
        with torch.no_grad():
            prior.log_scale.add_(0.1 * torch.randn_like(prior.log_scale))
        theta = torch.randn(5, fnet.num_params)
        want = Normal(prior.loc, prior.scale).log_prob(theta).sum(-1)
        torch.testing.assert_close(prior.log_prob(theta), want)
        assert prior.scale.shape == (fnet.num_params,)
    per_tensor = GaussianPrior.for_net(fnet, scale_per="tensor")
    assert per_tensor.log_scale.shape == (4,)  # two layers: weight and bias each


def test_tied_prior_mean_is_the_module_weights():
    net = MLP((1, 4, 1))
    fnet = FunctionalNet(net)
    prior = GaussianPrior.for_net(fnet, loc="tied")
    assert "_loc" not in dict(prior.named_parameters())
    with torch.no_grad():
        net.layers[0].bias.fill_(3.0)
    assert torch.all(prior.loc[4:8] == 3.0)


def test_from_module_centres_on_weights_and_freezes_them():
    net = MLP((2, 5, 1))
    prior = GaussianPrior.from_module(net, scale=0.05)
    torch.testing.assert_close(
        prior.loc, torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    )
    assert not prior.loc.requires_grad and prior.log_scale.requires_grad
    torch.testing.assert_close(prior.scale, torch.full((prior.num_params,), 0.05))


def test_mismatched_and_bad_priors_are_refused():
    fnet = FunctionalNet(MLP((1, 4, 1)))
    with pytest.raises(ShapeError, match="P = 13"):
        GaussianPrior.for_net(fnet, loc=torch.zeros(12))
    prior = GaussianPrior(torch.zeros(12))
    with pytest.raises(ShapeError, match="network has P = 13"):
        prior.check(fnet)
    with pytest.raises(ValueError, match="positive"):
        GaussianPrior(torch.zeros(3), scale=0.0)
    with pytest.raises(ValueError, match="positive"):
        GaussianPrior(torch.zeros(3), scale=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ShapeError, match=r"shape \[3\]"):
        GaussianPrior(torch.zeros(3), scale=torch.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        GaussianPrior(torch.tensor([0.0, float("nan")]))


def test_kl_from_matches_torch_analytic_kl_per_weight_and_per_tensor():
    torch.manual_seed(3)
    fnet = FunctionalNet(MLP((2, 4, 1)))
    for scale_per in ("weight", "tensor"):
        prior = GaussianPrior.for_net(fnet, scale=0.3, loc="module", scale_per=scale_per)
        with torch.no_grad():
            prior.log_scale.normal_(-1.0, 0.3)
        q_loc = prior.loc.detach() + torch.randn(5, fnet.num_params)
        q_log_scale = torch.randn(5, fnet.num_params) * 0.5 - 1.0
        want = torch.distributions.kl_divergence(
            torch.distributions.Normal(q_loc, q_log_scale.exp()),
            torch.distributions.Normal(prior.loc, prior.scale),
        ).sum(-1)
        torch.testing.assert_close(prior.kl_from(q_loc, q_log_scale), want, rtol=1e-5, atol=1e-4)


def test_point_log_probs_match_torch_and_average_to_the_losses():
    from bayesmeta.priors import CategoricalLikelihood, GaussianLikelihood, MSELikelihood

    torch.manual_seed(0)
    out, y = torch.randn(3, 5, 2), torch.randn(3, 5, 2)
    gauss = GaussianLikelihood(0.4, num_outputs=2)
    want = Normal(out, gauss.scale).log_prob(y).sum(-1)
    torch.testing.assert_close(gauss.point_log_prob(out, y), want)
    labels = torch.randint(0, 2, (3, 5))
    cat = CategoricalLikelihood()
    want = torch.distributions.Categorical(logits=out).log_prob(labels)
    torch.testing.assert_close(cat.point_log_prob(out, labels), want)
    for lik, target in ((gauss, y), (cat, labels), (MSELikelihood(), y)):
        torch.testing.assert_close(lik(out, target), -lik.point_log_prob(out, target).mean(-1))
