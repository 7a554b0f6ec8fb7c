"""ArviZ export: groups, dimensions and coordinates, and ArviZ's own functions on the result."""

import arviz as az
import matplotlib
import numpy as np
import pytest
import torch

import bayesmeta as bm
from bayesmeta.diagnostics.inference_data import to_inference_data
from bayesmeta.nets import MLP
from bayesmeta.tasks import Sinusoid
from bayesmeta.transfer import BayesianLastLayer, TransferLearner

matplotlib.use("Agg")

# az.loo / az.waic warn when a few draws give a large Pareto k or log-density variance; these
# tests check the export's plumbing (finite values, shapes), not the quality of these fits.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning"),
    pytest.mark.filterwarnings("ignore:For one or more samples the posterior variance:UserWarning"),
    # arviz 0.23's plots call a matplotlib API that 3.11 deprecates: not ours to fix
    pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping"),
]


@pytest.fixture(scope="module")
def batch():
    return Sinusoid(5, 12, seed=0, noise_std=0.1).sample(3)


@pytest.fixture(scope="module")
def bmaml(batch):
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 8, 1), inner_steps=2)
    learner.meta_fit(Sinusoid(5, 5, seed=1), iterations=5, meta_batch_size=4, progress=False)
    return learner


def test_groups_dims_and_coords_of_a_batch_of_gaussian_posteriors(bmaml, batch):
    post = bmaml.adapt(batch.support_x, batch.support_y)
    idata = to_inference_data(
        post,
        batch.query_x,
        batch.query_y,
        num_samples=50,
        generator=torch.Generator().manual_seed(0),
    )
    assert set(idata.groups()) >= {
        "posterior",
        "posterior_predictive",
        "log_likelihood",
        "observed_data",
        "constant_data",
    }
    p = idata.posterior
    assert p.sizes["chain"] == 1 and p.sizes["draw"] == 50 and p.sizes["task"] == 3
    assert p["layers.0.weight"].dims == (
        "chain",
        "draw",
        "task",
        "layers.0.weight_dim_0",
        "layers.0.weight_dim_1",
    )
    assert p["layers.0.weight"].shape == (1, 50, 3, 8, 1)
    assert p["f"].dims == ("chain", "draw", "task", "point", "output")
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "task", "point")
    assert idata.posterior_predictive["y"].shape == (1, 50, 3, 12, 1)
    np.testing.assert_array_equal(idata.observed_data["y"].values, batch.query_y.numpy())
    np.testing.assert_array_equal(p.coords["task"].values, np.arange(3))
    assert "one chain" in idata.posterior.attrs["sampling"]
    assert idata.posterior.attrs["posterior_type"] == "GaussianTaskPosterior"


def test_log_likelihood_is_the_gaussian_density_of_each_draw(bmaml, batch):
    post = bmaml.adapt(batch.support_x, batch.support_y)
    idata = to_inference_data(post, batch.query_x, batch.query_y, num_samples=20)
    f = torch.as_tensor(idata.posterior["f"].values)[0]
    noise = post.noise_scale
    want = torch.distributions.Normal(f, noise).log_prob(batch.query_y).sum(-1)
    got = torch.as_tensor(idata.log_likelihood["y"].values)[0]
    torch.testing.assert_close(got, want)
    # and the weights are the ones f was computed from
    theta = torch.cat(
        [torch.as_tensor(idata.posterior[n].values)[0].flatten(2) for n in post.fnet.names], -1
    )
    torch.testing.assert_close(post.fnet(theta, batch.query_x), f)


def test_arviz_functions_work_on_the_export(bmaml, batch):
    post = bmaml.adapt(batch.support_x, batch.support_y)
    idata = to_inference_data(post, batch.query_x, batch.query_y, num_samples=100)
    summary = az.summary(idata, var_names=["layers.1.bias"], kind="stats")
    assert len(summary) == 3  # one row per task
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo) and loo.n_data_points == 3 * 12
    assert np.isfinite(az.waic(idata).elpd_waic)
    axes = az.plot_posterior(idata, var_names=["layers.1.bias"])
    assert np.asarray(axes).size == 3
    ax = az.plot_ppc(idata, data_pairs={"y": "y"}, num_pp_samples=20)
    assert ax is not None
    matplotlib.pyplot.close("all")


