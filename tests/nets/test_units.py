"""Standardisation inside the learner: data in natural units, predictions back in them."""

from __future__ import annotations

import pytest
import torch

import bayesmeta as bm
from bayesmeta.nets.functional import FunctionalNet
from bayesmeta.nets.mlp import MLP
from bayesmeta.nets.units import Units, on_unit_scale
from bayesmeta.tasks import Sinusoid
from bayesmeta.tasks.task import TaskBatch


def test_fit_maps_and_constant_columns() -> None:
    units = Units()
    assert not units.fitted and units.target_scale() is None
    x = torch.stack([torch.linspace(0, 10, 50), torch.full((50,), 3.0)], -1).unsqueeze(0)
    y = torch.linspace(100, 200, 50).reshape(1, 50, 1)
    units.fit(x, y)
    z = units.inputs(x)
    torch.testing.assert_close(z[..., 0].mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[..., 0].std(unbiased=False), torch.tensor(1.0))
    torch.testing.assert_close(z[..., 1], torch.zeros(1, 50))  # constant: centred, scale 1
    assert float(units.x_scale[1]) == 1.0
    torch.testing.assert_close(units.outputs(torch.zeros(1)), y.mean().reshape(1))
    with pytest.raises(ValueError, match="NaN or infinite"):
        Units().fit(torch.tensor([[float("nan")]]), None)


def test_on_unit_scale() -> None:
    assert on_unit_scale(torch.tensor([0.0]), torch.tensor([2.9]))
    assert not on_unit_scale(torch.tensor([33.0]), torch.tensor([20.0]))  # heights in feet
    assert not on_unit_scale(torch.tensor([0.0]), torch.tensor([0.01]))


def _scaled(batch: TaskBatch, a: float, b: float, c: float, d: float) -> TaskBatch:
    """``x -> a x + b``, ``y -> c y + d``."""
    return TaskBatch(
        batch.support_x * a + b,
        batch.support_y * c + d,
        batch.query_x * a + b,
        batch.query_y * c + d,
    )


class _Fixed:
    """A source that returns the same batches as another, transformed."""

    def __init__(self, batches: list[TaskBatch], transform: tuple[float, ...]) -> None:
        self.batches = [_scaled(b, *transform) for b in batches]
        self.i = 0

    def sample(self, n: int) -> TaskBatch:
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        return b


@pytest.mark.parametrize(
    "make",
    [
        lambda: bm.MAML((1, 16, 1), standardize=True),
        lambda: bm.BayesianMAML((1, 16, 1), standardize=True),
        lambda: bm.BayesianMAML((1, 16, 1), likelihood="student_t", standardize=True),
    ],
)
def test_learners_are_equivariant_to_the_units_of_the_data(make) -> None:
    """Trained and evaluated in other units, predictions are the same up to the unit change."""
    batches = [Sinusoid(5, 10, seed=s).sample(8) for s in range(3)]
    test = Sinusoid(5, 10, seed=9).sample(4)
    unit_change = (10.0, 3.0, 100.0, 50.0)
    preds = []
    for transform in ((1.0, 0.0, 1.0, 0.0), unit_change):
        torch.manual_seed(0)
        learner = make()
        learner.meta_fit(_Fixed(batches, transform), 12, meta_batch_size=8, progress=False)
        t = _scaled(test, *transform)
        post = learner.adapt(t.support_x, t.support_y)
        if isinstance(learner, bm.MAML):
            preds.append(post.predict(t.query_x))
        else:
            g = torch.Generator().manual_seed(1)
            preds.append(post.predict(t.query_x, num_samples=50, generator=g))
    base, other = preds
    torch.testing.assert_close(other.mean, base.mean * 100.0 + 50.0, rtol=1e-4, atol=1e-3)
    if not isinstance(make(), bm.MAML):
        torch.testing.assert_close(other.std, base.std * 100.0, rtol=1e-4, atol=1e-3)
        lo, hi = base.interval(0.9)
        lo2, hi2 = other.interval(0.9)
        torch.testing.assert_close(lo2, lo * 100 + 50, rtol=1e-4, atol=1e-2)
        torch.testing.assert_close(hi2, hi * 100 + 50, rtol=1e-4, atol=1e-2)


