import math

import pyro
import pytest
import torch
from pyro import poutine
from torch.distributions import Normal

from bayesmeta.errors import ShapeError
from bayesmeta.nets import MLP, FunctionalNet
from bayesmeta.priors import HierarchicalGaussianPrior, HyperPosterior


def _model(hyper, num_tasks):
    prior = hyper.sample_prior()
    with pyro.plate("tasks", num_tasks, dim=-1):
        return pyro.sample("theta", prior)


@pytest.mark.parametrize("scale_per", ["weight", "tensor"])
def test_log_joint_matches_the_written_out_hierarchy(scale_per):
    torch.manual_seed(0)
    fnet = FunctionalNet(MLP((2, 3, 1)))
    p = fnet.num_params
    hyper = HierarchicalGaussianPrior.for_net(
        fnet, loc="module", loc_std=0.7, scale=0.2, log_scale_std=0.4, scale_per=scale_per
    )
    trace = poutine.trace(_model).get_trace(hyper, 5)
    loc = trace.nodes["prior_loc"]["value"]
    log_scale = trace.nodes["prior_log_scale"]["value"]
    theta = trace.nodes["theta"]["value"]
    assert loc.shape == (p,) and theta.shape == (5, p)
    assert log_scale.shape == ((p,) if scale_per == "weight" else (4,))
    # psi is global (outside the plate); theta is inside it
    assert trace.nodes["prior_loc"]["cond_indep_stack"] == ()
    assert [f.name for f in trace.nodes["theta"]["cond_indep_stack"]] == ["tasks"]
    per_weight = (
        log_scale
        if scale_per == "weight"
        else log_scale.repeat_interleave(torch.tensor(fnet.numels))
    )
    m0 = fnet.flatten([w.detach() for w in fnet.params()])
    want = (
        Normal(m0, 0.7).log_prob(loc).sum()
        + Normal(math.log(0.2), 0.4).log_prob(log_scale).sum()
        + Normal(loc, per_weight.exp()).log_prob(theta).sum()
    )
    torch.testing.assert_close(trace.log_prob_sum(), want)


def test_fixed_scale_has_no_scale_site():
    fnet = FunctionalNet(MLP((1, 4, 1)))
    hyper = HierarchicalGaussianPrior.for_net(fnet, scale=0.3, log_scale_std=None)
    assert not hyper.learns_scale
    trace = poutine.trace(_model).get_trace(hyper, 2)
    assert "prior_log_scale" not in trace.nodes
    prior = hyper.conditional(torch.zeros(fnet.num_params))
    torch.testing.assert_close(prior.base_dist.scale, torch.full((fnet.num_params,), 0.3))
    assert "log_scale_std" not in hyper.state_dict()


def test_hyper_posterior_names_the_same_sites_as_the_hyper_prior():
    hyper = HierarchicalGaussianPrior(torch.zeros(3), 1.0, 0.5, 0.2)
    q = HyperPosterior(torch.zeros(3), torch.ones(3), torch.zeros(3), torch.ones(3))
    assert q.distributions().keys() == hyper.hyper_distributions().keys()
    fixed = HyperPosterior(torch.zeros(3), torch.ones(3), None, None)
    assert list(fixed.distributions()) == ["prior_loc"]


def test_buffers_follow_dtype_and_state_dict():
    hyper = HierarchicalGaussianPrior(torch.zeros(4), 2.0, 0.1, 0.5).to(torch.float64)
    assert hyper.loc_std.dtype == torch.float64
    other = HierarchicalGaussianPrior(torch.ones(4), 1.0, 1.0, 1.0).to(torch.float64)
    other.load_state_dict(hyper.state_dict())
    torch.testing.assert_close(other.log_scale_mean, torch.full((4,), math.log(0.1)).double())


def test_bad_hyper_priors_are_refused():
    fnet = FunctionalNet(MLP((1, 4, 1)))
    with pytest.raises(ShapeError, match="loc must be a non-empty vector"):
        HierarchicalGaussianPrior(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        HierarchicalGaussianPrior(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="loc_std must be positive"):
        HierarchicalGaussianPrior(torch.zeros(3), loc_std=0.0)
    with pytest.raises(ValueError, match="scale must be positive"):
        HierarchicalGaussianPrior(torch.zeros(3), scale=-1.0)
    with pytest.raises(ValueError, match="log_scale_std must be positive"):
        HierarchicalGaussianPrior(torch.zeros(3), log_scale_std=float("inf"))
    with pytest.raises(ShapeError, match=r"scale must be a float or have shape \[3\]"):
        HierarchicalGaussianPrior(torch.zeros(3), scale=torch.ones(2))
    with pytest.raises(ShapeError, match=r"shape \[2\] \(one per tensor\)"):
        HierarchicalGaussianPrior(
            torch.zeros(3), log_scale_std=torch.ones(3), numels=(2, 1), scale_per="tensor"
        )
    with pytest.raises(ShapeError, match="sum to 4"):
        HierarchicalGaussianPrior(torch.zeros(3), numels=(2, 2))
    with pytest.raises(ValueError, match="scale_per"):
        HierarchicalGaussianPrior(torch.zeros(3), scale_per="layer")
    with pytest.raises(TypeError, match="loc_std must be a float"):
        HierarchicalGaussianPrior(torch.zeros(3), loc_std="big")
    with pytest.raises(ShapeError, match="P = 13"):
        HierarchicalGaussianPrior.for_net(fnet, loc=torch.zeros(12))
    with pytest.raises(ValueError, match="'zeros', 'module'"):
        HierarchicalGaussianPrior.for_net(fnet, loc="tied")
    with pytest.raises(ShapeError, match="network has P = 13"):
        HierarchicalGaussianPrior(torch.zeros(12)).check(fnet)