def test_single_task_has_no_task_dimension(bmaml, batch):
    post = bmaml.adapt(batch.support_x[0], batch.support_y[0])
    idata = to_inference_data(post, batch.query_x[0], batch.query_y[0], num_samples=10)
    assert "task" not in idata.posterior.dims
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "point")


def test_hyper_posterior_sites_from_a_variational_learner(batch):
    torch.manual_seed(0)
    learner = bm.VariationalMetaLearner((1, 6, 1), adapt_steps=5)
    learner.meta_fit(batch, iterations=3, progress=False)
    post = learner.adapt(batch.support_x, batch.support_y)
    idata = to_inference_data(post, batch.query_x, num_samples=10, learner=learner)
    sites = [v for v in idata.posterior.data_vars if v.startswith("prior_")]
    assert sites, "the hyper-posterior's sites are exported"
    for site in sites:
        assert "task" not in idata.posterior[site].dims
    assert "hyper_posterior" in idata.posterior.attrs
    assert "log_likelihood" not in idata.groups()  # no query_y given


def test_point_estimates_and_function_space_posteriors():
    torch.manual_seed(0)
    batch = Sinusoid(6, 8, seed=2, noise_std=0.1).sample(2)
    maml = bm.MAML((1, 8, 1), inner_steps=1)
    point = to_inference_data(maml.adapt(batch.support_x, batch.support_y), batch.query_x)
    assert point.posterior.sizes["draw"] == 1
    assert "point estimate" in point.posterior.attrs["sampling"]
    src = MLP((1, 8, 1))
    laplace = TransferLearner(src, method="laplace", prior_scale=0.3, steps=20)
    idata = to_inference_data(
        laplace.adapt(batch.support_x, batch.support_y),
        batch.query_x,
        batch.query_y,
        num_samples=30,
    )
    assert "layers.0.weight" not in idata.posterior  # function-space only
    assert idata.posterior["f"].shape == (1, 30, 2, 8, 1)
    assert np.isfinite(az.loo(idata).elpd_loo)
    head = BayesianLastLayer.from_network(src, prior_scale=1.0)
    idata = to_inference_data(head.adapt(batch.support_x, batch.support_y), batch.query_x)
    assert idata.posterior_predictive["y"].shape == (1, 200, 2, 8, 1)


def test_classification_export():
    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    labels = torch.arange(3).repeat(2, 4)  # [2 tasks, 12]
    x = centres[labels] + 0.3 * torch.randn(2, 12, 2)
    learner = bm.BayesianMAML((2, 8, 3), likelihood="categorical", inner_steps=2)
    post = learner.adapt(x, labels)
    idata = to_inference_data(post, x, labels, num_samples=40)
    assert idata.posterior["f"].dims[-1] == "class"
    assert idata.posterior_predictive["y"].dims == ("chain", "draw", "task", "point")
    y_rep = idata.posterior_predictive["y"].values
    assert y_rep.min() >= 0 and y_rep.max() <= 2
    ll = idata.log_likelihood["y"].values
    assert (ll <= 0).all()
    assert np.isfinite(az.loo(idata).elpd_loo)


def test_errors_name_the_problem(bmaml, batch):
    post = bmaml.adapt(batch.support_x, batch.support_y)
    with pytest.raises(bm.ShapeError, match="query_y must have shape"):
        to_inference_data(post, batch.query_x, batch.query_y[:, :3])
    with pytest.raises(bm.ShapeError, match="query_x must have shape"):
        to_inference_data(post, batch.query_x[0])
    with pytest.raises(ValueError, match="query_y needs query_x"):
        to_inference_data(post, None, batch.query_y)
    with pytest.raises(ValueError, match="num_samples"):
        to_inference_data(post, batch.query_x, num_samples=0)
    with pytest.raises(TypeError, match="cannot export"):
        to_inference_data(object())
