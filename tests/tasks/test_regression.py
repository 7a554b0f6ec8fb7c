import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- properties of the samplers (hypothesis) -------------------------------------------


@st.composite
def ranges(draw, low=-10.0, high=10.0, min_width=0.01):
    """A ``(low, high)`` pair with ``high - low >= min_width``."""
    a = draw(st.floats(low, high - min_width, allow_nan=False))
    b = draw(st.floats(a + min_width, high, allow_nan=False))
    return a, b


def within(values, bounds):
    lo, hi = bounds
    eps = 1e-5 * max(1.0, abs(lo), abs(hi))  # float32 rounding of low + u * (high - low)
    return float(values.min()) >= lo - eps and float(values.max()) <= hi + eps


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 6),
    q=st.integers(0, 6),
    t=st.integers(1, 5),
    amplitude=ranges(0.0, 5.0),
    phase=ranges(0.0, 4.0),
    x_range=ranges(),
    seed=st.integers(0, 2**31),
)
def test_sinusoid_property(k, q, t, amplitude, phase, x_range, seed):
    def make(s):
        return Sinusoid(k, q, amplitude=amplitude, phase=phase, x_range=x_range, seed=s)

    batch = make(seed).sample(t)
    assert batch.support_x.shape == (t, k, 1) and batch.support_y.shape == (t, k, 1)
    assert batch.query_x.shape == (t, q, 1) and batch.query_y.shape == (t, q, 1)
    amp, ph = batch.info["amplitude"], batch.info["phase"]
    assert amp.shape == (t,) and ph.shape == (t,)
    assert within(amp, amplitude) and within(ph, phase)
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    assert within(x, x_range)
    torch.testing.assert_close(y, amp[:, None, None] * torch.sin(x - ph[:, None, None]))
    # the same seed draws the same tasks; another seed draws other inputs
    again = make(seed).sample(t)
    assert torch.equal(batch.support_x, again.support_x)
    assert torch.equal(batch.query_y, again.query_y) and torch.equal(amp, again.info["amplitude"])
    other = make(seed + 1).sample(t)
    assert not torch.equal(x, torch.cat([other.support_x, other.query_x], 1))


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 6),
    q=st.integers(0, 6),
    t=st.integers(1, 6),
    p_sine=st.sampled_from([0.0, 0.3, 1.0]),
    slope=ranges(-3.0, 3.0),
    intercept=ranges(-3.0, 3.0),
    amplitude=ranges(0.1, 5.0),
    x_range=ranges(),
    seed=st.integers(0, 2**31),
)
def test_sinusoid_or_line_property(k, q, t, p_sine, slope, intercept, amplitude, x_range, seed):
    def make(s):
        return SinusoidOrLine(
            k,
            q,
            p_sine=p_sine,
            noise_std=0.0,
            slope=slope,
            intercept=intercept,
            amplitude=amplitude,
            x_range=x_range,
            seed=s,
        )

    batch = make(seed).sample(t)
    info = batch.info
    assert batch.support_x.shape == (t, k, 1) and batch.query_y.shape == (t, q, 1)
    assert set(info["is_sine"].tolist()) <= {0.0, 1.0}
    if p_sine in (0.0, 1.0):  # the kind is certain
        assert bool((info["is_sine"] == p_sine).all())
    assert within(info["slope"], slope) and within(info["intercept"], intercept)
    assert within(info["amplitude"], amplitude) and within(info["phase"], (0.0, math.pi))
    x = torch.cat([batch.support_x, batch.query_x], 1)
    assert within(x, x_range)
    sine = info["amplitude"][:, None, None] * torch.sin(x - info["phase"][:, None, None])
    line = info["slope"][:, None, None] * x + info["intercept"][:, None, None]
    clean = torch.where(info["is_sine"][:, None, None] > 0, sine, line)
    torch.testing.assert_close(torch.cat([batch.support_y, batch.query_y], 1), clean)
    again = make(seed).sample(t)
    assert torch.equal(batch.support_y, again.support_y) and torch.equal(
        info["slope"], again.info["slope"]
    )
    other = make(seed + 1).sample(t)
    assert not torch.equal(x, torch.cat([other.support_x, other.query_x], 1))
