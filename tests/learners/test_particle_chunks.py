"""BayesianMAML's outer particles backpropagated in chunks: the same meta-gradient."""

import pytest
import torch

import bayesmeta as bm
from bayesmeta.tasks import Sinusoid


def _grads(learner, batch, seed):
    torch.manual_seed(seed)
    value = learner.meta_gradients(batch)
    return value, [p.grad.clone() for p in learner.parameters() if p.grad is not None]


@pytest.mark.parametrize("objective", ["predictive", "elbo"])
@pytest.mark.parametrize("chunk", [1, 3])
def test_chunked_particles_give_the_same_loss_and_meta_gradient(objective, chunk):
    torch.manual_seed(0)
    kwargs = dict(inner_steps=2, num_particles=7, objective=objective, kl_weight=0.5)
    whole = bm.BayesianMAML((1, 16, 16, 1), **kwargs)
    parts = bm.BayesianMAML((1, 16, 16, 1), particle_chunk=chunk, **kwargs)
    parts.load_state_dict(whole.state_dict())
    batch = Sinusoid(5, 10, seed=3).sample(4)
    v1, g1 = _grads(whole, batch, seed=11)
    v2, g2 = _grads(parts, batch, seed=11)
    assert v1 == pytest.approx(v2, rel=1e-5)
    assert len(g1) == len(g2) > 0
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # the loss is meta_loss's on the same draws
    torch.manual_seed(11)
    assert float(whole.meta_loss(batch).detach()) == pytest.approx(v2, rel=1e-5)


def test_chunks_work_for_class_labels_and_train_the_same():
    from bayesmeta.tasks import Episodes

    x = torch.randn(60, 6)
    y = torch.arange(60) % 6
    source = Episodes(x, y, 3, 2, 4, seed=0)
    kwargs = dict(likelihood="categorical", inner_steps=1, num_particles=4, prior_scale=0.05)
    torch.manual_seed(1)
    whole = bm.BayesianMAML((6, 8, 3), **kwargs)
    parts = bm.BayesianMAML((6, 8, 3), particle_chunk=1, **kwargs)
    parts.load_state_dict(whole.state_dict())
    batch = source.sample(3)
    v1, g1 = _grads(whole, batch, seed=5)
    v2, g2 = _grads(parts, batch, seed=5)
    assert v1 == pytest.approx(v2, rel=1e-5)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_particle_chunk_is_a_checked_hyper_parameter():
    assert bm.BayesianMAML((1, 4, 1), particle_chunk=2).config()["particle_chunk"] == 2
    with pytest.raises(ValueError, match="particle_chunk"):
        bm.BayesianMAML((1, 4, 1), particle_chunk=0)


def test_a_chunk_below_one_is_refused_by_the_function_too():
    from bayesmeta.learners.particle_chunks import chunked_particle_backward
    from bayesmeta.model.likelihoods import make_likelihood

    with pytest.raises(ValueError, match="chunk"):
        chunked_particle_backward(
            lambda theta, x: x.expand(theta.shape[0], -1, -1, -1),
            make_likelihood("gaussian", 0.1, False, 1),
            torch.zeros(2, 1, 3),
            torch.zeros(1, 4, 1),
            torch.zeros(1, 4, 1),
            torch.zeros(1),
            chunk=0,
        )
