import pytest
import torch
from torch import nn

from bayesmeta import MAML, Reptile, Sinusoid, TransferLearner
from bayesmeta.io import CheckpointError, load_learner, save_learner
from bayesmeta.nets import MLP


@pytest.mark.parametrize(
    "make",
    [
        lambda: MAML((1, 8, 8, 1), first_order=True, learn_inner_lr=True),
        lambda: Reptile((1, 8, 1), inner_steps=3, train_on="all"),
    ],
)
def test_round_trip_preserves_predictions_and_config(tmp_path, make):
    torch.manual_seed(0)
    learner = make()
    learner.meta_fit(Sinusoid(5, 5, seed=0), iterations=3, progress=False)
    learner.fit_noise_scale(Sinusoid(5, 5, seed=1).sample(10))
    path = save_learner(learner, tmp_path / "m.safetensors")
    loaded = load_learner(path)
    assert type(loaded) is type(learner) and loaded.config() == learner.config()
    task = Sinusoid(5, 5, seed=2).sample(1)[0]
    a = learner.adapt(task.support_x, task.support_y).predict(task.query_x)
    b = loaded.adapt(task.support_x, task.support_y).predict(task.query_x)
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.noise_scale, b.noise_scale)


def test_corrupted_and_missing_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_learner(tmp_path / "missing.safetensors")
    path = save_learner(MAML((1, 4, 1)), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_learner(path)


def test_bayesian_maml_round_trip_preserves_prior_noise_and_posterior(tmp_path):
    from bayesmeta.learners import BayesianMAML

    torch.manual_seed(0)
    learner = BayesianMAML((1, 8, 1), prior_scale=0.05, scale_per="tensor", inner_steps=2)
    learner.meta_fit(Sinusoid(5, 5, seed=0), iterations=3, progress=False)
    loaded = load_learner(save_learner(learner, tmp_path / "b.safetensors"))
    assert type(loaded) is BayesianMAML and loaded.config() == learner.config()
    torch.testing.assert_close(loaded.prior.scale, learner.prior.scale)
    torch.testing.assert_close(loaded.likelihood.scale, learner.likelihood.scale)
    task = Sinusoid(5, 5, seed=2).sample(1)[0]
    post = [
        m.adapt(task.support_x, task.support_y, generator=torch.Generator().manual_seed(3))
        for m in (learner, loaded)
    ]
    torch.testing.assert_close(post[0].loc, post[1].loc)
    torch.testing.assert_close(post[0].log_scale, post[1].log_scale)


def test_variational_meta_learner_round_trip(tmp_path):
    from bayesmeta import VariationalMetaLearner

    torch.manual_seed(0)
    learner = VariationalMetaLearner((1, 8, 1))
    learner.meta_fit(Sinusoid(5, 5, seed=0), iterations=3, meta_batch_size=4, num_tasks=6)
    loaded = load_learner(save_learner(learner, tmp_path / "v.safetensors"))
    assert type(loaded) is VariationalMetaLearner and loaded.config() == learner.config()
    for a, b in zip(learner.hyper_posterior(), loaded.hyper_posterior(), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(loaded.task_loc, learner.task_loc)


def _source_net():
    """A 1-8-1 network 'trained' on a source domain (random weights stand in)."""
    torch.manual_seed(3)
    return MLP((1, 8, 1))


@pytest.mark.parametrize(
    "make",
    [
        # learned prior and noise scales (fit_prior), the Laplace posterior
        lambda: TransferLearner(_source_net(), method="laplace", steps=50, freeze=["layers.0"]),
        # the zero-centred baseline: its centre is zero and its fits start at `init`
        lambda: TransferLearner.from_scratch(_source_net(), method="map", steps=50),
    ],
    ids=["laplace_fit_prior", "from_scratch"],
)
def test_transfer_learner_round_trip(tmp_path, make):
    learner = make()
    related = Sinusoid(6, 4, seed=0).sample(4)
    if learner.method == "laplace":
        learner.fit_prior(related.support_x, related.support_y)
        assert learner.prior_scale_ is not None
    path = save_learner(learner, tmp_path / "t.safetensors")
    loaded = load_learner(path)
    assert isinstance(loaded, TransferLearner) and loaded.config() == learner.config()
    for name in ("centre", "init", "prior_scale_", "noise_scale_"):
        mine, theirs = getattr(learner, name), getattr(loaded, name)
        assert (mine is None) == (theirs is None), name
        if mine is not None:
            assert torch.equal(mine, theirs), name
    assert torch.equal(loaded.free, learner.free)  # the frozen layers came back
    task = Sinusoid(5, 20, seed=2).sample(1)[0]
    means = []
    for each in (learner, loaded):
        torch.manual_seed(0)  # the Laplace predictive is a mean over joint draws
        means.append(each.adapt(task.support_x, task.support_y).predict(task.query_x).mean)
    torch.testing.assert_close(means[0], means[1])


def test_a_transfer_learner_on_a_custom_network_saves_but_asks_to_be_rebuilt(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
    path = save_learner(TransferLearner(net, steps=5), tmp_path / "t.safetensors")
    with pytest.raises(CheckpointError, match="only an MLP or a Conv4 rebuilds itself"):
        load_learner(path)


def test_transfer_learner_refuses_a_state_without_its_centre():
    learner = TransferLearner(_source_net(), steps=5)
    state = learner.state_dict()
    del state["centre"]
    with pytest.raises(RuntimeError, match=r"centre must be a tensor of shape \(25,\)"):
        learner.load_state_dict(state)
    state["centre"] = torch.zeros(3)
    with pytest.raises(RuntimeError, match="centre must be a tensor of shape"):
        learner.load_state_dict(state)


@pytest.mark.parametrize(
    ("prior", "likelihood"),
    [("laplace", "student_t"), ({"family": "student_t", "df": 5.0}, "gaussian")],
)
def test_bayesian_maml_round_trip_keeps_the_prior_family_and_likelihood(
    tmp_path, prior, likelihood
):
    from bayesmeta.learners import BayesianMAML

    torch.manual_seed(0)
    learner = BayesianMAML((1, 8, 1), prior=prior, likelihood=likelihood, inner_steps=2)
    learner.meta_fit(Sinusoid(5, 5, seed=0), iterations=3, progress=False)
    loaded = load_learner(save_learner(learner, tmp_path / "b.safetensors"))
    assert type(loaded.prior) is type(learner.prior)
    assert getattr(loaded.prior, "df", None) == getattr(learner.prior, "df", None)
    assert type(loaded.likelihood) is type(learner.likelihood)
    task = Sinusoid(5, 5, seed=2).sample(1)[0]
    post = [
        m.adapt(task.support_x, task.support_y, generator=torch.Generator().manual_seed(3))
        for m in (learner, loaded)
    ]
    torch.testing.assert_close(post[0].loc, post[1].loc)
    torch.testing.assert_close(
        post[0]
        .predict(task.query_x, generator=torch.Generator().manual_seed(1))
        .log_prob(task.query_y),
        post[1]
        .predict(task.query_x, generator=torch.Generator().manual_seed(1))
        .log_prob(task.query_y),
    )


def test_a_custom_prior_class_saves_but_asks_to_be_rebuilt(tmp_path):
    from bayesmeta.learners import BayesianMAML
    from bayesmeta.priors import Laplace

    class Wide(Laplace):
        pass

    learner = BayesianMAML((1, 4, 1), prior=Wide())
    path = save_learner(learner, tmp_path / "c.safetensors")
    with pytest.raises(CheckpointError, match="custom prior"):
        load_learner(path)
