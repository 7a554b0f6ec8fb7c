"""Meta-train MAML on sinusoids, then predict a new task from 5 points with intervals.

Run:  python examples/sinusoid_maml.py            (about a minute on 2 CPU cores)
      python examples/sinusoid_maml.py --quick    (seconds; what CI runs)
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
    parser.add_argument("--out", default="sinusoid_maml.png", help="where to save the figure")
    args = parser.parse_args()
    iterations = 30 if args.quick else args.iterations

    torch.manual_seed(0)
    learner = bm.MAML((1, 40, 40, 1), inner_lr=0.01, inner_steps=5)
    history = learner.meta_fit(bm.Sinusoid(5, 10, seed=0), iterations=iterations)
    print(f"meta-trained {history.iterations} iterations in {history.wall_time_s:.1f} s")

    # A Gaussian noise scale fitted on held-out tasks turns point predictions into
    # predictive distributions (NLL, intervals).
    learner.fit_noise_scale(bm.Sinusoid(5, 100, seed=1).sample(200))
    result = evaluate(learner, bm.Sinusoid(5, 100, seed=2), num_tasks=50 if args.quick else 600)
    print(format_table({"MAML": result.summary()}, title="held-out 5-shot tasks, mean ± 95% CI"))

    try:
        from bayesmeta.scoring.plotting import plot_predictions
    except ImportError:
        print("install matplotlib for the figure")
        return
    path = plot_predictions(learner, bm.Sinusoid(5, 50, seed=3).sample(6), Path(args.out))
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
