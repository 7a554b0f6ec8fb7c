"""The few-shot baselines: exact rules, proper probabilities, fitted temperatures, clear errors."""

import pytest
import torch
from torch import nn

import bayesmeta as bm
from bayesmeta.baselines import (
    LinearProbe,
    NearestCentroid,
    NearestNeighbour,
    pretrain_encoder,
    squared_distances,
)
from bayesmeta.errors import ShapeError
from bayesmeta.tasks import Episodes


def _blobs(seed=0, classes=10, per_class=30, dim=6):
    g = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(classes, dim, generator=g)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return centres[labels] + torch.randn(len(labels), dim, generator=g), labels


def test_nearest_neighbour_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    sx, sy = torch.randn(4, 9, 2, 3, generator=g), torch.tensor([0, 1, 2] * 3).repeat(4, 1)
    qx = torch.randn(4, 7, 2, 3, generator=g)
    pred = NearestNeighbour(temperature=0.7).adapt(sx, sy).predict(qx)
    for t in range(4):
        for q in range(7):
            d = ((sx[t] - qx[t, q]) ** 2).flatten(1).sum(1)
            assert int(pred.predicted[t, q]) == int(sy[t, d.argmin()])
            # probabilities: softmax over classes of minus the nearest distance / temperature
            nearest = torch.stack([d[sy[t] == c].min() for c in range(3)])
            expected = torch.softmax(-nearest / 0.7, 0)
            torch.testing.assert_close(pred.probs[t, q], expected, atol=1e-5, rtol=1e-4)


def test_nearest_centroid_matches_class_means_and_unbatched_input():
    sx = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    sy = torch.tensor([0, 0, 1])
    qx = torch.tensor([[4.0, 0.0], [8.0, 1.0]])
    pred = NearestCentroid(temperature=2.0).adapt(sx, sy).predict(qx)
    assert pred.probs.shape == (2, 2)
    d = torch.tensor([[9.0, 36.0], [49 + 1.0, 4 + 1.0]])
    torch.testing.assert_close(pred.probs, torch.softmax(-d / 2.0, -1))
    torch.testing.assert_close(squared_distances(qx[None], sx[None])[0], torch.cdist(qx, sx) ** 2)


@pytest.mark.parametrize(
    "baseline",
    [NearestNeighbour(), NearestCentroid(), LinearProbe(steps=30), LinearProbe(head="cosine")],
    ids=["nn", "centroid", "probe", "cosine"],
)
def test_baselines_give_probabilities_and_beat_chance_on_separable_classes(baseline):
    x, y = _blobs()
    test = Episodes(x, y, 5, 1, 10, classes=range(5, 10), seed=1)
    result = bm.evaluate(baseline, test, 20, chunk_size=7)
    batch = test.sample(3)
    probs = baseline.adapt(batch.support_x, batch.support_y).predict(batch.query_x).probs
    assert probs.shape == (3, 50, 5) and bool((probs >= 0).all())
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 50))
    assert result.summary()["accuracy"][0] > 0.6


def test_fit_temperature_lowers_nll_on_training_classes():
    x, y = _blobs(per_class=20)
    train = Episodes(x, y, 5, 1, 5, classes=range(5), seed=0)
    baseline = NearestNeighbour(temperature=1e-3)  # far too confident to start with
    before = bm.evaluate(baseline, train.sample(50, generator=torch.Generator().manual_seed(3)))
    temperature = baseline.fit_temperature(train, 100)
    after = bm.evaluate(baseline, train.sample(50, generator=torch.Generator().manual_seed(3)))
    assert temperature == baseline.temperature and 1e-3 < temperature <= 1e3
    assert after.summary()["nll"][0] < before.summary()["nll"][0]


def test_linear_probe_fits_the_support_set_and_uses_the_encoder():
    encoder = nn.Linear(6, 4)
    x, y = _blobs(classes=5)
    eps = Episodes(x, y, 5, 3, 5, seed=0).sample(4)
    probe = LinearProbe(encoder, steps=200, l2=0.0)
    pred = probe.adapt(eps.support_x, eps.support_y).predict(eps.support_x)
    assert bool((pred.predicted == eps.support_y).all())
    assert encoder.weight.grad is None  # the encoder is fixed


def test_pretrain_encoder_learns_and_keeps_the_best_validation_state():
    torch.manual_seed(0)
    x, y = _blobs(classes=12, per_class=20)
    encoder = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8))
    val = Episodes(x, y, 3, 1, 5, classes=range(8, 12), seed=0).sample(20)
    keep = y < 8
    result = pretrain_encoder(
        encoder, x[keep], y[keep], steps=60, batch_size=32, lr=1e-2, val=val, eval_every=20
    )
    assert [s for s, _ in result["val_accuracy"]] == [20, 40, 60]
    best = max(a for _, a in result["val_accuracy"])
    assert dict(result["val_accuracy"])[result["best_step"]] == best
    assert not encoder.training


def test_bad_inputs_are_refused_with_clear_errors():
    nn1 = NearestNeighbour()
    with pytest.raises(ValueError, match=r"class 1 of 0\.\.2 has no support example"):
        nn1.adapt(torch.randn(2, 3), torch.tensor([0, 2]))
    with pytest.raises(ShapeError, match="integer"):
        nn1.adapt(torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ShapeError, match="disagree"):
        nn1.adapt(torch.randn(3, 3), torch.tensor([0, 1]))
    pred = nn1.adapt(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ShapeError, match="query_x"):
        pred.predict(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="temperature"):
        NearestCentroid(temperature=0.0)
    with pytest.raises(ValueError, match="head"):
        LinearProbe(head="tanh")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="encoder"):
        NearestCentroid(encoder="pixels")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two classes"):
        pretrain_encoder(nn.Linear(3, 2), torch.randn(4, 3), torch.zeros(4, dtype=torch.long))


def test_public_names_are_documented_and_exported_from_the_package():
    import bayesmeta.baselines as mod

    assert bm.baselines is mod
    for name in mod.__all__:
        obj = getattr(mod, name)
        assert name == "Head" or getattr(obj, "__doc__", None), name
