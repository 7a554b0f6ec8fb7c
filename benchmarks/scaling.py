"""How a second-order MAML meta-iteration's cost grows, bayesmeta beside the JAX floor (issue 18).

    pip install -e '.[floor,plot]'                     # jax, optax; matplotlib for --plot
    python benchmarks/scaling.py                       # the table (a few minutes)
    python benchmarks/scaling.py --plot docs/img/scaling.png
    python benchmarks/scaling.py --quick               # a smoke run, seconds

The meta-iteration of benchmarks/floor_jax.py (sinusoid regression, K=10 support and 10 query
points per task, inner SGD steps of 0.01, a 1-W-W-1 ReLU MLP, Adam 1e-3 outer, second order)
with one axis varied at a time from the default T=25 tasks, width W=40, 5 inner steps:

- tasks per meta-batch T: 5, 25, 100, 200;
- network width W: 40, 100, 400;
- inner steps: 1, 5, 20.

bayesmeta's side is ``bm.MAML(...).meta_step(batch)``; the JAX side is floor_jax's
``maml_direction`` with optax's Adam, jit-compiled once per setting (compilation not timed),
both on one thread. At each setting the script first checks that both compute the same
meta-loss from the same weights on the same batch (to float32 tolerance), then times them
interleaved call by call: three rounds, each round's median over its iterations, and the
median of the three, in wall-clock and in CPU time of the process (the plot shows CPU time,
which load from other jobs on a shared machine disturbs less). The iteration count per round
is set so that a round takes about ``--budget`` seconds per side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import bayesmeta as bm

sys.path.insert(0, str(Path(__file__).parent))

import floor_jax as fj  # sets XLA to one thread before it imports jax

DEFAULT = {"tasks": 25, "width": 40, "steps": 5}
AXES = {"tasks": (5, 25, 100, 200), "width": (40, 100, 400), "steps": (1, 5, 20)}
QUICK_AXES = {"tasks": (5, 25), "width": (40, 100), "steps": (1, 5)}
LABELS = {"tasks": "tasks per meta-batch T", "width": "network width W", "steps": "inner steps"}


def setting(axis: str, value: int) -> dict[str, int]:
    return {**DEFAULT, axis: value}


def pair(tasks: int, width: int, steps: int) -> tuple[Callable[[], float], Callable[[], float]]:
    """bayesmeta's and JAX's meta-step on the same weights, each cycling over 4 batches."""
    torch.manual_seed(0)
    learner = bm.MAML(
        (1, width, width, 1), inner_lr=fj.INNER_LR, inner_steps=steps, outer_lr=fj.OUTER_LR
    )
    src = bm.Sinusoid(fj.SHOTS, fj.QUERY, seed=0)
    batches = [src.sample(tasks) for _ in range(4)]
    jbatches = [fj.to_jax_batch(b) for b in batches]
    params = fj.jax_params(learner)
    ours = float(learner.meta_loss(batches[0]).detach())
    theirs = float(fj.maml_loss(params, jbatches[0], steps=steps))
    if abs(ours - theirs) > 1e-4 * max(1.0, abs(ours)):
        raise SystemExit(f"T={tasks} W={width} steps={steps}: loss {ours} != JAX {theirs}")
    jl = fj.JaxLearner(
        fj.jitted_step(fj.maml_direction(False, steps), random=False), params, random=False
    )
    counter = {"bm": 0, "jax": 0}

    def bm_step() -> float:
        counter["bm"] += 1
        return learner.meta_step(batches[counter["bm"] % 4])

    def jax_step() -> float:
        counter["jax"] += 1
        return jl.meta_step(jbatches[counter["jax"] % 4])

    jax_step()  # compiles
    return bm_step, jax_step


def time_pair(fns: Sequence[Callable[[], float]], budget: float) -> list[tuple[float, float]]:
    """Per function, (wall ms, CPU ms): the median over three rounds of each round's median.

    The functions are called in turn, one call each, so that load from other jobs on the
    machine falls on both alike; CPU time (``time.process_time``) counts only this process.
    """
    single = []
    for fn in fns:
        fn()
        t0 = time.perf_counter()
        fn()
        single.append(time.perf_counter() - t0)
    iters = max(3, min(100, int(budget / max(single))))
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(3):
        w_samples: list[list[float]] = [[] for _ in fns]
        c_samples: list[list[float]] = [[] for _ in fns]
        for _ in range(iters):
            for fn, w, c in zip(fns, w_samples, c_samples, strict=True):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                w.append(time.perf_counter() - t0)
                c.append(time.process_time() - c0)
        for i in range(len(fns)):
            wall[i].append(1e3 * statistics.median(w_samples[i]))
            cpu[i].append(1e3 * statistics.median(c_samples[i]))
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu, strict=True)]


Timings = dict[tuple[str, int], list[tuple[float, float]]]


def run(axes: dict[str, Sequence[int]], budget: float) -> Timings:
    cache: dict[tuple[int, int, int], list[tuple[float, float]]] = {}
    results = {}
    print(
        "| varied | T | W | inner steps | bayesmeta ms (wall / CPU) | JAX ms (wall / CPU) "
        "| ratio (wall / CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for axis, values in axes.items():
        for value in values:
            s = setting(axis, value)
            key = (s["tasks"], s["width"], s["steps"])
            if key not in cache:
                cache[key] = time_pair(pair(*key), budget)
            (bw, bc), (jw, jc) = results[(axis, value)] = cache[key]
            print(
                f"| {axis} | {key[0]} | {key[1]} | {key[2]} | {bw:.1f} / {bc:.1f} "
                f"| {jw:.1f} / {jc:.1f} | {bw / jw:.2f} / {bc / jc:.2f} |",
                flush=True,
            )
    return results


def plot(
    results: dict[tuple[str, int], list[float]], axes: dict[str, Sequence[int]], path: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, panels = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
    for ax, (axis, values) in zip(panels, axes.items(), strict=True):
        for i, (name, style) in enumerate((("bayesmeta", "o-"), ("JAX floor", "s--"))):
            ax.plot(values, [results[(axis, v)][i][1] for v in values], style, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(values, [str(v) for v in values])
        ax.minorticks_off()
        ax.set_xlabel(LABELS[axis])
        ax.grid(alpha=0.3)
    panels[0].set_ylabel("CPU ms per meta-iteration")
    panels[0].legend()
    fig.suptitle(
        "Second-order MAML meta-iteration, one axis varied from T=25, W=40, 5 steps", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nwrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per side per round")
    parser.add_argument("--plot", metavar="PNG", help="also draw the three panels (matplotlib)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    axes: dict[str, Any] = QUICK_AXES if args.quick else AXES
    budget = 0.02 if args.quick else args.budget
    print(f"torch {torch.__version__}, jax {fj.jax.__version__}, one thread each\n")
    results = run(axes, budget)
    if args.plot:
        plot(results, axes, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
