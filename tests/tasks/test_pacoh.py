import math

import pytest
import torch

from bayesmeta.tasks import TaskPool, TaskSource
from bayesmeta.tasks.pacoh import PacohCauchy, PacohSinusoid


def _npdf(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _ncdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


# --------------------------------------------------------------------------- sinusoid


def test_sinusoid_shapes_ranges_and_formula():
    batch = PacohSinusoid(k_support=5, k_query=20, noise_std=0.0, seed=0).sample(50)
    assert batch.support_x.shape == (50, 5, 1) and batch.support_y.shape == (50, 5, 1)
    assert batch.query_x.shape == (50, 20, 1) and batch.query_y.shape == (50, 20, 1)
    assert set(batch.info) == {"amplitude", "slope", "x_shift", "y_shift"}
    assert all(v.shape == (50,) for v in batch.info.values())
    a, s = batch.info["amplitude"], batch.info["slope"]
    x0, y0 = batch.info["x_shift"], batch.info["y_shift"]
    x = batch.query_x
    want = s[:, None, None] * x + a[:, None, None] * torch.sin(1.5 * (x - x0[:, None, None]))
    torch.testing.assert_close(batch.query_y, want + y0[:, None, None])
    # the classmethod is the same function
    torch.testing.assert_close(
        PacohSinusoid.function(batch.support_x, a, s, x0, y0), batch.support_y
    )


def test_sinusoid_parameter_and_input_statistics():
    batch = PacohSinusoid(k_support=5, k_query=45, seed=1).sample(4000)
    a = batch.info["amplitude"]
    assert float(a.min()) >= 0.7 and float(a.max()) <= 1.3
    # U[0.7, 1.3]: mean 1, std 0.6 / sqrt(12)
    assert abs(float(a.mean()) - 1.0) < 0.012
    assert abs(float(a.std()) - 0.6 / math.sqrt(12)) < 0.01
    # normals (mean, std) with standard errors std / sqrt(4000) ~ std / 63
    for key, mean, std in (("slope", 0.5, 0.2), ("x_shift", 0.0, 0.1), ("y_shift", 5.0, 0.1)):
        v = batch.info[key]
        assert abs(float(v.mean()) - mean) < 4 * std / math.sqrt(4000), key
        assert abs(float(v.std()) / std - 1.0) < 0.05, key
    x = torch.cat([batch.support_x, batch.query_x], dim=1)
    assert float(x.min()) >= -5.0 and float(x.max()) <= 5.0
    assert abs(float(x.mean())) < 0.03 and abs(float(x.std()) - 10 / math.sqrt(12)) < 0.02


def test_sinusoid_noise_level_of_residuals():
    batch = PacohSinusoid(k_support=10, k_query=40, seed=2).sample(2000)
    info = batch.info
    args = (info["amplitude"], info["slope"], info["x_shift"], info["y_shift"])
    resid = torch.cat(
        [
            batch.support_y - PacohSinusoid.function(batch.support_x, *args),
            batch.query_y - PacohSinusoid.function(batch.query_x, *args),
        ],
        dim=1,
    )
    # 100k residuals: standard error of the std ~ 0.1 / sqrt(2e5)
    assert abs(float(resid.std()) - 0.1) < 0.002
    assert abs(float(resid.mean())) < 0.002
    # independent of the task: no per-task offset left in the residuals
    assert float(resid.mean(dim=(1, 2)).std()) < 0.1 / math.sqrt(50) * 1.3


def test_sinusoid_is_reproducible_and_seed_dependent():
    a = PacohSinusoid(5, 5, seed=3).sample(4)
    b = PacohSinusoid(5, 5, seed=3).sample(4)
    c = PacohSinusoid(5, 5, seed=4).sample(4)
    assert torch.equal(a.support_y, b.support_y) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.support_y, c.support_y)
    d = PacohSinusoid(5, 5).sample(4, generator=torch.Generator().manual_seed(9))
    e = PacohSinusoid(5, 5).sample(4, generator=torch.Generator().manual_seed(9))
    assert torch.equal(d.query_y, e.query_y)
    assert PacohSinusoid(5, 5, seed=0, dtype=torch.float64).sample(2).query_y.dtype == (
        torch.float64
    )


def test_sinusoid_protocol_sizes():
    train = PacohSinusoid.meta_train_tasks(0)
    assert train.support_x.shape == (20, 5, 1) and train.query_x.shape == (20, 0, 1)
    split = PacohSinusoid.meta_train_tasks(0, k_query=2)
    assert split.support_x.shape == (20, 3, 1) and split.query_y.shape == (20, 2, 1)
    # the same tasks, re-split (same stream, same draws)
    torch.testing.assert_close(split.info["amplitude"], train.info["amplitude"])
    assert PacohSinusoid.meta_train_tasks(0, num_tasks=7).num_tasks == 7
    src = PacohSinusoid.test_source(0)
    assert isinstance(src, PacohSinusoid)
    assert (src.k_support, src.k_query, src.noise_std) == (5, 200, 0.1)
    test = PacohSinusoid.meta_test_tasks(0)
    assert test.support_x.shape == (200, 5, 1) and test.query_x.shape == (200, 200, 1)
    assert PacohSinusoid.meta_test_tasks(0, num_tasks=3).num_tasks == 3


