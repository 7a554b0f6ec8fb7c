"""benchmarks/ood_uncertainty.py: the entropy split it tabulates, and a tiny run."""

import importlib.util
import math
import sys
from pathlib import Path

import torch

from bayesmeta.predictions.class_prediction import ClassPrediction

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "ood_uncertainty.py"


def _module():
    if "ood_uncertainty" not in sys.modules:
        spec = importlib.util.spec_from_file_location("ood_uncertainty", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["ood_uncertainty"] = module
        spec.loader.exec_module(module)
    return sys.modules["ood_uncertainty"]


def test_split_entropy_of_two_confident_draws_that_disagree():
    # Two draws, each sure of a different class: no aleatoric part, log 2 epistemic.
    sure = torch.tensor([[0.0, -40.0], [-40.0, 0.0]]).log_softmax(-1)
    pred = ClassPrediction(sure[:, None, None, :].expand(2, 3, 4, 2).clone())  # [S, T, Q, C]
    labels = torch.zeros(3, 4, dtype=torch.long)
    out = _module().split_entropy(pred, labels)
    assert math.isclose(out["aleatoric"][0], 0.0, abs_tol=1e-9)
    assert math.isclose(out["epistemic"][0], math.log(2), rel_tol=1e-6)
    assert math.isclose(out["total"][0], math.log(2), rel_tol=1e-6)
    assert out["epistemic"][1] == 0.0  # the same in every episode


def test_a_tiny_run_prints_both_learners_on_both_domains(capsys):
    _module().main(
        [
            "--glyph-classes", "30", "--iterations", "2", "--meta-batch", "2",
            "--pretrain-steps", "2", "--eval-tasks", "4", "--samples", "4", "--hidden", "4",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    for learner in ("BayesianProtoNet", "BayesianLastLayer"):
        rows = [line for line in out.splitlines() if line.startswith(learner)]
        assert len(rows) == 2 and "held-out glyphs" in rows[0] and "digits 5-9" in rows[1]
        assert "nan" not in " ".join(rows)
