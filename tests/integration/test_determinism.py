"""A fixed seed on the CPU gives bit-identical training and metrics.

Each learner is meta-fitted twice from scratch (seed torch, build the learner,
fit on a seeded source): the parameters and every loss must be equal to the
bit. A third fit with another seed must differ, so that the comparison could
fail; and the parameters must have moved, so that training happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import torch

import bayesmeta as bm
from bayesmeta.runs.experiment import RunConfig, quick, run_experiment
from bayesmeta.tasks import Episodes, Sinusoid


def blobs(seed: int) -> Episodes:
    """4-way episodes from 6 Gaussian blobs in 4-D (12 examples per class)."""
    g = torch.Generator().manual_seed(123)
    centres = 3.0 * torch.randn(6, 4, generator=g)
    labels = torch.arange(6).repeat_interleave(12)
    x = centres[labels] + torch.randn(len(labels), 4, generator=g)
    return Episodes(x, labels, n_way=4, k_support=2, k_query=3, seed=seed)


REGRESSION: dict[str, Callable[[], bm.learners.MetaLearner]] = {
    "MAML": lambda: bm.MAML((1, 16, 1), inner_steps=2, outer_lr=0.01),
    "FOMAML": lambda: bm.MAML((1, 16, 1), inner_steps=2, first_order=True, outer_lr=0.01),
    "Reptile": lambda: bm.Reptile((1, 16, 1), inner_steps=2, outer_lr=0.01),
    "BayesianMAML": lambda: bm.BayesianMAML(
        (1, 16, 1), inner_steps=2, num_particles=2, outer_lr=0.01
    ),
    "VariationalMetaLearner": lambda: bm.VariationalMetaLearner((1, 16, 1), adapt_steps=5),
}
CLASSIFICATION: dict[str, Callable[[], bm.learners.MetaLearner]] = {
    "ProtoNet": lambda: bm.ProtoNet((4, 16, 8), outer_lr=0.01),
    "BayesianProtoNet": lambda: bm.BayesianProtoNet((4, 16, 8), outer_lr=0.01),
    "MatchingNet": lambda: bm.MatchingNet((4, 16, 8), outer_lr=0.01),
}
LEARNERS = {**REGRESSION, **CLASSIFICATION}


def fit(name: str, seed: int) -> tuple[dict[str, torch.Tensor], list[float], dict[str, Any]]:
    """Meta-fit ``name`` from scratch; return its state, its losses and its initial state."""
    torch.manual_seed(seed)
    learner = LEARNERS[name]()
    initial = {k: v.detach().clone() for k, v in learner.state_dict().items()}
    source = Sinusoid(5, 5, seed=seed) if name in REGRESSION else blobs(seed)
    kwargs: dict[str, Any] = {"num_tasks": 6} if name == "VariationalMetaLearner" else {}
    history = learner.meta_fit(source, 4, 3, progress=False, **kwargs)
    state = {k: v.detach().clone() for k, v in learner.state_dict().items()}
    return state, history.loss, initial


@pytest.mark.parametrize("name", list(LEARNERS))
def test_meta_fit_is_bit_identical_for_a_fixed_seed(name: str) -> None:
    state, losses, initial = fit(name, seed=0)
    again, losses_again, _ = fit(name, seed=0)
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert losses == losses_again
    assert state.keys() == again.keys()
    for key, value in state.items():
        assert torch.equal(value, again[key]), key
    # training moved the weights, and another seed ends elsewhere
    assert any(not torch.equal(v, initial[k]) for k, v in state.items())
    other, losses_other, _ = fit(name, seed=1)
    assert losses != losses_other
    assert any(not torch.equal(v, other[k]) for k, v in state.items())


def test_adapt_and_predict_are_bit_identical_for_a_fixed_seed() -> None:
    """Sampling in adapt/predict (Bayesian MAML's weight draws) follows the seed."""
    batch = Sinusoid(5, 5, seed=3).sample(2)

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        learner = bm.BayesianMAML((1, 16, 1), inner_steps=2)
        post = learner.adapt(batch.support_x, batch.support_y)
        return post.predict(batch.query_x, num_samples=5).function_samples  # type: ignore[union-attr]

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


@pytest.mark.parametrize(
    "config",
    [
        RunConfig(learner="maml", hidden=(8,), meta_batch_size=4, eval_tasks=8, iterations=5),
        RunConfig(
            learner="bayesian_maml", hidden=(8,), meta_batch_size=4, eval_tasks=8, iterations=5
        ),
    ],
    ids=["maml", "bayesian_maml"],
)
def test_run_experiment_gives_identical_metrics_twice(config: RunConfig) -> None:
    first = run_experiment(quick(config), out_dir=None, progress=False)
    second = run_experiment(quick(config), out_dir=None, progress=False)
    assert first.history.loss == second.history.loss
    assert first.evaluation.per_task.keys() == second.evaluation.per_task.keys()
    assert "mse" in first.evaluation.per_task
    for key, value in first.evaluation.per_task.items():
        assert value.shape == (8,)
        assert torch.equal(value, second.evaluation.per_task[key]), key
    assert first.evaluation.to_dict() == second.evaluation.to_dict()
    # another seed trains differently: the comparison above could fail
    other = run_experiment(quick(replace(config, seed=1)), out_dir=None, progress=False)
    assert other.history.loss != first.history.loss
