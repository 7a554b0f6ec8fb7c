"""VariationalMetaLearner: known answers on conjugate linear-Gaussian models, and the contract.

Known answers. For a Gaussian target N(mean, inv(Lam)), the best mean-field Gaussian
(minimum KL(q || p)) has the exact mean and variances 1 / diag(Lam); a low-rank plus
diagonal Gaussian of rank >= P - 1 can represent any covariance, so its optimum is exact.
Tolerances are stated per test; they cover the SVI noise left after the few thousand
steps a fast test can afford.
"""

import copy
import dataclasses

import pytest
import torch

from bayesmeta import ClassPrediction, NonFiniteLossError, Prediction, Sinusoid, Task, TaskBatch
from bayesmeta.learners import VariationalMetaLearner
from bayesmeta.nets import MLP
from bayesmeta.posteriors import GaussianTaskPosterior, LowRankTaskPosterior
from bayesmeta.priors import GaussianPrior
from bayesmeta.scoring.evaluation import evaluate

D = 2  # inputs; the linear "network" MLP((D, 1)) has P = D + 1 weights (bias last)


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def features(x):
    """The design matrix of MLP((D, 1)): weights first, then the bias."""
    return torch.cat([x, torch.ones(*x.shape[:-1], 1)], -1)


def set_linear_prior_mean(learner, m):
    with torch.no_grad():
        learner.net.layers[0].weight.copy_(m[:D].view(1, D))
        learner.net.layers[0].bias.copy_(m[D:])


# -- (a) adaptation: Bayesian linear regression ------------------------------------------


def blr_problem():
    torch.manual_seed(0)
    s, sigma, k = 0.7, 0.3, 6
    m = torch.tensor([0.3, -0.2, 0.5])
    x = torch.randn(k, D)
    y = x @ torch.tensor([[1.0], [-1.0]]) + 0.5 + sigma * torch.randn(k, 1)
    phi = features(x)
    lam = torch.eye(3) / s**2 + phi.T @ phi / sigma**2
    mean = torch.linalg.solve(lam, m / s**2 + phi.T @ y[:, 0] / sigma**2)
    learner = VariationalMetaLearner(
        MLP((D, 1)),
        prior_scale=s,
        hyper_log_scale_std=None,
        noise_scale=sigma,
        learn_noise=False,
        num_particles=32,
    )
    set_linear_prior_mean(learner, m)
    return learner, x, y, mean, lam


def test_learned_prior_is_the_plugged_in_hyper_posterior_mean(float64):
    learner, *_ = blr_problem()
    prior = learner.learned_prior()
    assert isinstance(prior, GaussianPrior)
    torch.testing.assert_close(prior.loc, torch.tensor([0.3, -0.2, 0.5]))
    torch.testing.assert_close(prior.scale, torch.full((3,), 0.7))


def test_mean_field_adaptation_matches_closed_form_posterior(float64):
    # Tolerance: means within 0.1 posterior sd, sds within 4 % (observed over generator
    # seeds 0-2: at most 0.04 sd and 2 %).
    learner, x, y, mean, lam = blr_problem()
    post = learner.adapt(x, y, steps=1000, lr=0.05, generator=torch.Generator().manual_seed(0))
    assert isinstance(post, GaussianTaskPosterior) and post.loc.shape == (3,)
    mf_sd = torch.diag(lam).rsqrt()
    assert ((post.loc - mean) / mf_sd).abs().max() < 0.1
    assert (post.scale / mf_sd - 1).abs().max() < 0.04
    # the mean-field sds are the conditional ones, smaller than the marginal ones
    assert bool((mf_sd < torch.linalg.inv(lam).diagonal().sqrt()).all())


