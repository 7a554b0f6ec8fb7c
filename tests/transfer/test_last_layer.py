import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from bayesmeta import ClassPrediction, Prediction, TaskBatch
from bayesmeta.errors import ShapeError
from bayesmeta.nets import MLP
from bayesmeta.posteriors import GaussianTaskPosterior
from bayesmeta.scoring.evaluation import evaluate
from bayesmeta.transfer import _linear_gaussian as lg
from bayesmeta.transfer.last_layer import BayesianLastLayer, LastLayerPosterior, split_last_layer

Z90 = 1.6448536269514722  # standard normal 95% quantile


def linear_encoder(d_in=3, h=4, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Linear(d_in, h).to(dtype)


def with_bias(phi):
    return torch.cat([phi, torch.ones(*phi.shape[:-1], 1, dtype=phi.dtype)], -1)


def draw_tasks(encoder, head, num_tasks, k, prior_scale, noise, *, seed, d_in=3):
    """Tasks from the model: w_t ~ N(w0, prior_scale^2 I), y = Phi w_t + noise * eps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_tasks, k, d_in, generator=g, dtype=torch.float64)
    with torch.no_grad():
        phi = with_bias(encoder(x))
    w0 = torch.cat([head.weight, head.bias[:, None]], -1).detach()
    w = w0 + prior_scale * torch.randn(num_tasks, *w0.shape, generator=g, dtype=torch.float64)
    y = phi @ w.mT + noise * torch.randn(num_tasks, k, w0.shape[0], generator=g, dtype=x.dtype)
    return x, y


@pytest.mark.parametrize("k", [3, 9])  # fewer and more points than the H + 1 = 5 features
def test_posterior_predictive_and_evidence_match_the_textbook_formulas(k):
    enc = linear_encoder()
    head = nn.Linear(4, 2).double()
    alpha, sigma = 0.7**-2, 0.3
    learner = BayesianLastLayer(
        enc, num_outputs=2, head=head, prior_scale=0.7, noise_scale=sigma, learn_noise=False
    )
    x, y = torch.randn(k, 3, dtype=torch.float64), torch.randn(k, 2, dtype=torch.float64)
    xq = torch.randn(6, 3, dtype=torch.float64)
    post = learner.adapt(x, y)
    assert post.batch_shape == () and post.loc.shape == (2, 5)
    with torch.no_grad():
        phi, phi_q = with_bias(enc(x)), with_bias(enc(xq))
    w0 = torch.cat([head.weight, head.bias[:, None]], -1).detach()
    precision = alpha * torch.eye(5, dtype=phi.dtype) + phi.T @ phi / sigma**2
    cov = torch.linalg.inv(precision)
    evidence = 0.0
    for o in range(2):
        mean = cov @ (alpha * w0[o] + phi.T @ y[:, o] / sigma**2)
        torch.testing.assert_close(post.loc[o], mean)
        torch.testing.assert_close(post.covariance()[o], cov)
        torch.testing.assert_close(post.mean(xq)[:, o], phi_q @ mean)
        var = (phi_q @ cov * phi_q).sum(-1) + sigma**2
        torch.testing.assert_close(post.variance(xq)[:, o], var)
        marginal = sigma**2 * torch.eye(k, dtype=phi.dtype) + phi @ phi.T / alpha
        evidence += MultivariateNormal(phi @ w0[o], marginal).log_prob(y[:, o])
    torch.testing.assert_close(post.log_evidence, evidence)
    torch.testing.assert_close(post.noise_scale, torch.full((2,), sigma, dtype=phi.dtype))
    torch.testing.assert_close(post.prior_scale, torch.tensor(0.7, dtype=phi.dtype))


def test_sampled_prediction_agrees_with_the_exact_predictive():
    learner = BayesianLastLayer(linear_encoder(), num_outputs=1, prior_scale=0.5, noise_scale=0.2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 3, dtype=torch.float64, generator=g)
    post = learner.adapt(x, torch.randn(2, 3, 1, dtype=torch.float64, generator=g))
    xq = torch.randn(2, 4, 3, dtype=torch.float64, generator=g)
    pred = post.predict(xq, num_samples=40_000, generator=torch.Generator().manual_seed(1))
    assert isinstance(pred, Prediction) and pred.function_samples.shape == (40_000, 2, 4, 1)
    torch.testing.assert_close(pred.mean, post.mean(xq), atol=0.02, rtol=0)
    torch.testing.assert_close(pred.std.pow(2), post.variance(xq), atol=0.0, rtol=0.03)


def test_batched_adapt_equals_adapting_each_task_alone():
    enc, head = linear_encoder(), nn.Linear(4, 1).double()
    x, y = draw_tasks(enc, head, 4, 8, 0.5, 0.2, seed=0)
    learner = BayesianLastLayer(enc, num_outputs=1, head=head)  # empirical Bayes per task
    batch = learner.adapt(x, y)
    assert batch.batch_shape == (4,)
    for t in range(4):
        alone = learner.adapt(x[t], y[t])
        for name in ("loc", "noise_scale", "prior_scale", "log_evidence"):
            torch.testing.assert_close(getattr(batch, name)[t], getattr(alone, name))
        torch.testing.assert_close(batch.covariance()[t], alone.covariance())


def test_per_task_empirical_bayes_maximises_the_evidence():
    enc, head = linear_encoder(), nn.Linear(4, 1).double()
    x, y = draw_tasks(enc, head, 1, 40, 0.5, 0.2, seed=1)
    fitted = BayesianLastLayer(enc, num_outputs=1, head=head).adapt(x[0], y[0])
    scale, noise = float(fitted.prior_scale), float(fitted.noise_scale[0])
    for ds in (0.95, 1.0, 1.05):
        for dn in (0.95, 1.0, 1.05):
            other = BayesianLastLayer(
                enc,
                num_outputs=1,
                head=head,
                prior_scale=scale * ds,
                noise_scale=noise * dn,
                learn_noise=False,
            ).adapt(x[0], y[0])
            assert float(other.log_evidence) <= float(fitted.log_evidence) + 1e-6
    with torch.no_grad():
        phi = with_bias(enc(x))
    w0 = torch.cat([head.weight, head.bias[:, None]], -1).detach()
    log_alpha = (-2 * fitted.prior_scale.log()).reshape(1).requires_grad_()
    log_sigma = fitted.noise_scale.log().reshape(1, 1).requires_grad_()
    evidence = lg.log_evidence(lg.spectrum(phi, y, w0), log_alpha, log_sigma).sum()
    torch.testing.assert_close(evidence, fitted.log_evidence)
    for grad in torch.autograd.grad(evidence, (log_alpha, log_sigma)):
        assert float(grad.abs().max()) < 1e-2
    # a fixed prior scale fits the noise alone
    fixed = BayesianLastLayer(enc, num_outputs=1, head=head, prior_scale=0.5).adapt(x[0], y[0])
    torch.testing.assert_close(fixed.prior_scale, torch.tensor(0.5, dtype=torch.float64))
    assert 0.1 < float(fixed.noise_scale) < 0.4


def test_fit_prior_recovers_the_generating_scales_and_calibrates_new_tasks():
    enc, head = linear_encoder(), nn.Linear(4, 1).double()
    x, y = draw_tasks(enc, head, 200, 20, 0.5, 0.2, seed=2)
    learner = BayesianLastLayer(enc, num_outputs=1, head=head, noise_scale=1.0)
    assert learner.fit_prior(x, y) is learner
    assert learner.prior_scale_ is not None and learner.noise_scale_ is not None
    assert abs(float(learner.prior_scale_) / 0.5 - 1) < 0.2
    assert abs(float(learner.noise_scale_[0]) / 0.2 - 1) < 0.1
    # new tasks use the fitted values; the exact 90% intervals cover about 90%
    x, y = draw_tasks(enc, head, 300, 25, 0.5, 0.2, seed=3)
    post = learner.adapt(x[:, :5], y[:, :5])
    torch.testing.assert_close(post.prior_scale, learner.prior_scale_.expand(300))
    half = Z90 * post.variance(x[:, 5:]).sqrt()
    inside = ((y[:, 5:] - post.mean(x[:, 5:])).abs() <= half).double().mean()
    assert abs(float(inside) - 0.9) < 0.03


def trained_source(seed=0):
    """A tiny MLP fitted to the source task y = 2 sin(x)."""
    torch.manual_seed(seed)
    source = MLP((1, 32, 32, 1), activation="tanh")
    xs = torch.linspace(-4, 4, 200).unsqueeze(-1)
    opt = torch.optim.Adam(source.parameters(), lr=0.01)
    for _ in range(600):
        opt.zero_grad()
        loss = (source(xs) - 2 * torch.sin(xs)).pow(2).mean()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.01
    return source


def target_tasks(num_tasks, k, q, seed):
    """Target tasks y = a sin(x) + 0.05 eps, a ~ U(2.5, 3.5): support and query sets."""
    g = torch.Generator().manual_seed(seed)
    x = 8 * torch.rand(num_tasks, k + q, 1, generator=g) - 4
    f = (2.5 + torch.rand(num_tasks, 1, 1, generator=g)) * torch.sin(x)
    y = f + 0.05 * torch.randn(x.shape, generator=g)
    return x[:, :k], y[:, :k], x[:, k:], y[:, k:], f[:, k:]


def test_the_source_head_prior_transfers_and_shared_empirical_bayes_calibrates():
    source = trained_source()
    x, y, xq, yq, fq = target_tasks(100, 5, 50, seed=1)
    mse, coverage = {}, {}
    for centre in (True, False):
        learner = BayesianLastLayer.from_network(source, centre_on_head=centre)
        assert (learner.head is not None) == centre
        mse[centre] = float((learner.adapt(x, y).mean(xq) - fq).pow(2).mean())
    assert mse[True] < 0.4 * mse[False]
    # Per task, 5 points cannot tell noise from weights (33 features): the fitted noise is
    # too small. One prior scale and noise for all 100 tasks (fit_prior) calibrates.
    for shared in (False, True):
        learner = BayesianLastLayer.from_network(source)
        if shared:
            learner.fit_prior(x, y)
        post = learner.adapt(x, y)
        inside = (yq - post.mean(xq)).abs() <= Z90 * post.variance(xq).sqrt()
        coverage[shared] = float(inside.float().mean())
    assert coverage[False] < 0.85 < coverage[True] < 0.97
    # the learner works with the shared evaluation loop
    result = evaluate(BayesianLastLayer.from_network(source), TaskBatch(x, y, xq, yq))
    assert {"mse", "nll", "coverage_90", "crps"} <= set(result.per_task)


def test_classification_on_separated_feature_clusters():
    g = torch.Generator().manual_seed(0)
    t, c, shots, queries = 3, 3, 5, 10
    centres = 3.0 * torch.randn(t, c, 4, generator=g)

    def sample(n):
        labels = torch.arange(c).repeat_interleave(n).expand(t, -1)
        x = centres.gather(1, labels.unsqueeze(-1).expand(-1, -1, 4))
        return x + 0.5 * torch.randn(x.shape, generator=g), labels

    (xs, ys), (xq, yq) = sample(shots), sample(queries)
    enc = linear_encoder(4, 6, dtype=torch.float32)
    learner = BayesianLastLayer(
        enc, num_outputs=c, classification=True, prior_scale=1.0, svi_steps=200
    )
    post = learner.adapt(xs, ys, generator=torch.Generator().manual_seed(2))
    assert post.classification and post.batch_shape == (t,)
    pred = post.predict(xq, num_samples=64, generator=torch.Generator().manual_seed(3))
    assert isinstance(pred, ClassPrediction) and pred.probs.shape == (t, c * queries, c)
    accuracy = float((pred.predicted == yq).float().mean())
    assert accuracy > 0.8  # chance is 1/3
    torch.testing.assert_close(pred.probs.sum(-1), torch.ones(t, c * queries))
    assert float(pred.epistemic_entropy.mean()) > 1e-3
    one = learner.adapt(xs[0], ys[0]).predict(xq[0], num_samples=8)
    assert one.probs.shape == (c * queries, c)
    with pytest.raises(ValueError, match="regression heads only"):
        _ = post.log_evidence
    with pytest.raises(NotImplementedError, match="regression-only"):
        learner.fit_prior(xs, ys)


def test_classification_prior_is_centred_on_the_source_head():
    torch.manual_seed(0)
    source = MLP((4, 6, 3))
    head = source.layers[-1]
    flat = torch.cat([head.weight.detach().flatten(), head.bias.detach()])
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    for centre in (True, False):
        learner = BayesianLastLayer.from_network(
            source, centre_on_head=centre, classification=True, svi_steps=1, svi_lr=0.01
        )
        post = learner.adapt(x, y)  # one Adam step of 0.01 from the prior mean
        assert isinstance(post.head, GaussianTaskPosterior)
        want = flat if centre else torch.zeros_like(flat)
        torch.testing.assert_close(post.head.loc, want, atol=0.011, rtol=0)


def test_split_last_layer_on_mlp_and_sequential():
    torch.manual_seed(0)
    x = torch.randn(5, 2)
    mlp = MLP((2, 8, 6, 3), activation="tanh")
    enc, head = split_last_layer(mlp)
    hidden = torch.tanh(mlp.layers[1](torch.tanh(mlp.layers[0](x))))
    torch.testing.assert_close(enc(x), hidden)
    assert head is mlp.layers[-1]
    torch.testing.assert_close(head(enc(x)), mlp(x))
    seq = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    enc, head = split_last_layer(seq)
    torch.testing.assert_close(enc(x), torch.relu(seq[0](x)))
    assert head is seq[2]
    for bad in (nn.Sequential(nn.Linear(2, 3), nn.Softmax(-1)), nn.Linear(2, 3)):
        with pytest.raises(TypeError, match="encoder= and head="):
            split_last_layer(bad)
    # from_network with another output count centres at zero
    learner = BayesianLastLayer.from_network(mlp, num_outputs=2)
    assert learner.head is None and learner.num_outputs == 2


def test_features_are_frozen_and_carry_a_bias_column():
    enc = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    enc.train()
    learner = BayesianLastLayer(enc, num_outputs=1)
    x = torch.randn(2, 5, 3)
    phi = learner.features(x)
    assert phi.shape == (2, 5, 5) and not phi.requires_grad
    torch.testing.assert_close(phi, learner.features(x))  # eval mode: no dropout
    torch.testing.assert_close(phi[..., -1], torch.ones(2, 5))
    assert enc.training  # the module's mode is restored
    # inputs with two feature dimensions
    flat = BayesianLastLayer(
        nn.Sequential(nn.Flatten(), nn.Linear(6, 4)), num_outputs=1, feature_dims=2
    )
    post = flat.adapt(torch.randn(2, 5, 2, 3), torch.randn(2, 5, 1))
    assert post.mean(torch.randn(2, 7, 2, 3)).shape == (2, 7, 1)


def test_bad_inputs_are_refused_with_the_fix():
    enc = linear_encoder(dtype=torch.float32)
    learner = BayesianLastLayer(enc, num_outputs=1)
    x, y = torch.randn(5, 3), torch.randn(5, 1)
    with pytest.raises(ShapeError, match="encoder cannot take"):
        learner.adapt(torch.randn(5, 2), y)
    with pytest.raises(ShapeError, match=r"support_x must have shape \[K, \*features\]"):
        learner.adapt(torch.randn(2, 2, 5, 3), y)
    with pytest.raises(ShapeError, match="support_y"):
        learner.adapt(x, torch.randn(5))
    with pytest.raises(ShapeError, match="num_outputs=1"):
        learner.adapt(x, torch.randn(5, 2))
    with pytest.raises(ShapeError, match="classification=True"):
        learner.adapt(x, torch.zeros(5, dtype=torch.long))
    post = learner.adapt(x, y)
    with pytest.raises(ShapeError, match="query_x must have shape"):
        post.predict(torch.randn(2, 4, 3))
    with pytest.raises(ShapeError, match="encoder cannot take"):
        post.mean(torch.randn(4, 7))
    with pytest.raises(ShapeError, match="head takes 2"):
        BayesianLastLayer(enc, num_outputs=1, head=nn.Linear(2, 1)).adapt(x, y)
    with pytest.raises(ShapeError, match="num_outputs=2"):
        BayesianLastLayer(enc, num_outputs=2, head=nn.Linear(4, 1))
    clf = BayesianLastLayer(enc, num_outputs=3, classification=True, svi_steps=1)
    with pytest.raises(ValueError, match="label 3"):
        clf.adapt(x, torch.tensor([0, 1, 2, 3, 1]))
    with pytest.raises(ValueError, match="label -1"):
        clf.adapt(x, torch.tensor([0, 1, -1, 2, 1]))
    with pytest.raises(ShapeError, match="integer class labels"):
        clf.adapt(x, torch.rand(5))
    for kwargs in (
        {"prior_scale": 0.0},
        {"prior_scale": -1.0},
        {"noise_scale": 0.0},
        {"svi_lr": 0.0},
        {"eb_lr": math.inf},
    ):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            BayesianLastLayer(enc, num_outputs=1, **kwargs)
    with pytest.raises(ValueError, match="svi_steps"):
        BayesianLastLayer(enc, num_outputs=1, svi_steps=0)
    with pytest.raises(ValueError, match="num_outputs"):
        BayesianLastLayer(enc, num_outputs=1, classification=True)
    with pytest.raises(ValueError, match="steps"):
        learner.fit_prior(x, y, steps=0)
    with pytest.raises(ValueError, match="num_samples"):
        post.predict(torch.randn(4, 3), num_samples=0)


def test_posterior_is_a_frozen_dataclass():
    learner = BayesianLastLayer(linear_encoder(dtype=torch.float32), num_outputs=1)
    post = learner.adapt(torch.randn(4, 3), torch.randn(4, 1))
    assert isinstance(post, LastLayerPosterior) and not post.classification
    assert post.mean(torch.randn(6, 3)).dtype == torch.float32
    with pytest.raises(AttributeError):
        post.head = None  # type: ignore[misc]
