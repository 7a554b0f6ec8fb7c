import pytest
import torch

from bayesmeta import ClassPrediction, metrics
from bayesmeta.scoring.evaluation import ece_with_interval


def test_ece_known_answer_by_hand():
    # Confidences 0.9 (two points: one right, one wrong) and 0.6 (one point, right).
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4]])
    y = torch.tensor([0, 0, 0])
    rel = metrics.reliability(probs, y, num_bins=10)
    # Bin (0.8, 0.9]: conf 0.9, acc 0.5, n=2; bin (0.5, 0.6]: conf 0.6, acc 1, n=1.
    assert rel.count.sum() == 3
    assert rel.ece == pytest.approx((2 * 0.4 + 1 * 0.4) / 3)
    assert rel.max_gap == pytest.approx(0.4)
    assert torch.isnan(rel.accuracy[0])  # empty bins are NaN, not 0


def test_ece_matches_an_independent_loop():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(500, 5) * 2, -1)
    y = torch.randint(5, (500,))
    conf, pred = probs.max(-1)
    total = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            gap = abs(float((pred[mask] == y[mask]).float().mean()) - float(conf[mask].mean()))
            total += gap * int(mask.sum()) / 500
    assert metrics.expected_calibration_error(probs, y) == pytest.approx(total, abs=1e-6)


def test_calibrated_sampling_gives_small_ece_and_overconfidence_large():
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(20000, 3, generator=g) * 1.5, -1)
    y = torch.multinomial(probs, 1, generator=g).squeeze(-1)
    assert metrics.expected_calibration_error(probs, y) < 0.02
    sharp = torch.softmax(probs.log() * 4, -1)
    assert metrics.expected_calibration_error(sharp, y) > 0.1


def test_reliability_accepts_predictions_over_tasks():
    pred = ClassPrediction.point(torch.randn(4, 6, 3))
    y = torch.randint(3, (4, 6))
    assert metrics.reliability(pred, y).count.sum() == 24


def test_bootstrap_interval_shrinks_with_more_tasks():
    g = torch.Generator().manual_seed(2)

    def draw(t):
        p = torch.softmax(torch.randn(t, 20, 5, generator=g), -1)
        return p, torch.multinomial(p.reshape(-1, 5), 1, generator=g).reshape(t, 20)

    _, small = ece_with_interval(*draw(20))
    _, large = ece_with_interval(*draw(500))
    assert 0 < large < small


def test_bad_bins_and_labels():
    with pytest.raises(ValueError, match="num_bins"):
        metrics.reliability(torch.ones(2, 2) / 2, torch.zeros(2, dtype=torch.long), 0)
    with pytest.raises(Exception, match="integer"):
        metrics.reliability(torch.ones(2, 2) / 2, torch.zeros(2))