def test_low_rank_adaptation_recovers_full_covariance(float64):
    # rank P - 1 = 2 suffices for any 3 x 3 covariance. Tolerance: means within 0.1 sd,
    # covariance within 0.1 in correlation units (observed over seeds 0-2: 0.05 sd, 0.05).
    learner, x, y, mean, lam = blr_problem()
    post = learner.adapt(
        x, y, steps=1000, lr=0.05, guide="lowrank", rank=2,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert isinstance(post, LowRankTaskPosterior) and post.rank == 2
    cov = torch.linalg.inv(lam)
    sd = cov.diagonal().sqrt()
    assert ((post.loc - mean) / sd).abs().max() < 0.1
    assert ((post.covariance() - cov) / torch.outer(sd, sd)).abs().max() < 0.1
    torch.testing.assert_close(post.scale, post.covariance().diagonal().sqrt())


def test_batched_adaptation_is_per_task(float64):
    learner, x, y, *_ = blr_problem()
    xs, ys = torch.stack([x, x[:, [1, 0]]]), torch.stack([y, -y])
    for guide in ("normal", "lowrank"):
        post = learner.adapt(xs, ys, steps=5, guide=guide, rank=2)
        assert post.loc.shape == (2, 3)
        pred = post.predict(torch.randn(2, 4, D), num_samples=7)
        assert pred.function_samples.shape == (7, 2, 4, 1)
    lowrank = learner.adapt(xs, ys, steps=5, guide="lowrank", rank=2)
    assert lowrank.cov_factor.shape == (2, 3, 2)  # one factor per task, none shared


# -- (b) meta-training: the conjugate hierarchical model -------------------------------


def conjugate_problem(num_tasks, *, tau=0.3, s=0.5, sigma=0.3, k=5, q=3, seed=0):
    """mu ~ N(m0, tau^2), theta_t ~ N(mu, s^2), y_tj ~ N(phi_tj . theta_t, sigma^2)."""
    torch.manual_seed(seed)
    m0 = torch.tensor([0.2, -0.1, 0.0])
    theta = torch.tensor([1.0, -1.0, 0.5]) + s * torch.randn(num_tasks, 3)
    x = torch.randn(num_tasks, k + q, D)
    phi = features(x)
    y = phi @ theta.unsqueeze(-1) + sigma * torch.randn(num_tasks, k + q, 1)
    batch = TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])  # both halves are data
    # Joint precision over z = (mu, theta_1, ..., theta_N), written out block by block.
    p, n = 3, num_tasks
    eye = torch.eye(p)
    lam = torch.zeros(p * (n + 1), p * (n + 1))
    b = torch.zeros(p * (n + 1))
    lam[:p, :p] = eye / tau**2 + n * eye / s**2
    b[:p] = m0 / tau**2
    for t in range(n):
        sl = slice(p * (t + 1), p * (t + 2))
        lam[:p, sl] = lam[sl, :p] = -eye / s**2
        lam[sl, sl] = eye / s**2 + phi[t].T @ phi[t] / sigma**2
        b[sl] = phi[t].T @ y[t, :, 0] / sigma**2
    mean = torch.linalg.solve(lam, b)
    learner = VariationalMetaLearner(
        MLP((D, 1)),
        prior_scale=s,
        hyper_loc_std=tau,
        hyper_log_scale_std=None,  # the prior scale is known
        noise_scale=sigma,
        learn_noise=False,
        num_particles=16,
    )
    learner.prior.loc_mean.copy_(m0)
    return learner, batch, mean, torch.diag(lam).rsqrt()


def fit_in_phases(learner, batch, subsample, steps_factor=1):
    """Adam at a falling learning rate (the same batch object continues the fit)."""
    for lr, steps in [
        (0.05, 800 * steps_factor),
        (0.01, 800 * steps_factor),
        (0.002, 400 * steps_factor),
    ]:
        for opt in (learner.optimizer, learner.local_optimizer):
            for group in opt.param_groups:
                group["lr"] = lr
        learner.meta_fit(batch, steps, subsample, progress=False)


def joint_q(learner):
    q = learner.hyper_posterior()
    mean = torch.cat([q.loc_mean, learner.task_loc.detach().reshape(-1)])
    sd = torch.cat([q.loc_std, learner.task_log_scale.detach().exp().reshape(-1)])
    return mean, sd


def test_meta_training_recovers_the_conjugate_joint_posterior(float64):
    # N = 20 tasks, full batch. Tolerance: every mean within 0.25 mean-field sd, every sd
    # within 8 % (observed over data seeds 0-2: at most 0.13 sd and 3.1 %). Dropping the
    # hyper-prior (tau -> infinity) would move E[mu] by up to 1.4 sd, so the test sees it.
    learner, batch, mean, mf_sd = conjugate_problem(20)
    fit_in_phases(learner, batch, subsample=20)
    q_mean, q_sd = joint_q(learner)
    assert ((q_mean - mean) / mf_sd).abs().max() < 0.25
    assert (q_sd / mf_sd - 1).abs().max() < 0.08
    torch.testing.assert_close(learner.learned_prior().loc, q_mean[:3])


