"""Few-shot digit classification with uncertainty: ProtoNet against its Bayesian form.

Meta-train on the digits 0-4 of scikit-learn's bundled 8x8 digits (no download), then classify
5-way 1-shot episodes of the digits 5-9, which no learner saw. Bayesian ProtoNet keeps a
Normal posterior over each class mean, so a single example per class leaves it less sure, and
its probabilities say so. The table reports accuracy, NLL and Brier score per episode and the
expected calibration error (15 bins) over all query points; the last lines show how one
episode's predictive entropy splits into aleatoric and epistemic parts. Reliability diagrams of
both learners go to fewshot_digits.png (needs matplotlib).

Run:  python examples/fewshot_digits.py            (about a minute on 2 CPU cores)
      python examples/fewshot_digits.py --quick    (seconds; what CI runs)
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import bayesmeta as bm
from bayesmeta.nets import Conv4
from bayesmeta.runs.experiment import format_table
from bayesmeta.scoring.evaluation import evaluate
from bayesmeta.scoring.plotting import plot_reliability
from bayesmeta.tasks import digits_episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument(
        "--out", default="fewshot_digits.png", help="where to save the reliability diagrams"
    )
    args = parser.parse_args()
    iterations, eval_tasks = (10, 20) if args.quick else (args.iterations, 600)
    torch.manual_seed(0)

    train = digits_episodes(5, args.shots, 5, seed=0)["train"]
    test = digits_episodes(5, args.shots, 15, seed=1)["test"].sample(eval_tasks)
    rows = {}
    diagrams = {}
    learners: dict[str, bm.learners.MetricLearner[Any]] = {
        "ProtoNet": bm.ProtoNet(Conv4(1, None, hidden=32, image_size=8)),
        "BayesianProtoNet": bm.BayesianProtoNet(Conv4(1, None, hidden=32, image_size=8)),
    }
    for name, learner in learners.items():
        learner.meta_fit(train, iterations, meta_batch_size=8)
        result = evaluate(learner, test)
        rows[name] = {k: result.summary()[k] for k in ("accuracy", "nll", "brier", "ece")}
        if result.reliability is not None:
            diagrams[name] = result.reliability
    print(format_table(rows, title=f"5-way {args.shots}-shot, digits 5-9, {eval_tasks} episodes"))

    print(f"reliability diagrams: {plot_reliability(diagrams, args.out)}")

    bayes = learners["BayesianProtoNet"]
    assert isinstance(bayes, bm.BayesianProtoNet)
    tau, sigma = float(bayes.prior_scale.detach()), float(bayes.obs_scale.detach())
    print(f"\nlearned prior scale {tau:.3f}, observation scale {sigma:.3f}")
    predictor = bayes.adapt(test.support_x[0], test.support_y[0])
    sampled = predictor.predict(test.query_x[0], num_samples=64)
    total, aleatoric, epistemic = (
        float(h.mean())
        for h in (sampled.entropy, sampled.aleatoric_entropy, sampled.epistemic_entropy)
    )
    print(
        f"one episode, mean entropy (nats): total {total:.3f} = aleatoric {aleatoric:.3f} "
        f"+ epistemic {epistemic:.3f}"
    )


if __name__ == "__main__":
    main()
