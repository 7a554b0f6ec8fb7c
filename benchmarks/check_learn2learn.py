"""Smoke test + timing of learn2learn 0.2.0's MAML on a tiny sine-style regression.

Run after ``bash benchmarks/install_learn2learn.sh``::

    python benchmarks/check_learn2learn.py

One meta-iteration = 25 tasks; per task: ``clone()``, 5 second-order inner
``adapt`` steps on 10 random support points, query loss ``backward()``; then
one Adam step on the meta-parameters. Prints the median wall time in ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.functional import mse_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from l2l_compat import import_learn2learn_maml

N_TASKS = 25
INNER_STEPS = 5
N_POINTS = 10
WARMUP = 3
REPEATS = 20


def meta_iteration(
    maml: nn.Module, opt: torch.optim.Optimizer, data: list[tuple[torch.Tensor, ...]]
) -> float:
    opt.zero_grad()
    total = 0.0
    for xs, ys, xq, yq in data:
        learner = maml.clone()  # type: ignore[operator]
        for _ in range(INNER_STEPS):
            learner.adapt(mse_loss(learner(xs), ys))
        query_loss = mse_loss(learner(xq), yq)
        torch.autograd.backward(query_loss)
        total += float(query_loss.detach())
    opt.step()
    return total / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    maml_cls = import_learn2learn_maml()
    model = nn.Sequential(
        nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1)
    )
    maml = maml_cls(model, lr=0.01, first_order=False)
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)
    data = [tuple(torch.randn(N_POINTS, 1) for _ in range(4)) for _ in range(N_TASKS)]

    losses = [meta_iteration(maml, opt, data) for _ in range(WARMUP)]
    times_ms = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        losses.append(meta_iteration(maml, opt, data))
        times_ms.append((time.perf_counter() - t0) * 1e3)

    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert any(p.grad is not None for p in model.parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"meta-loss first {losses[0]:.4f} -> last {losses[-1]:.4f}")
    print(
        f"learn2learn MAML meta-iteration ({N_TASKS} tasks x {INNER_STEPS} "
        f"second-order steps): median {statistics.median(times_ms):.1f} ms "
        f"(min {min(times_ms):.1f}, max {max(times_ms):.1f}, n={REPEATS})"
    )


if __name__ == "__main__":
    main()
