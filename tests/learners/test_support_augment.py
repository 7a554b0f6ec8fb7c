"""Test-time augmentation of the support set wraps any learner."""

import pytest
import torch

import bayesmeta as bm
from bayesmeta.errors import ShapeError
from bayesmeta.nets import Conv4, PixelSkip
from bayesmeta.tasks import Jitter

NONE = Jitter(shift=0.0, rotation=0.0, shear=0.0, scale=0.0)


class _Recorder:
    def adapt(self, support_x, support_y):
        self.seen = (support_x, support_y)
        return self


def test_augment_appends_copies_with_their_labels():
    rec = _Recorder()
    tta = bm.AugmentedSupport(rec, 3, Jitter(), seed=0)
    sx, sy = torch.rand(2, 5, 1, 8, 8), torch.arange(5).repeat(2, 1)
    tta.adapt(sx, sy)
    x, y = rec.seen
    assert x.shape == (2, 20, 1, 8, 8) and y.shape == (2, 20)
    assert torch.equal(x[:, :5], sx) and torch.equal(y, sy.repeat(1, 4))
    one_x, one_y = tta.augment(sx[0], sy[0])  # one task, no task axis
    assert one_x.shape == (20, 1, 8, 8) and torch.equal(one_y, sy[0].repeat(4))


def test_protonet_prototype_is_the_mean_over_copies():
    torch.manual_seed(0)
    # running batch-norm statistics: each image's embedding does not depend on the others
    # (and raw pixels in the embedding, so that an untrained encoder tells images apart)
    conv = Conv4(1, None, hidden=4, image_size=8, track_running_stats=True)
    learner = bm.ProtoNet(PixelSkip(conv, pixel_scale=3.0))
    sx, sy = torch.rand(1, 5, 1, 8, 8), torch.arange(5)[None]
    qx = torch.rand(1, 7, 1, 8, 8)
    # copies that are the image itself leave the prototypes, hence the predictions, unchanged
    same = bm.AugmentedSupport(learner, 2, NONE).adapt(sx, sy).predict(qx).probs
    plain = learner.adapt(sx, sy).predict(qx).probs
    torch.testing.assert_close(same, plain, atol=1e-5, rtol=0)
    jittered = bm.AugmentedSupport(learner, 2, Jitter(), seed=1).adapt(sx, sy).predict(qx).probs
    assert jittered.shape == plain.shape and not torch.allclose(jittered, plain)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        bm.AugmentedSupport(_Recorder(), 0, Jitter())
    with pytest.raises(TypeError):
        bm.AugmentedSupport(object(), 2, Jitter())
    with pytest.raises(TypeError):
        bm.AugmentedSupport(_Recorder(), 2, 0.1)  # type: ignore[arg-type]
    tta = bm.AugmentedSupport(_Recorder(), 2, Jitter())
    with pytest.raises(ShapeError):
        tta.adapt(torch.rand(5, 64), torch.arange(5))
    with pytest.raises(ShapeError):
        tta.adapt(torch.rand(1, 5, 1, 8, 8), torch.arange(5))