def subsampled_errors(seed, steps_factor, num_particles):
    """Fit N = 50 tasks, T = 10 per step; errors against the exact optimum, in sds."""
    learner, batch, mean, mf_sd = conjugate_problem(50, seed=seed)
    learner.hparams = dataclasses.replace(learner.hparams, num_particles=num_particles)
    fit_in_phases(learner, batch, subsample=10, steps_factor=steps_factor)
    q_mean, q_sd = joint_q(learner)
    err, sd_err = ((q_mean - mean) / mf_sd).abs(), (q_sd / mf_sd - 1).abs()
    return err[:3], sd_err[:3], err[3:].view(-1, 3).max(-1).values, sd_err[3:]


def test_subsampled_meta_training_reaches_the_full_batch_optimum_of_q_psi(float64):
    # The same 2000 steps as full batch. q(psi) moves every step (with N / T-scaled
    # noise); each q(theta_t) moves only on the ~1 in 5 steps that draw its task (lazy
    # Adam), so tasks lag. Tolerances (observed over seeds 1-3 in brackets): q(psi)'s means
    # within 0.6 sd (0.48) and sds within 5 % (2 %); every task's sds within 12 % (7 %);
    # the median task's means within 0.15 sd (0.06). The slow test below gives each task
    # as many updates as full batch and checks every task.
    glob, glob_sd, task, task_sd = subsampled_errors(1, 1, 16)
    assert glob.max() < 0.6 and glob_sd.max() < 0.05
    assert task_sd.max() < 0.12 and task.median() < 0.15


@pytest.mark.slow
def test_subsampled_meta_training_with_equal_updates_per_task_reaches_every_task(float64):
    # 5 x the steps (each task drawn as often as in the full-batch test; ~15 s).
    # Tolerances (observed over seeds 1-3): q(psi)'s means within 0.6 sd (0.50), sds within
    # 5 % (3 %); every task's means within 0.35 sd (0.17) and sds within 10 % (7 %).
    glob, glob_sd, task, task_sd = subsampled_errors(1, 5, 4)
    assert glob.max() < 0.6 and glob_sd.max() < 0.05
    assert task.max() < 0.35 and task_sd.max() < 0.1


def test_subsampled_loss_is_an_unbiased_estimate_of_the_full_loss(float64):
    # With tiny guide scales the ELBO is deterministic given the subsample, so the only
    # randomness left is which T of the N tasks are drawn.
    learner, batch, *_ = conjugate_problem(50, seed=2)
    learner.meta_loss(batch)  # creates q(theta_t)
    with torch.no_grad():
        learner.task_loc.add_(0.5 * torch.randn_like(learner.task_loc))  # tasks differ
        learner.task_log_scale.fill_(-9.0)
        learner.hyper_loc_log_std.fill_(-9.0)
        full = float(learner.meta_loss(batch))
        subs = torch.tensor(
            [float(learner.meta_loss(batch, subsample_size=10)) for _ in range(800)]
        )
    stderr = float(subs.std()) / 800**0.5
    assert abs(float(subs.mean()) - full) < 4 * stderr
    assert float(subs.std()) > 0.01 * abs(full)  # the subsample really varies
    # an unscaled (N / T missing) estimate would sit about 4 / 5 of the tasks' terms lower
    assert 4 * stderr < 0.1 * abs(full)


# -- the contract ----------------------------------------------------------------------


def test_meta_fit_accepts_a_batch_tasks_or_a_source_and_continues_on_the_same_batch():
    torch.manual_seed(0)
    learner = VariationalMetaLearner((1, 8, 1))
    batch = Sinusoid(5, 5, seed=0).sample(6)
    history = learner.meta_fit(batch, 3, 4, progress=False)
    assert history.iterations == 3 and learner.task_loc.shape == (6, learner.fnet.num_params)
    kept = learner.task_loc
    learner.meta_fit(batch, 2, 4, progress=False)
    assert learner.task_loc is kept  # same tasks: the fit continues
    learner.meta_fit([batch[i] for i in range(3)], 2, 2, progress=False)
    assert learner.task_loc.shape[0] == 3  # new tasks: new q(theta_t)
    learner.meta_fit(Sinusoid(5, 5, seed=1), 2, 2, num_tasks=4, progress=False)
    assert len(learner.tasks_) == 4 and learner.tasks_.support_x.shape == (4, 5, 1)
    with pytest.raises(ValueError, match="pass num_tasks"):
        learner.meta_fit(Sinusoid(5, 5, seed=1), 2)
    with pytest.raises(ValueError, match="num_tasks is only for a task source"):
        learner.meta_fit(batch, 2, num_tasks=3)
    with pytest.raises(TypeError, match="sequence of Task"):
        learner.meta_fit([1, 2], 2)
    with pytest.raises(ValueError, match="meta_batch_size must be >= 1"):
        learner.meta_fit(batch, 2, 0)


