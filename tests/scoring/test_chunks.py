import pytest
import torch

from bayesmeta import BayesianMAML, Sinusoid
from bayesmeta.scoring.chunks import predict_chunks
from bayesmeta.scoring.evaluation import evaluate


@pytest.fixture(scope="module")
def learner():
    torch.manual_seed(0)
    return BayesianMAML((1, 8, 1), inner_steps=1)


def _means(learner, batch, **kwargs):
    return torch.cat([pred.mean for _, pred, _ in predict_chunks(learner, batch, **kwargs)])


def test_chunks_cover_the_tasks_in_order_with_their_targets(learner):
    batch = Sinusoid(5, 10, seed=0).sample(11)
    seen = list(predict_chunks(learner, batch, chunk_size=4, seed=1, progress=False))
    assert [len(chunk) for chunk, _, _ in seen] == [4, 4, 3]
    torch.testing.assert_close(torch.cat([y for _, _, y in seen]), batch.query_y)
    torch.testing.assert_close(torch.cat([c.support_x for c, _, _ in seen]), batch.support_x)


def test_a_seed_fixes_the_draws_and_leaves_the_callers_random_state(learner):
    batch = Sinusoid(5, 10, seed=0).sample(6)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = _means(learner, batch, chunk_size=4, seed=7, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = _means(learner, batch, chunk_size=4, seed=7, progress=False)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = _means(learner, batch, chunk_size=4, seed=8, progress=False)
    assert not torch.equal(a, c)  # the predictive mean is a Monte Carlo average


def test_evaluate_with_a_seed_is_reproducible(learner):
    batch = Sinusoid(5, 10, seed=0).sample(6)
    a = evaluate(learner, batch, chunk_size=4, seed=3)
    b = evaluate(learner, batch, chunk_size=4, seed=3)
    for key, value in a.per_task.items():
        torch.testing.assert_close(value, b.per_task[key], rtol=0, atol=0)


def test_a_bad_chunk_size_is_refused(learner):
    batch = Sinusoid(5, 10, seed=0).sample(2)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        next(predict_chunks(learner, batch, chunk_size=0))
