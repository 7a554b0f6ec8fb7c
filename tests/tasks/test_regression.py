import math

import pytest
import torch

from bayesmeta.tasks import Sinusoid, SinusoidOrLine, TaskSource


def test_sinusoid_shapes_ranges_and_formula():
    batch = Sinusoid(k_support=5, k_query=7, seed=0).sample(300)
    assert batch.support_x.shape == (300, 5, 1) and batch.query_y.shape == (300, 7, 1)
    amp, phase = batch.info["amplitude"], batch.info["phase"]
    assert float(amp.min()) >= 0.1 and float(amp.max()) <= 5.0
    assert float(phase.min()) >= 0.0 and float(phase.max()) <= math.pi
    assert float(batch.support_x.abs().max()) <= 5.0
    expected = amp[:, None, None] * torch.sin(batch.query_x - phase[:, None, None])
    torch.testing.assert_close(batch.query_y, expected)
    # the draws cover the ranges (not a constant)
    assert float(amp.std()) > 1.0 and float(batch.support_x.std()) > 2.0


def test_sinusoid_is_reproducible_and_seed_dependent():
    a = Sinusoid(5, 5, seed=1).sample(4)
    b = Sinusoid(5, 5, seed=1).sample(4)
    c = Sinusoid(5, 5, seed=2).sample(4)
    assert torch.equal(a.support_y, b.support_y)
    assert not torch.equal(a.support_y, c.support_y)
    g = torch.Generator().manual_seed(9)
    d = Sinusoid(5, 5).sample(4, generator=g)
    e = Sinusoid(5, 5).sample(4, generator=torch.Generator().manual_seed(9))
    assert torch.equal(d.query_x, e.query_x)


def test_sources_satisfy_protocol():
    assert isinstance(Sinusoid(), TaskSource)
    assert isinstance(SinusoidOrLine(), TaskSource)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k_support": 0}, "k_support must be >= 1"),
        ({"k_query": -1}, "k_query must be >= 0"),
        ({"amplitude": (5.0, 1.0)}, "amplitude must be"),
        ({"noise_std": -0.1}, "noise_std"),
    ],
)
def test_sinusoid_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Sinusoid(**kwargs)


def test_sample_rejects_bad_count():
    with pytest.raises(ValueError, match="num_tasks must be >= 1"):
        Sinusoid(seed=0).sample(0)
    with pytest.raises(TypeError, match="num_tasks must be an int"):
        Sinusoid(seed=0).sample(2.5)


def test_sinusoid_or_line_mixes_both_kinds_with_noise():
    src = SinusoidOrLine(k_support=5, k_query=50, noise_std=0.3, seed=0)
    batch = src.sample(400)
    is_sine = batch.info["is_sine"] > 0
    assert 150 < int(is_sine.sum()) < 250
    line = (
        batch.info["slope"][:, None, None] * batch.query_x + batch.info["intercept"][:, None, None]
    )
    sine = batch.info["amplitude"][:, None, None] * torch.sin(
        batch.query_x - batch.info["phase"][:, None, None]
    )
    clean = torch.where(is_sine[:, None, None], sine, line)
    resid = batch.query_y - clean
    assert abs(float(resid.std()) - 0.3) < 0.02
    assert abs(float(resid.mean())) < 0.02
    slopes = batch.info["slope"][~is_sine]
    assert float(slopes.min()) >= -3.0 and float(slopes.max()) <= 3.0
