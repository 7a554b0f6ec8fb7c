import torch

from bayesmeta import MAML, Sinusoid
from bayesmeta.scoring.evaluation import evaluate


def test_evaluate_chunks_agree_with_one_pass():
    torch.manual_seed(0)
    learner = MAML((1, 8, 1), inner_steps=2)
    batch = Sinusoid(5, 10, seed=0).sample(30)
    a = evaluate(learner, batch, chunk_size=7)
    b = evaluate(learner, batch, chunk_size=100)
    assert a.num_tasks == 30 and a.per_task["mse"].shape == (30,)
    torch.testing.assert_close(a.per_task["mse"], b.per_task["mse"])
    assert set(a.per_task) == {"mse"}  # no noise model yet


def test_evaluate_with_noise_model_reports_probabilistic_metrics():
    torch.manual_seed(0)
    learner = MAML((1, 8, 1), inner_steps=2)
    learner.fit_noise_scale(Sinusoid(5, 10, seed=1).sample(50))
    ev = evaluate(learner, Sinusoid(5, 10, seed=2), num_tasks=40)
    assert set(ev.per_task) == {"mse", "nll", "coverage_90", "crps"}
    summary = ev.to_dict()
    assert 0.0 <= summary["coverage_90"]["mean"] <= 1.0
    assert summary["mse"]["ci95"] > 0
