import math

import pytest
import torch

from bayesmeta import ClassPrediction, ShapeError, metrics


def test_point_prediction_is_softmax_with_no_epistemic_part():
    logits = torch.randn(3, 4, 5)
    pred = ClassPrediction.point(logits)
    assert torch.allclose(pred.probs, torch.softmax(logits, -1), atol=1e-6)
    assert torch.allclose(pred.epistemic_entropy, torch.zeros(3, 4), atol=1e-6)
    assert torch.allclose(pred.entropy, pred.aleatoric_entropy, atol=1e-6)
    assert torch.equal(pred.predicted, logits.argmax(-1))


def test_entropy_split_known_answer():
    # Two confident samples that disagree: each has entropy ~0, the mixture is a fair
    # coin, so all of the log 2 nats is epistemic.
    big = 30.0
    logits = torch.tensor([[[[big, 0.0]]], [[[0.0, big]]]])  # [S=2, B=1, N=1, C=2]
    pred = ClassPrediction.from_logits(logits)
    assert pred.probs[0, 0].tolist() == pytest.approx([0.5, 0.5], abs=1e-6)
    assert float(pred.entropy) == pytest.approx(math.log(2), abs=1e-6)
    assert float(pred.aleatoric_entropy) == pytest.approx(0.0, abs=1e-6)
    assert float(pred.epistemic_entropy) == pytest.approx(math.log(2), abs=1e-6)
    # Two identical uniform samples: all aleatoric.
    pred = ClassPrediction.from_logits(torch.zeros(2, 1, 1, 2))
    assert float(pred.aleatoric_entropy) == pytest.approx(math.log(2), abs=1e-6)
    assert float(pred.epistemic_entropy) == pytest.approx(0.0, abs=1e-6)


def test_log_prob_is_log_of_mean_probability():
    torch.manual_seed(0)
    logits = torch.randn(7, 2, 3, 4)
    pred = ClassPrediction.from_logits(logits)
    y = torch.randint(4, (2, 3))
    expected = torch.softmax(logits, -1).mean(0).gather(-1, y.unsqueeze(-1)).squeeze(-1).log()
    assert torch.allclose(pred.log_prob(y), expected, atol=1e-5)
    assert torch.allclose(metrics.nll(pred, y), -expected.mean(-1), atol=1e-5)


def test_accuracy_and_brier_known_answers():
    probs = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]])
    pred = ClassPrediction(probs.log().unsqueeze(0))
    y = torch.tensor([[0, 1]])
    assert metrics.accuracy(pred, y).tolist() == pytest.approx([0.5])
    first = 0.3**2 + 0.2**2 + 0.1**2
    second = 0.1**2 + 0.9**2 + 0.8**2
    assert metrics.brier(pred, y).tolist() == pytest.approx([(first + second) / 2])


def test_sample_draws_labels_at_the_predictive_frequencies():
    probs = torch.tensor([[[0.2, 0.8]]])
    pred = ClassPrediction(probs.log().unsqueeze(0))
    draws = pred.sample(4000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (4000, 1, 1)
    assert float(draws.double().mean()) == pytest.approx(0.8, abs=0.03)


def test_bad_input_is_named():
    with pytest.raises(ShapeError, match="S, \\*B, N, C"):
        ClassPrediction(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="NaN"):
        ClassPrediction(torch.full((1, 2, 3), float("nan")))
    pred = ClassPrediction.point(torch.zeros(2, 3))
    with pytest.raises(ShapeError, match="integer"):
        pred.log_prob(torch.zeros(2))
    with pytest.raises(ShapeError, match="shape"):
        pred.log_prob(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"0\.\.2"):
        pred.log_prob(torch.tensor([0, 3]))