@pytest.mark.filterwarnings("ignore:Encountered NaN")  # Pyro's warning; our error follows
def test_nan_elbo_stops_meta_fit_keeps_history_and_skips_the_update():
    torch.manual_seed(0)
    learner = VariationalMetaLearner((1, 8, 1))
    batch = Sinusoid(5, 5, seed=0).sample(4)
    saved = {}

    def poison(iteration, loss):
        if iteration == 2:
            with torch.no_grad():
                learner.task_loc[1, 0] = float("nan")
            saved.update(copy.deepcopy(learner.state_dict()))

    with pytest.raises(NonFiniteLossError) as info:
        learner.meta_fit(batch, 10, 4, progress=False, callback=poison)
    assert info.value.history.iterations == 3 and len(info.value.history.loss) == 3
    for key, value in learner.state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0, equal_nan=True)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="prior_scale must be positive"):
        VariationalMetaLearner((1, 4, 1), prior_scale=0.0)
    with pytest.raises(ValueError, match="hyper_loc_std must be positive"):
        VariationalMetaLearner((1, 4, 1), hyper_loc_std=-1.0)
    with pytest.raises(ValueError, match="hyper_log_scale_std must be positive"):
        VariationalMetaLearner((1, 4, 1), hyper_log_scale_std=0.0)
    with pytest.raises(ValueError, match="noise_scale must be positive"):
        VariationalMetaLearner((1, 4, 1), noise_scale=0.0)
    with pytest.raises(ValueError, match="guide must be 'normal', 'lowrank'"):
        VariationalMetaLearner((1, 4, 1), guide="full")
    with pytest.raises(ValueError, match="rank must be >= 1"):
        VariationalMetaLearner((1, 4, 1), rank=0)
    with pytest.raises(ValueError, match="adapt_lr must be positive"):
        VariationalMetaLearner((1, 4, 1), adapt_lr=0.0)
    with pytest.raises(ValueError, match="num_particles must be >= 1"):
        VariationalMetaLearner((1, 4, 1), num_particles=0)
    learner = VariationalMetaLearner((1, 4, 1))
    x, y = torch.zeros(3, 1), torch.zeros(3, 1)
    with pytest.raises(ValueError, match="NaN"):
        learner.adapt(torch.tensor([[float("nan")]]), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="takes 1 input feature"):
        learner.adapt(torch.zeros(3, 2), y)
    with pytest.raises(ValueError, match="support_y must have 3 points"):
        learner.adapt(x, torch.zeros(4, 1))
    with pytest.raises(ValueError, match="needs floating regression targets"):
        learner.adapt(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="steps must be >= 0"):
        learner.adapt(x, y, steps=-1)
    with pytest.raises(ValueError, match="lr must be positive"):
        learner.adapt(x, y, lr=0.0)
    with pytest.raises(ValueError, match="guide must be"):
        learner.adapt(x, y, guide="flow")
    with pytest.raises(ValueError, match="query_x must have shape"):
        learner.adapt(x, y, steps=1).predict(torch.zeros(2, 3, 1))
    wide = TaskBatch(
        torch.zeros(2, 3, 2), torch.zeros(2, 3, 1), torch.zeros(2, 0, 2), torch.zeros(2, 0, 1)
    )
    with pytest.raises(ValueError, match="takes 1 input feature"):
        learner.meta_step(wide)


