"""Speed of the Pyro-native core: the fast path against MAML and against the generic route.

    python benchmarks/pyro_core_speed.py            # 3 rounds of 40 interleaved steps each
    python benchmarks/pyro_core_speed.py --quick    # a smoke run

One meta-iteration (T=25 tasks, K=10 support and 10 query points, 5 inner
steps, second order, 1-40-40-1 ReLU, Adam) of:

- MAML;
- BayesianMAML with one Monte Carlo sample in the inner and outer loops
  (Normal prior, Gaussian likelihood: the registered fast path);
- the generic route: BayesianMAML with a Laplace or Student-t prior (the
  prior's part through autograd on its Pyro density), with a Student-t
  likelihood given as a callable ``f -> Distribution`` (output gradient by
  autograd), and both.

The steps are interleaved in one process so that load from other jobs hits
all alike; each round reports median wall-clock ms per step, and the table
gives the median over rounds of each ratio (issue 15's targets: BayesianMAML
at most 1.5x MAML; the generic route at most 1.5x the fast path).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pyro.distributions as dist
import torch

import bayesmeta as bm

NET = (1, 40, 40, 1)


def _learners() -> dict[str, Callable[[bm.TaskBatch], float]]:
    torch.manual_seed(0)
    common = {"inner_lr": 0.01, "inner_steps": 5, "num_particles": 1}
    log_noise = torch.nn.Parameter(torch.tensor(-2.3))

    class StudentT(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.log_scale = log_noise

        def forward(self, f: torch.Tensor) -> dist.StudentT:
            return dist.StudentT(4.0, f, self.log_scale.exp())

    learners = {
        "MAML": bm.MAML(NET, inner_lr=0.01, inner_steps=5),
        "BayesianMAML (fast path)": bm.BayesianMAML(NET, **common),
        "Laplace prior": bm.BayesianMAML(NET, prior=bm.priors.Laplace(), **common),
        "Student-t prior": bm.BayesianMAML(NET, prior=bm.priors.StudentT(), **common),
        "Student-t likelihood (callable)": bm.BayesianMAML(NET, likelihood=StudentT(), **common),
        "Laplace prior + Student-t likelihood": bm.BayesianMAML(
            NET, prior=bm.priors.Laplace(), likelihood=StudentT(), **common
        ),
    }
    return {name: learner.meta_step for name, learner in learners.items()}


def one_round(steps: int) -> dict[str, float]:
    """Median ms per meta-iteration of each learner, interleaved."""
    src = bm.Sinusoid(10, 10, seed=0)
    batches = [src.sample(25) for _ in range(10)]
    fns = _learners()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(steps + 3):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(batches[i % 10])
            if i >= 3:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40, help="interleaved steps per round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds, steps = (1, 3) if args.quick else (args.rounds, args.steps)
    results = [one_round(steps) for _ in range(rounds)]
    names = list(results[0])
    fast = "BayesianMAML (fast path)"
    print(f"\nPyro-native core, meta-iteration ms (median of {rounds} rounds of {steps} steps)\n")
    print("| learner | ms | / MAML | / fast path | target |")
    print("|---|---|---|---|---|")
    for name in names:
        ms = statistics.median(r[name] for r in results)
        vs_maml = statistics.median(r[name] / r["MAML"] for r in results)
        vs_fast = statistics.median(r[name] / r[fast] for r in results)
        target = "<= 1.5x MAML" if name == fast else ("" if name == "MAML" else "<= 1.5x fast")
        print(f"| {name} | {ms:.2f} | {vs_maml:.2f} | {vs_fast:.2f} | {target} |")


if __name__ == "__main__":
    main()
