"""Every learner on a CUDA GPU, through the API and through runs (skipped without one)."""

import pytest
import torch

import bayesmeta as bm
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.experiment import run_experiment
from bayesmeta.tasks import Sinusoid

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

#: A small run of each learner on data it takes.
RUNS = [
    ("maml", "sinusoid"),
    ("fomaml", "sinusoid"),
    ("reptile", "sinusoid"),
    ("bayesian_maml", "sinusoid"),
    ("variational", "sinusoid"),
    ("maml", "digits"),
    ("bayesian_maml", "digits"),
    ("protonet", "digits"),
    ("bayesian_protonet", "digits"),
    ("matching", "digits"),
    ("protonet", "glyphs"),
]


@pytest.mark.parametrize(("learner", "data"), RUNS)
def test_a_run_trains_and_scores_on_cuda(learner, data, tmp_path):
    config = RunConfig(
        learner=learner,
        data=data,
        device="cuda",
        iterations=3,
        meta_batch_size=2,
        eval_tasks=4,
        glyph_classes=20,
        k_support=1 if data != "sinusoid" else 5,
    )
    result = run_experiment(config, out_dir=tmp_path, progress=False)
    assert all(p.device.type == "cuda" for p in result.learner.parameters())
    for name, (mean, _) in result.evaluation.summary().items():
        assert torch.isfinite(torch.tensor(mean)), name


def test_the_api_adapts_and_predicts_on_the_learners_device():
    learner = bm.MAML((1, 16, 16, 1), inner_steps=2).to("cuda")
    learner.meta_fit(Sinusoid(5, 10, seed=0), iterations=3, meta_batch_size=4, progress=False)
    task = Sinusoid(5, 10, seed=1).sample(1)[0]  # drawn on the CPU: moved to the learner
    pred = learner.adapt(task.support_x, task.support_y).predict(task.query_x)
    assert pred.mean.device.type == "cuda" and torch.isfinite(pred.mean).all()
    bayes = bm.BayesianMAML((1, 16, 1), inner_steps=2).to("cuda")
    bayes.meta_fit(Sinusoid(5, 10, seed=0), iterations=2, meta_batch_size=4, progress=False)
    assert bayes.adapt(task.support_x, task.support_y).predict(task.query_x).mean.is_cuda
