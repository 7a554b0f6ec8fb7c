import pytest
import torch

from bayesmeta import MAML, Reptile, Sinusoid
from bayesmeta.io import CheckpointError, load_learner, save_learner


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
