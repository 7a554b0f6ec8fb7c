"""Within-class jitter of images and the episodes that carry it."""

import math

import pytest
import torch

from bayesmeta.errors import ShapeError
from bayesmeta.tasks import Episodes, Jitter, JitteredEpisodes, jitter_images

NONE = Jitter(shift=0.0, rotation=0.0, shear=0.0, scale=0.0)


def _bar(size: int = 16) -> torch.Tensor:
    x = torch.zeros(1, 1, size, size)
    x[..., 4:12, 7:9] = 1.0
    return x


def test_no_jitter_is_the_identity():
    x = torch.rand(3, 2, 1, 8, 8)
    torch.testing.assert_close(jitter_images(x, NONE), x, atol=1e-5, rtol=0)


def test_a_pure_shift_moves_the_ink_by_that_fraction_of_the_side():
    x = _bar()
    # shift 0.25 of a 16-pixel side, drawn at the extreme: move the bar by up to 4 pixels
    out = jitter_images(x, Jitter(shift=0.25, rotation=0.0, shear=0.0, scale=0.0))
    cols = torch.arange(16.0)
    before = (x[0, 0].sum(0) * cols).sum() / x[0, 0].sum()
    after = (out[0, 0].sum(0) * cols).sum() / out[0, 0].sum()
    assert 0 < abs(float(after - before)) <= 4.0 + 1e-4


def test_jitter_is_seeded_per_image_and_keeps_shape_and_mass():
    x = _bar().expand(6, 1, 16, 16).reshape(2, 3, 1, 16, 16).contiguous()
    a = jitter_images(x, Jitter(), generator=torch.Generator().manual_seed(0))
    b = jitter_images(x, Jitter(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape
    flat = a.reshape(6, -1)
    assert not torch.allclose(flat[0], flat[1])  # each image its own deformation
    # small deformations keep most of the ink inside the frame
    assert torch.all((flat.sum(1) / x[0, 0].sum() - 1).abs() < 0.3)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"shift": -0.1}, ValueError),
        ({"rotation": math.inf}, ValueError),
        ({"scale": 1.0}, ValueError),
        ({"shear": 90.0}, ValueError),
        ({"rotation": True}, TypeError),
    ],
)
def test_bad_strengths_are_refused(kwargs, error):
    with pytest.raises(error):
        Jitter(**kwargs)


def test_jitter_refuses_what_is_not_images():
    with pytest.raises(ShapeError):
        jitter_images(torch.rand(4, 8), Jitter())
    with pytest.raises(TypeError):
        jitter_images(torch.rand(1, 1, 4, 4), {"shift": 0.1})  # type: ignore[arg-type]


def test_jittered_episodes_keep_the_labels_and_deform_the_images():
    x, y = torch.rand(60, 1, 8, 8), torch.arange(60) % 6
    plain = Episodes(x, y, 5, 1, 2, seed=3)
    jittered = JitteredEpisodes(Episodes(x, y, 5, 1, 2, seed=3), Jitter(), seed=0)
    a, b = plain.sample(4), jittered.sample(4)
    assert torch.equal(a.support_y, b.support_y) and torch.equal(a.query_y, b.query_y)
    assert torch.equal(a.info["support_index"], b.info["support_index"])
    assert b.support_x.shape == a.support_x.shape and not torch.allclose(a.query_x, b.query_x)
    support_only = JitteredEpisodes(Episodes(x, y, 5, 1, 2, seed=3), Jitter(), query=False)
    c = support_only.sample(4)
    assert torch.equal(c.query_x, a.query_x) and not torch.allclose(c.support_x, a.support_x)


def test_jittered_episodes_need_image_episodes():
    flat = Episodes(torch.rand(30, 4), torch.arange(30) % 5, 5, 1, 1, seed=0)
    with pytest.raises(ShapeError, match="image episodes"):
        JitteredEpisodes(flat, Jitter()).sample(2)
    with pytest.raises(TypeError):
        JitteredEpisodes(object(), Jitter())  # type: ignore[arg-type]