def test_adapt_is_reproducible_with_a_generator_and_leaves_global_rng_alone():
    learner = VariationalMetaLearner((1, 8, 1))
    task = Sinusoid(5, 5, seed=0).sample(1)[0]
    state = torch.get_rng_state()
    a = learner.adapt(
        task.support_x, task.support_y, steps=20, generator=torch.Generator().manual_seed(3)
    )
    b = learner.adapt(
        task.support_x, task.support_y, steps=20, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(a.loc, b.loc, rtol=0, atol=0)
    # adaptation leaves the learner's own parameters (and their gradients) untouched
    assert all(p.grad is None for p in learner.parameters())


def test_config_and_state_dict_rebuild_the_learner():
    torch.manual_seed(0)
    learner = VariationalMetaLearner((1, 8, 1), scale_per="tensor", guide="lowrank", rank=3)
    learner.meta_fit(Sinusoid(5, 5, seed=0).sample(5), 5, 2, progress=False)
    cfg = learner.config()
    assert cfg["learner"] == "VariationalMetaLearner" and cfg["guide"] == "lowrank"
    net = cfg.pop("net")
    cfg.pop("learner")
    fresh = VariationalMetaLearner(MLP(net["sizes"], net["activation"]), **cfg)
    fresh.load_state_dict(learner.state_dict())
    for a, b in zip(learner.hyper_posterior(), fresh.hyper_posterior(), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(fresh.task_loc, learner.task_loc)
    task = Sinusoid(5, 5, seed=1).sample(1)[0]
    pa = learner.adapt(
        task.support_x, task.support_y, steps=5, generator=torch.Generator().manual_seed(0)
    )
    pb = fresh.adapt(
        task.support_x, task.support_y, steps=5, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(pa.covariance(), pb.covariance())


def test_sinusoid_smoke_gives_finite_metrics_with_both_uncertainties():
    torch.manual_seed(0)
    learner = VariationalMetaLearner((1, 40, 40, 1), adapt_steps=100)
    history = learner.meta_fit(Sinusoid(5, 5, seed=0), 300, 25, num_tasks=100, progress=False)
    assert sum(history.loss[-30:]) < sum(history.loss[:30])
    q = learner.hyper_posterior()
    assert q.log_scale_mean is not None and q.loc_std.shape == (learner.fnet.num_params,)
    test = Sinusoid(5, 20, seed=9).sample(20)
    result = evaluate(learner, test, chunk_size=10)
    assert result.num_tasks == 20
    for name in ("mse", "nll", "coverage_90", "crps"):
        assert bool(torch.isfinite(result.per_task[name]).all()), name
    pred = learner.adapt(test.support_x[0], test.support_y[0]).predict(test.query_x[0])
    assert isinstance(pred, Prediction) and bool((pred.epistemic_std > 0).all())


def test_classification_tasks_run_end_to_end():
    torch.manual_seed(0)
    x = torch.randn(6, 8, 3)
    labels = (x[..., 0] > 0).long()
    batch = TaskBatch(x[:, :4], labels[:, :4], x[:, 4:], labels[:, 4:])
    learner = VariationalMetaLearner((3, 8, 2), likelihood="categorical")
    learner.meta_fit(batch, 5, 3, progress=False)
    post = learner.adapt(batch.support_x, batch.support_y, steps=5)
    pred = post.predict(batch.query_x, num_samples=4)
    assert isinstance(pred, ClassPrediction)
    assert pred.sample_log_probs.shape == (4, 6, 4, 2)
    assert torch.allclose(pred.probs.sum(-1), torch.ones(6, 4))
    assert bool((pred.epistemic_entropy > 0).all())  # four distinct weight samples disagree
    assert post.noise_scale is None
    with pytest.raises(ValueError, match="integer class labels"):
        learner.adapt(x[0], x[0, :, :2])


def test_single_task_list_and_task_objects():
    task = Task(torch.randn(4, 1), torch.randn(4, 1), torch.randn(2, 1), torch.randn(2, 1))
    learner = VariationalMetaLearner((1, 4, 1))
    learner.meta_fit([task, task], 2, progress=False)
    assert learner.tasks_.support_x.shape == (2, 4, 1)


@pytest.mark.parametrize("guide", ["normal", "lowrank"])
def test_a_student_t_likelihood_is_what_adapted_predictions_score_with(guide):
    import pyro.distributions as dist

    torch.manual_seed(0)
    learner = VariationalMetaLearner((1, 8, 1), likelihood="student_t", adapt_steps=10)
    task = Sinusoid(5, 6, seed=0).sample(1)[0]
    post = learner.adapt(task.support_x, task.support_y, guide=guide)
    pred = post.predict(task.query_x, num_samples=7)
    scale = learner.likelihood.log_scale.exp().detach()
    per = dist.StudentT(4.0, pred.function_samples, scale).log_prob(task.query_y).sum(-1)
    want = torch.logsumexp(per, 0) - torch.log(torch.tensor(7.0))
    torch.testing.assert_close(pred.log_prob(task.query_y), want)


def test_a_finite_source_is_used_whole_without_num_tasks():
    from bayesmeta.tasks import TaskPool

    pool = TaskPool(Sinusoid(3, 3, seed=0).sample(7), seed=1)
    learner = VariationalMetaLearner((1, 4, 1))
    learner.meta_fit(pool, iterations=2, meta_batch_size=3, progress=False)
    assert len(learner.tasks_) == 7
    # every task of the pool once
    want = sorted(pool.tasks.support_y.flatten().tolist())
    assert sorted(learner.tasks_.support_y.flatten().tolist()) == want