def test_raw_units_give_sensible_intervals_and_unit_data_are_left_alone() -> None:
    torch.manual_seed(0)
    raw = bm.BayesianMAML((1, 16, 1))  # standardize="auto"
    src = _Fixed([Sinusoid(5, 10, seed=s).sample(8) for s in range(3)], (3.0, 13.0, 10.0, 33.0))
    raw.meta_fit(src, 5, meta_batch_size=8, progress=False)
    assert raw.units.fitted and float(raw.units.y_scale) > 5
    plain = bm.BayesianMAML((1, 16, 1))
    plain.meta_fit(Sinusoid(5, 10, seed=0), 2, meta_batch_size=8, progress=False)
    assert not plain.units.fitted  # sinusoids are on unit scale
    with pytest.raises(ValueError, match="standardize"):
        bm.MAML((1, 8, 1), standardize="yes")  # type: ignore[arg-type]


def test_units_are_saved_with_the_learner() -> None:
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 8, 1), standardize=True)
    learner.meta_fit(Sinusoid(5, 10, seed=0), 2, meta_batch_size=4, progress=False)
    fresh = bm.BayesianMAML((1, 8, 1), standardize=True)
    fresh.load_state_dict(learner.state_dict())
    for name in ("x_loc", "x_scale", "y_loc", "y_scale"):
        torch.testing.assert_close(getattr(fresh.units, name), getattr(learner.units, name))
    old = {k: v for k, v in learner.state_dict().items() if not k.startswith("units.")}
    older = bm.BayesianMAML((1, 8, 1))
    older.load_state_dict(old)  # saved before the maps existed: unfitted
    assert not older.units.fitted


def test_classification_and_binary_targets_are_not_standardised() -> None:
    learner = bm.BayesianMAML((2, 8, 1), likelihood="bernoulli", standardize=True)
    x = torch.randn(4, 6, 2) * 50 + 100
    y = (torch.rand(4, 6, 1) > 0.5).float()
    learner.meta_loss(TaskBatch(x[:, :3], y[:, :3], x[:, 3:], y[:, 3:]))
    assert learner.units.x_loc.numel() == 2 and learner.units.y_loc.numel() == 0


def test_fast_output_gradient_path_matches_autograd_through_the_maps() -> None:
    torch.manual_seed(0)
    units = Units()
    units.fit(torch.randn(1, 20, 3) * 4 + 7, torch.randn(1, 20, 2) * 30 - 5)
    fnet = FunctionalNet(MLP((3, 8, 2)))
    fnet.units = units
    params = tuple(p.detach().expand(5, *p.shape).clone() for p in fnet.params())
    x, y = torch.randn(5, 6, 3) * 4 + 7, torch.randn(5, 6, 2) * 30 - 5
    lik = bm.model.likelihoods.GaussianLikelihood(0.3, num_outputs=2)
    lik.bind_units(units)
    fast = fnet.loss_grad(params, x, y, lik, create_graph=False)
    ps = tuple(p.clone().requires_grad_(True) for p in params)
    slow = torch.autograd.grad(lik(fnet(ps, x), y).sum(), ps)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_checkpoint_round_trip_keeps_units_and_calibrated_noise(tmp_path) -> None:
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 8, 1))
    src = _Fixed([Sinusoid(5, 10, seed=s).sample(8) for s in range(2)], (3.0, 13.0, 10.0, 33.0))
    learner.meta_fit(src, 4, meta_batch_size=8, progress=False)
    assert learner.units.fitted and learner.calibration.fitted
    path = tmp_path / "learner.safetensors"
    from bayesmeta.io import load_learner, save_learner

    save_learner(learner, path)
    loaded = load_learner(path)
    task = _scaled(Sinusoid(5, 10, seed=7).sample(2), 3.0, 13.0, 10.0, 33.0)
    preds = []
    for model in (learner, loaded):
        post = model.adapt(
            task.support_x, task.support_y, generator=torch.Generator().manual_seed(0)
        )
        preds.append(
            post.predict(task.query_x, num_samples=20, generator=torch.Generator().manual_seed(1))
        )
    torch.testing.assert_close(preds[0].mean, preds[1].mean)
    torch.testing.assert_close(preds[0].std, preds[1].std)
    torch.testing.assert_close(loaded.predictive_noise(), learner.predictive_noise())
