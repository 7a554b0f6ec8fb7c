"""Forecasts of new groups by the mixed model and BayesianMAML: the figure of docs/mixed-models.md.

    python benchmarks/real_grouped_figure.py                  # 2000 iterations, about 1 min
    python benchmarks/real_grouped_figure.py --quick          # 20 iterations, seconds (to /tmp)
    python benchmarks/real_grouped_figure.py --sets Spruce Soybean --out /tmp/f.png

For each set (default Spruce and ChickWeight) the mixed-model baseline and
``bm.BayesianMAML((1, 32, 32, 1))`` are fitted exactly as ``real_grouped.py`` fits them
(its ``fit``, same seed and iterations), then adapted to four held-out groups' first
``K = 3`` observations in time. Each panel is one group: its support points (filled),
later observations (open), and each model's predictive mean and central 90% interval on a
dense grid from the group's first to its last ``x``, in the set's standardised units.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from torch import Tensor

import bayesmeta as bm
from bayesmeta.tasks import Task

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _grouped_data import SETS, GroupedSet, prepare  # noqa: E402
from real_grouped import fit  # noqa: E402

K = 3
GROUPS_PER_SET = 4
GRID = 200
#: Row name in ``real_grouped.fit``, legend label and colour.
MODELS = (("MixedLM", "mixed model", "tab:blue"), ("BayesianMAML", "BayesianMAML", "tab:orange"))
DEFAULT_OUT = HERE.parent / "docs" / "img" / "real_grouped_forecasts.png"


def held_out_tasks(data: GroupedSet, count: int) -> list[tuple[str, Task]]:
    """``count`` held-out groups spread over ``data.test``: first ``K`` rows as support."""
    source = data.test_source(K)
    step = max(1, len(data.test) // count)
    names = data.test[::step][:count]
    return [(str(name), source.task(name)) for name in names]


def band(learner: Any, task: Task, grid: Tensor, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Predictive mean and 90% interval ``[GRID]`` of the learner adapted to the task."""
    adapted = learner.adapt(task.support_x[None], task.support_y[None])
    if isinstance(learner, bm.BayesianMAML):
        generator = torch.Generator().manual_seed(seed)
        pred = adapted.predict(grid[None], num_samples=500, generator=generator)
    else:
        pred = adapted.predict(grid[None])
    assert isinstance(pred, bm.Prediction)
    lower, upper = pred.interval(0.9)
    mean, lower, upper = (t.detach().reshape(-1).double() for t in (pred.mean, lower, upper))
    return mean, lower, upper


def panel(ax: Axes, name: str, task: Task, learners: dict[str, Any], seed: int) -> None:
    """One group's observations and both models' forecasts."""
    xs = torch.cat([task.support_x, task.query_x])[:, 0]
    grid = torch.linspace(float(xs.min()), float(xs.max()), GRID)[:, None]
    for row, label, colour in MODELS:
        mean, lower, upper = band(learners[row], task, grid, seed)
        ax.fill_between(grid[:, 0], lower, upper, color=colour, alpha=0.2, linewidth=0)
        ax.plot(
            grid[:, 0], mean, color=colour, linewidth=1.6, label=f"{label}: mean and 90% interval"
        )
    ax.plot(task.query_x[:, 0], task.query_y[:, 0], "o", mfc="white", mec="black", ms=4.5)
    ax.plot(task.support_x[:, 0], task.support_y[:, 0], "o", color="black", ms=5.5)
    ax.set_title(name, fontsize=9)
    ax.tick_params(labelsize=8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sets", choices=list(SETS), nargs="+", default=["Spruce", "ChickWeight"])
    parser.add_argument("--quick", action="store_true", help="20 iterations")
    parser.add_argument("--iterations", type=int, default=None, help="default 2000; quick 20")
    parser.add_argument("--seed", type=int, default=0, help="group split and training seed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="PNG (default: docs/img/...)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    iterations = args.iterations or (20 if args.quick else 2000)
    quick_out = Path(tempfile.gettempdir()) / DEFAULT_OUT.name
    out: Path = args.out or (quick_out if args.quick else DEFAULT_OUT)
    t0 = time.perf_counter()

    fig, axes = plt.subplots(
        len(args.sets), GROUPS_PER_SET, figsize=(10, 3 * len(args.sets)), squeeze=False
    )
    for i, set_name in enumerate(args.sets):
        data = prepare(set_name, args.seed)
        learners = {
            row: fit(row, data, K, iterations, args.quick, args.seed) for row, _, _ in MODELS
        }
        print(f"{set_name}: fitted in {time.perf_counter() - t0:.0f} s", flush=True)
        for j, (group, task) in enumerate(held_out_tasks(data, GROUPS_PER_SET)):
            ax = axes[i, j]
            panel(ax, f"{set_name}, {SETS[set_name].group} {group}", task, learners, args.seed)
            ax.set_xlabel(f"{SETS[set_name].x} (standardised)", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{SETS[set_name].y} (standardised)", fontsize=8)

    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles += [
        Line2D([], [], linestyle="none", marker="o", color="black", markersize=5.5),
        Line2D([], [], linestyle="none", marker="o", mfc="white", mec="black", markersize=4.5),
    ]
    labels += [f"first {K} points (adapted on)", "later points (forecast)"]
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(
        f"New groups forecast from their first {K} observations "
        f"({iterations} meta-iterations, seed {args.seed})",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