def test_protocol_streams_are_reproducible_and_independent():
    t1 = PacohSinusoid.meta_train_tasks(5)
    t2 = PacohSinusoid.meta_train_tasks(5)
    assert torch.equal(t1.support_y, t2.support_y)
    assert not torch.equal(t1.support_y, PacohSinusoid.meta_train_tasks(6).support_y)
    # the test tasks of the same seed are not the meta-training tasks again
    test = PacohSinusoid.meta_test_tasks(5, num_tasks=20)
    assert not torch.isin(test.info["amplitude"], t1.info["amplitude"]).any()
    assert torch.equal(test.support_x, PacohSinusoid.meta_test_tasks(5, num_tasks=20).support_x)
    # seed=None still works (not reproducible)
    assert PacohSinusoid.meta_train_tasks(None).num_tasks == 20
    # the fixed meta-training set can feed a learner through a TaskPool
    pool = TaskPool(t1, seed=0)
    assert pool.sample(4).support_x.shape == (4, 5, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k_support": 0}, "k_support must be >= 1"),
        ({"k_query": -1}, "k_query must be >= 0"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"noise_std": math.nan}, "noise_std"),
    ],
)
@pytest.mark.parametrize("cls", [PacohSinusoid, PacohCauchy])
def test_sources_reject_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [PacohSinusoid, PacohCauchy])
def test_protocol_rejects_bad_arguments(cls):
    with pytest.raises(ValueError, match="k_query must be <"):
        cls.meta_train_tasks(0, k_query=cls.META_TRAIN_POINTS)
    with pytest.raises(ValueError, match="num_tasks must be >= 1"):
        cls.meta_train_tasks(0, num_tasks=0)
    with pytest.raises(ValueError, match="num_tasks must be >= 1"):
        cls.meta_test_tasks(0, num_tasks=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        cls.test_source(1.5)
    with pytest.raises(ValueError, match="num_tasks must be >= 1"):
        cls(seed=0).sample(0)


def test_sources_satisfy_protocol():
    assert isinstance(PacohSinusoid(), TaskSource)
    assert isinstance(PacohCauchy(), TaskSource)
    assert "PacohCauchy(k_support=20, k_query=200" in repr(PacohCauchy(seed=1))


# --------------------------------------------------------------------------- cauchy


def test_cauchy_shapes_and_info():
    batch = PacohCauchy(k_support=20, k_query=30, seed=0).sample(6)
    assert batch.support_x.shape == (6, 20, 2) and batch.support_y.shape == (6, 20, 1)
    assert batch.query_x.shape == (6, 30, 2) and batch.query_y.shape == (6, 30, 1)
    assert batch.support_x.dtype == torch.get_default_dtype()
    assert batch.info["support_gp"].shape == (6, 20, 1)
    assert batch.info["query_f"].shape == (6, 30, 1)
    sub = batch.select([0, 4])
    torch.testing.assert_close(sub.info["query_gp"], batch.info["query_gp"][[0, 4]])
    b64 = PacohCauchy(5, 0, seed=0, dtype=torch.float64).sample(2)
    assert b64.support_x.dtype == torch.float64 and b64.query_x.shape == (2, 0, 2)


def test_cauchy_mean_function_hand_values():
    # f(-1, -1) = 6 / pi + 3 / (pi (1 + 18)) + 1 and f(2, 2) = 6 / (pi 19) + 3 / pi + 1
    x = torch.tensor([[-1.0, -1.0], [2.0, 2.0], [100.0, -100.0]], dtype=torch.float64)
    want = torch.tensor(
        [
            [6 / math.pi + 3 / (19 * math.pi) + 1],
            [6 / (19 * math.pi) + 3 / math.pi + 1],
            [1 + 6 / (math.pi * (1 + 101**2 + 99**2)) + 3 / (math.pi * (1 + 98**2 + 102**2))],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(PacohCauchy.mean_function(x), want)


def test_cauchy_inputs_are_the_truncated_normal():
    batch = PacohCauchy(k_support=25, k_query=25, noise_std=0.0, seed=1).sample(400)
    x = torch.cat([batch.support_x, batch.query_x], dim=1).double()
    assert float(x.min()) >= -7.5 and float(x.max()) <= 5.0
    # truncnorm(-3, 2, scale=2.5): mean and std in closed form
    a, b, sd = -3.0, 2.0, 2.5
    z = _ncdf(b) - _ncdf(a)
    mean = sd * (_npdf(a) - _npdf(b)) / z
    var = sd**2 * (1 + (a * _npdf(a) - b * _npdf(b)) / z - ((_npdf(a) - _npdf(b)) / z) ** 2)
    for d in range(2):  # both coordinates, 20k draws each
        assert abs(float(x[..., d].mean()) - mean) < 0.05
        assert abs(float(x[..., d].std()) - math.sqrt(var)) < 0.04
    # the two coordinates are independent
    corr = torch.corrcoef(x.reshape(-1, 2).T)[0, 1]
    assert abs(float(corr)) < 0.03
    # lower tail beyond -5 has the truncated-normal mass (Phi(-2) - Phi(-3)) / z
    frac = float((x < -5.0).double().mean())
    assert abs(frac - (_ncdf(-2.0) - _ncdf(-3.0)) / z) < 0.005


def test_cauchy_function_noise_and_gp_decomposition():
    batch = PacohCauchy(k_support=20, k_query=40, seed=2, dtype=torch.float64).sample(500)
    x = torch.cat([batch.support_x, batch.query_x], dim=1)
    y = torch.cat([batch.support_y, batch.query_y], dim=1)
    f = torch.cat([batch.info["support_f"], batch.info["query_f"]], dim=1)
    gp = torch.cat([batch.info["support_gp"], batch.info["query_gp"]], dim=1)
    torch.testing.assert_close(f - gp, PacohCauchy.mean_function(x))
    resid = y - f
    assert abs(float(resid.std()) - 0.05) < 0.001  # 30k residuals
    assert abs(float(resid.mean())) < 0.001
    # the GP perturbation has output scale 0.2 and mean 0 at every point
    assert abs(float(gp.std()) - 0.2) < 0.01
    assert abs(float(gp.mean())) < 0.01


def test_cauchy_gp_is_one_smooth_function_across_support_and_query():
    batch = PacohCauchy(k_support=20, k_query=60, noise_std=0.0, seed=3).sample(600)
    xs, xq = batch.support_x.double(), batch.query_x.double()
    gs, gq = batch.info["support_gp"].double(), batch.info["query_gp"].double()
    dist = torch.cdist(xs, xq)  # [T, K, Q]
    prod = gs * gq.transpose(1, 2)  # g(x_s) g(x_q)
    diff = gs - gq.transpose(1, 2)
    close = dist < 0.1
    assert int(close.sum()) > 100
    # nearby support and query points see nearly the same value: a joint draw gives
    # sd(g(x) - g(x')) = 0.2 sqrt(2 (1 - exp(-d^2))) < 0.03, independent draws 0.28
    assert float(diff[close].pow(2).mean().sqrt()) < 0.03
    assert float(diff[close].abs().max()) < 0.15
    # empirical covariance across support and query follows 0.04 exp(-d^2)
    for lo, hi in ((0.4, 0.6), (0.9, 1.1), (1.4, 1.6)):
        band = (dist > lo) & (dist < hi)
        want = 0.04 * math.exp(-(((lo + hi) / 2) ** 2))
        got = float(prod[band].mean())
        assert abs(got - want) < 0.004, (lo, hi, got, want)
    far = dist > 3.0
    assert abs(float(prod[far].mean())) < 0.002
    torch.testing.assert_close(
        PacohCauchy.kernel(xs[0, :3], xs[0, :3]).diagonal(), torch.full((3,), 0.04).double()
    )


def test_cauchy_mean_is_shared_across_tasks():
    # at one fixed point, the task average of f tends to the mean function
    src = PacohCauchy(k_support=1, k_query=0, seed=4, dtype=torch.float64)
    batch = src.sample(3000)
    avg = float((batch.info["support_f"] - PacohCauchy.mean_function(batch.support_x)).mean())
    assert abs(avg) < 0.02


def test_cauchy_is_reproducible_and_protocol_sizes():
    a = PacohCauchy(10, 10, seed=5).sample(3)
    b = PacohCauchy(10, 10, seed=5).sample(3)
    assert torch.equal(a.query_y, b.query_y) and torch.equal(a.support_x, b.support_x)
    assert not torch.equal(a.query_y, PacohCauchy(10, 10, seed=6).sample(3).query_y)
    train = PacohCauchy.meta_train_tasks(0)
    assert train.support_x.shape == (20, 20, 2) and train.query_x.shape == (20, 0, 2)
    src = PacohCauchy.test_source(0)
    assert (src.k_support, src.k_query, src.noise_std) == (20, 200, 0.05)
    test = PacohCauchy.meta_test_tasks(0, num_tasks=4)
    assert test.support_x.shape == (4, 20, 2) and test.query_y.shape == (4, 200, 1)
    assert not torch.equal(test.support_x[:4], train.support_x[:4])
