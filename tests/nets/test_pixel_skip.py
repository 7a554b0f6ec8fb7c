"""PixelSkip: learned features beside the scaled raw pixels."""

import math

import pytest
import torch

import bayesmeta as bm
from bayesmeta.nets import Conv4, PixelSkip
from bayesmeta.tasks import Episodes


def test_embedding_is_features_then_scaled_pixels():
    torch.manual_seed(0)
    conv = Conv4(1, None, hidden=4, image_size=8)
    net = PixelSkip(conv, pixel_scale=2.0)
    x = torch.rand(3, 1, 8, 8)
    z = net(x)
    assert z.shape == (3, conv.embedding_dim + 64) and net.feature_dims == 3
    torch.testing.assert_close(z[:, : conv.embedding_dim], conv(x))
    torch.testing.assert_close(z[:, conv.embedding_dim :], 2.0 * x.flatten(1))
    assert math.isclose(float(net.pixel_scale.detach()), 2.0, rel_tol=1e-6)


def test_scale_is_learned_by_a_metric_learner_unless_fixed():
    torch.manual_seed(0)
    x, y = torch.rand(60, 1, 8, 8), torch.arange(60) % 6
    episodes = Episodes(x, y, 5, 1, 2, seed=0)
    learner = bm.ProtoNet(PixelSkip(Conv4(1, None, hidden=4, image_size=8)))
    learner.meta_fit(episodes, 3, 2, progress=False)
    assert float(learner.encoder.log_pixel_scale.detach()) != 0.0
    fixed = bm.ProtoNet(PixelSkip(Conv4(1, None, hidden=4, image_size=8), learn_scale=False))
    fixed.meta_fit(episodes, 3, 2, progress=False)
    assert float(fixed.encoder.log_pixel_scale.detach()) == 0.0


def test_a_head_reads_features_and_pixels_for_gradient_learners():
    torch.manual_seed(0)
    net = PixelSkip(Conv4(1, None, hidden=4, image_size=8), out_features=5, input_shape=(1, 8, 8))
    assert net(torch.rand(2, 1, 8, 8)).shape == (2, 5)
    assert net.head is not None and net.head.in_features == 4 + 64
    learner = bm.MAML(net, inner_lr=0.1, inner_steps=1, loss="cross_entropy", first_order=True)
    batch = Episodes(torch.rand(60, 1, 8, 8), torch.arange(60) % 6, 5, 1, 2, seed=0).sample(2)
    learner.meta_step(batch)
    assert learner.adapt(batch.support_x, batch.support_y).predict(batch.query_x).probs.shape == (
        2,
        10,
        5,
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"pixel_scale": 0.0}, {"pixel_scale": math.nan}, {"out_features": 0}, {"out_features": 5}],
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        PixelSkip(Conv4(1, None, hidden=4, image_size=8), **kwargs)
    with pytest.raises(TypeError):
        PixelSkip(lambda x: x)  # type: ignore[arg-type]
