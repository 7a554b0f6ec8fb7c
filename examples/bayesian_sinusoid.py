"""Bayesian MAML on the ambiguous sinusoid-or-line tasks: predictions with honest uncertainty.

From 5 points a sinusoid and a line are often hard to tell apart. A point estimate commits to
one; Bayesian MAML's task posterior keeps both in its predictive spread, split into epistemic
(what the 5 points leave open) and aleatoric (observation noise) parts.

Run:  python examples/bayesian_sinusoid.py            (a few minutes on 2 CPU cores)
      python examples/bayesian_sinusoid.py --quick    (seconds; what CI runs)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import bayesmeta as bm
from bayesmeta.runs.experiment import format_table
from bayesmeta.scoring.evaluation import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--out", default="bayesian_sinusoid.png", help="where to save the figure")
    args = parser.parse_args()
    iterations = 30 if args.quick else args.iterations
    torch.set_num_threads(1)  # tiny networks: one thread is fastest

    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 40, 40, 1), inner_lr=0.01, inner_steps=10, adapt_steps=10)
    history = learner.meta_fit(bm.SinusoidOrLine(5, 10, seed=0), iterations=iterations)
    print(f"meta-trained {history.iterations} iterations in {history.wall_time_s:.1f} s")
    print(
        f"learned noise scale {float(learner.likelihood.scale.detach()[0]):.3f}, "
        f"mean prior scale {float(learner.prior.scale.detach().mean()):.4f}"
    )

    test = bm.SinusoidOrLine(5, 100, seed=2).sample(50 if args.quick else 600)
    result = evaluate(learner, test)
    print(format_table({"BayesianMAML": result.summary()}, title="held-out tasks, mean ± 95% CI"))

    # One task in detail: the posterior over its weights and the predictive split.
    task = test[0]
    posterior = learner.adapt(task.support_x, task.support_y)
    pred = posterior.predict(task.query_x, num_samples=200)
    print(
        f"task 0: mean epistemic sd {float(pred.epistemic_std.mean()):.3f}, "
        f"aleatoric sd {float(pred.aleatoric_std.mean()):.3f}, "
        f"predictive NLL {float(-pred.log_prob(task.query_y).mean()):.3f}"
    )

    try:
        from bayesmeta.scoring.plotting import plot_predictions
    except ImportError:
        print("install matplotlib for the figure")
        return
    path = plot_predictions(learner, test.select(slice(0, 6)), Path(args.out))
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
