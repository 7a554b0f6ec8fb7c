"""Meta-learn from your own data: tasks built from arrays, a task pool, Reptile and FOMAML.

The "user data" here are noisy quadratic curves y = a (x - b)^2 + c, one curve per
task, held as NumPy arrays as they might come from a file.

Run:  python examples/your_own_tasks.py [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import bayesmeta as bm
from bayesmeta.runs.experiment import format_table
from bayesmeta.scoring.evaluation import evaluate
from bayesmeta.tasks import TaskPool, from_arrays


def make_curves(rng: np.random.Generator, n_tasks: int, k: int, q: int) -> bm.TaskBatch:
    a = rng.uniform(-1.0, 1.0, size=(n_tasks, 1))
    b = rng.uniform(-1.0, 1.0, size=(n_tasks, 1))
    c = rng.uniform(-1.0, 1.0, size=(n_tasks, 1))
    x = rng.uniform(-2.0, 2.0, size=(n_tasks, k + q))
    y = a * (x - b) ** 2 + c + rng.normal(0.0, 0.1, size=x.shape)
    return from_arrays(x[:, :k], y[:, :k], x[:, k:], y[:, k:], batched=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    iterations = 20 if args.quick else 3000
    rng = np.random.default_rng(0)
    train = TaskPool(make_curves(rng, 500, k=5, q=15), seed=0)
    test = make_curves(rng, 200, k=5, q=50)

    rows = {}
    for name, learner in {
        "FOMAML": bm.MAML((1, 32, 32, 1), inner_lr=0.02, inner_steps=5, first_order=True),
        "Reptile": bm.Reptile((1, 32, 32, 1), inner_lr=0.02, inner_steps=5),
    }.items():
        torch.manual_seed(0)
        learner.meta_fit(train, iterations=iterations, meta_batch_size=20, progress=False)
        learner.fit_noise_scale(train.sample(100))
        rows[name] = evaluate(learner, test).summary()
    print(format_table(rows, title="quadratic curves, 5-shot, 200 held-out tasks"))


if __name__ == "__main__":
    main()
